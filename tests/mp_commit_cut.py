# Runs the device's journaled commit (device/lib/uota/commit.py) under the MicroPython unix
# port on a real LittleFS (vfs.VfsLfs2 over a RAM block device), the power cut after the
# k-th block write or erase, for every k; each cut image is mounted afresh and the boot
# guard replays the journal, as the next boot does. Prints one line per cut that doesn't
# land on exactly the old or exactly the new set, then "done <cuts>":
#   micropython mp_commit_cut.py <device lib dir> <files> [replace | drop]
# With `replace` the app dir already holds an old version of every file and one file the
# new set keeps unchanged (the commit then swaps the whole directory, uota.commit._swap).
# With `drop` the app dir holds <files> old files the new set drops and one it keeps, and
# the new set adds one file (a swap too: the dropped files go with the directory).
import sys
import os
import vfs

sys.path.insert(0, sys.argv[1])
from uota import fs, commit, boot_guard  # noqa: E402

N = int(sys.argv[2])
REPLACE = sys.argv[3:] == ["replace"]
DROP = sys.argv[3:] == ["drop"]
BS, NB = 4096, 64
H = "0" * 64


class Cut(Exception):
    pass


class Ram:
    # flash: a write or erase is all or nothing; after the cut nothing more is written
    def __init__(self, buf, limit=None):
        self.buf, self.ops, self.limit = buf, 0, limit

    def _tick(self):
        if self.limit is not None and self.ops >= self.limit:
            raise Cut()
        self.ops += 1

    def readblocks(self, b, buf, off=0):
        o = b * BS + off
        buf[:] = self.buf[o : o + len(buf)]

    def writeblocks(self, b, buf, off=0):
        self._tick()
        o = b * BS + off
        self.buf[o : o + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return NB
        if op == 5:
            return BS
        if op == 6:
            self._tick()
            self.buf[arg * BS : (arg + 1) * BS] = b"\xff" * BS
        return 0


mounts = [0]


def boot(buf, limit=None, mkfs=False):
    # a fresh mount of the image, as after power-on (the cut one is just left behind)
    dev = Ram(buf, limit)
    if mkfs:
        vfs.VfsLfs2.mkfs(dev)
    mounts[0] += 1
    fs.ROOT = "/f%d" % mounts[0]
    vfs.mount(vfs.VfsLfs2(dev), fs.ROOT)
    return dev


def put(rel, text):
    fs.makedirs_for(fs.full(rel))
    with open(fs.full(rel), "w") as f:
        f.write(text)


def name(i):
    return "app/d/f%02d.txt" % i


KEEP = "app/d/keep.txt"
ADDED = "app/d/added.txt"


def manifest(n, sha=H):
    if DROP and sha == H:  # the new set: the kept file and one added
        return ADDED + ":" + H + "\n" + KEEP + ":" + H + "\n" + "main.py:" + H + "\n"
    keep = KEEP + ":" + H + "\n" if REPLACE or DROP else ""
    return "".join("%s:%s\n" % (name(i), sha) for i in range(n)) + keep + "main.py:" + H + "\n"


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def found():
    # (version, the new files in place, any other file in the app dir)
    v = fs.read_json(fs.full(fs.VERSION))["version"]
    if DROP:  # (version, the app dir's files and what they hold)
        try:
            names = sorted(e[0] for e in os.ilistdir(fs.full("app/d")))
        except OSError:
            names = []
        return v, [(n, _read(fs.full("app/d/" + n))) for n in names]
    new = sum(1 for i in range(N) if _read(fs.full(name(i))).startswith("new"))
    try:
        every = sum(1 for _ in os.ilistdir(fs.full("app/d")))
    except OSError:
        every = 0
    return v, new, every


image = bytearray(b"\xff" * (BS * NB))
boot(image, mkfs=True)
put("main.py", "m")
if DROP:
    for i in range(N):
        put(name(i), "old %d\n" % i)
    put(KEEP, "keep")
    put(fs.MANIFEST, manifest(N, "1" * 64))
elif REPLACE:
    for i in range(N):
        put(name(i), "old %d\n" % i)
    put(KEEP, "keep")
    put(fs.MANIFEST, manifest(N, "1" * 64))
else:
    put(fs.MANIFEST, "main.py:" + H + "\n")
fs.write_json(fs.full(fs.VERSION), {"version": "old", "release": 1})
put(fs.PREV + "/app/d/earlier.txt", "an earlier push's backup")  # set aside whole, cleared at boot
put(fs.PREV + "/.manifest.txt", "app/d/earlier.txt:" + H + "\n")
for i in range(N if not DROP else 0):  # staged, as a session leaves them before end_ota
    put(fs.STAGE + "/" + name(i), "new %d\n" % i)
if DROP:
    put(fs.STAGE + "/" + ADDED, "new")
put(fs.PENDING, manifest(N))
staged = bytes(image)
k = 0
while True:
    image = bytearray(staged)
    dev = boot(image, k)
    try:
        commit.begin("new", 2, False)
        finished = True
    except Cut:
        finished = False
    boot(image)
    boot_guard.settle()  # what boot.py runs: replays a journaled commit
    if fs.exists(fs.full(fs.PREV_OLD)):
        print("cut after write %d: the earlier backup is still there after the boot" % k)
    got = found()
    if DROP:
        old_files = [("f%02d.txt" % i, "old %d\n" % i) for i in range(N)] + [("keep.txt", "keep")]
        if got not in (("old", old_files), ("new", [("added.txt", "new"), ("keep.txt", "keep")])):
            print("cut after write %d: %r" % (k, got))
        if finished:
            break
        k += 1
        continue
    extra = 1 if REPLACE else 0
    old = ("old", 0, N + extra) if REPLACE else ("old", 0, 0)
    if got not in (old, ("new", N, N + extra)) or (REPLACE and _read(fs.full(KEEP)) != "keep"):
        print("cut after write %d: version %s, %d of %d new files in place" % (k, got[0], got[1], N))
    if finished:
        break
    k += 1
print("done %d" % k)
