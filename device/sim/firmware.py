# The virtual board's firmware: what the ESP32 port does before the REPL.
# Started by the supervisor (uota_core/sim) once per boot; see
# docs/virtual-board.md for the environment and file descriptors.
#
# Everything from this directory is imported first: once the flash image is
# mounted at /, the host filesystem is out of reach.
import os
import sys
import vfs
import simgil  # first: the main thread holds the GIL from here on
import simheap
import simio
import simrepl
import simmachine
import simnetwork
import simsocket
import simupy
import simos
import simsys
import simtime
import simvfs


class Flash:
    # Block device over the image file (littlefs "extended" interface).
    def __init__(self, f, n):
        self.f = f
        self.n = n

    def readblocks(self, blk, buf, off=0):
        self.f.seek(blk * 4096 + off)
        self.f.readinto(buf)

    def writeblocks(self, blk, buf, off=0):
        self.f.seek(blk * 4096 + off)
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.n
        if op == 5:  # block size
            return 4096
        if op == 6:  # erase: flash reads back 0xFF
            ff = b"\xff" * 512
            self.f.seek(arg * 4096)
            for _ in range(8):
                self.f.write(ff)
        return 0


def _mount():
    path = os.getenv("UOTA_SIM_FLASH")
    try:
        bdev = Flash(open(path, "r+b"), int(os.getenv("UOTA_SIM_FLASH_BLOCKS")))
        fs = simvfs.LockedVfs(vfs.VfsLfs2(bdev))
        vfs.umount("/")
        vfs.mount(fs, "/")
    except Exception as e:
        # Never format: a broken image is the host's problem to see.
        sys.stderr.write("uota-sim: cannot mount flash image %s: %r\n" % (path, e))
        sys.exit(1)
    os.chdir("/")


_mount()
sys.path[:] = ["", ".frozen", "/lib"]
_raw = os.getenv("UOTA_SIM_REPL") == "raw"
for _n, _m in (
    ("machine", simmachine),
    ("network", simnetwork),
    ("socket", simsocket),
    ("micropython", simupy),
    ("os", simos),
    ("sys", simsys.sys),
    ("time", simtime),
):
    sys.modules[_n] = sys.modules["u" + _n] = _m
for _n in ("simio", "simrepl", "simreadline", "simmachine", "simnetwork", "simsocket", "simupy", "simos", "simsys", "simtime", "simvfs"):
    sys.modules.pop(_n, None)

import builtins

builtins.print = simio.print
builtins.__repl_print__ = simio.repl_print
builtins.input = simrepl.simreadline.input
del builtins, _n, _m, Flash, _mount
simgil.install(sys.modules)
simheap.install(sys.modules)

# This module's globals become __main__'s, as on a board; never returns.
simrepl.start(globals(), _raw)
