# Where the board's commit (end_ota: uota.commit.begin) spends its time and its flash
# operations, run by the MicroPython unix port on a real LittleFS (vfs.VfsLfs2 over a
# file-backed block device with the virtual board's geometry: 4 KB blocks, 2 MB):
#   micropython bench/commit_profile.py device/lib [files] [runs] [drop]
# The scenario is bench/ota_bench.py --breakdown's: every file of a `files` x 2 KB app is
# replaced, on a board whose /ota_prev/ holds the previous push's backup. With `drop`, it is
# the --cli-only 50 KB push's instead: the push drops the `files` small files and adds one
# 50 KB file (each timed commit follows an untimed one that put the small files back).
# Between commits the boot after the commit's reset runs (uota.boot_guard.settle), untimed.
# Prints, per phase of the commit, the time and the file-system calls and block
# reads/writes/erases it made.
import sys
import time
import vfs

sys.path.insert(0, sys.argv[1])
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
BS, NB = 4096, 512
IMG = "/tmp/uota_commit_profile.img"

import os as _os  # noqa: E402

counts = {}
per_op = {}  # call: [calls, us, block reads]
PER_OP = "-ops" in sys.argv
DROP = "drop" in sys.argv


def _count(k):
    counts[k] = counts.get(k, 0) + 1


class Os:
    # the os module the device code sees: every call counted
    def __getattr__(self, k):
        f = getattr(_os, k)

        def w(*a):
            _count(k)
            r0, t = counts.get("blk_read", 0), time.ticks_us()
            r = f(*a)
            if PER_OP:
                o = per_op.setdefault(k, [0, 0, 0])
                o[0] += 1
                o[1] += time.ticks_diff(time.ticks_us(), t)
                o[2] += counts.get("blk_read", 0) - r0
            return r

        return w


sys.modules["os"] = Os()
_open = open


def _counted_open(*a):
    _count("open")
    return _open(*a)


import builtins  # noqa: E402

builtins.open = _counted_open

from uota import fs, commit, boot_guard  # noqa: E402


class Flash:
    # as device/sim/firmware.py's, counting calls
    def __init__(self, f):
        self.f = f

    def readblocks(self, blk, buf, off=0):
        _count("blk_read")
        self.f.seek(blk * BS + off)
        self.f.readinto(buf)

    def writeblocks(self, blk, buf, off=0):
        _count("blk_write")
        self.f.seek(blk * BS + off)
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return NB
        if op == 5:
            return BS
        if op == 6:
            _count("blk_erase")
            self.f.seek(arg * BS)
            ff = b"\xff" * 512
            for _ in range(8):
                self.f.write(ff)
        return 0


def put(rel, data):
    fs.makedirs_for(fs.full(rel))
    with _open(fs.full(rel), "wb") as f:
        f.write(data)


def body(i, run):
    s = ("# run %d file %d\n" % (run, i)).encode()
    return s + b"x" * (2048 - len(s))


def sha(i, run):
    return "%064x" % (run * 1000 + i)


def manifest(run, big=False):
    lines = ["app/app.py:" + "a" * 64, "config/ota.json:" + "c" * 64]
    if big:
        lines.append("app/big.py:%064x" % run)
    else:
        lines += ["app/mod%02d.py:%s" % (i, sha(i, run)) for i in range(N)]
    lines.sort()
    return ("\n".join(lines) + "\n").encode()


# phases of begin(), timed by wrapping the module functions it calls
phases = {}


def timed(mod, name, label):
    f = getattr(mod, name)

    depth = [0]

    def w(*a, **k):
        if depth[0]:  # a recursive call: counted in the outer one
            return f(*a, **k)
        depth[0] += 1
        try:
            return _timed(a, k)
        finally:
            depth[0] -= 1

    def _timed(a, k):
        before = dict(counts)
        t = time.ticks_us()
        r = f(*a, **k)
        dt = time.ticks_diff(time.ticks_us(), t)
        p = phases.setdefault(label, {"us": 0})
        p["us"] += dt
        for c, v in counts.items():
            p[c] = p.get(c, 0) + v - before.get(c, 0)
        return r

    setattr(mod, name, w)


timed(commit, "apply", "apply")
timed(commit.tree, "rmtree", "rmtree")
timed(commit.mlist, "copy", "mlist.copy")

with _open(IMG, "wb") as f:
    blank = b"\xff" * BS
    for _ in range(NB):
        f.write(blank)
dev = Flash(_open(IMG, "r+b"))
vfs.VfsLfs2.mkfs(dev)
fs.ROOT = "/flash"
vfs.mount(vfs.VfsLfs2(dev), fs.ROOT)
put("main.py", b"m")
put("app/app.py", b"a" * 300)
put("config/ota.json", b"{}")
for i in range(N):
    put("app/mod%02d.py" % i, body(i, 0))
put(fs.MANIFEST, manifest(0))
fs.write_json(fs.full(fs.VERSION), {"version": "0", "release": 0})

totals = []
def stage(run, big):
    # what the session stages before end_ota
    if big:
        put(fs.STAGE + "/app/big.py", b"#" * 51200)
    else:
        for i in range(N):
            put(fs.STAGE + "/app/mod%02d.py" % i, body(i, run))
    put(fs.PENDING, manifest(run, big))


for run in range(1, RUNS + 2):  # the first run only makes the /ota_prev/ a push finds
    if DROP and run > 1:
        stage(run + 1000, False)  # the small files back, untimed
        commit.begin("r%d" % run, 2 * run, False)
        boot_guard.settle()
    stage(run, DROP)
    if run == 1:
        commit.begin(str(run), 2 * run + 1, False)
        boot_guard.settle()
        continue
    phases.clear()
    counts.clear()
    t = time.ticks_us()
    commit.begin(str(run), 2 * run + 1, False)
    totals.append((time.ticks_diff(time.ticks_us(), t), dict(counts), dict(phases)))
    assert fs.read_json(fs.full(fs.VERSION))["version"] == str(run)
    boot_guard.settle()  # the boot after the commit's reset

totals.sort(key=lambda x: x[0])
us, c, ph = totals[len(totals) // 2]
print("commit of %s, median of %d: %d us" % (("one 50 KB file, dropping %d x 2 KB" if DROP else "%d x 2 KB") % N,
                                              RUNS, us))
print("  calls:", " ".join("%s=%d" % kv for kv in sorted(c.items())))
for label, p in ph.items():
    print("  %-10s %6d us:" % (label, p.pop("us")), " ".join("%s=%d" % kv for kv in sorted(p.items())))
if PER_OP:
    for k, o in sorted(per_op.items()):
        print("  per call %-8s %5d calls %8d us %8d block reads" % (k, o[0], o[1], o[2]))
vfs.umount(fs.ROOT)
_os.remove(IMG)
