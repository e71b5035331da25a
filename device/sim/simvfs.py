# The flash filesystem behind one lock. On a board LittleFS is C: no thread
# switch can happen inside it. Here it calls back into Python (the block
# device), where the GIL emulation could hand over: it doesn't while the
# lock is held, so no other thread enters LittleFS in the middle.
import io
import simgil

L = simgil.C
_POLL_RW = 0x0001 | 0x0004  # POLLIN | POLLOUT: a file is always ready


class LockedFile(io.IOBase):
    def __init__(self, f):
        self._f = f

    def read(self, *a):
        with L:
            return self._f.read(*a)

    def readinto(self, *a):
        with L:
            return self._f.readinto(*a)

    def readline(self, *a):
        with L:
            return self._f.readline(*a)

    def readlines(self, *a):
        with L:
            return self._f.readlines(*a)

    def write(self, b):
        with L:
            return self._f.write(b)

    def seek(self, *a):
        with L:
            return self._f.seek(*a)

    def tell(self):
        with L:
            return self._f.tell()

    def flush(self):
        with L:
            return self._f.flush()

    def close(self):
        with L:
            return self._f.close()

    def ioctl(self, req, arg):
        # The C stream protocol (import's reader, json.load) asks for these.
        if req == 1:  # MP_STREAM_FLUSH
            self.flush()
            return 0
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        if req == 3:  # MP_STREAM_POLL
            return arg & _POLL_RW
        return -1

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _locked_iter(it):
    while True:
        with L:
            try:
                e = next(it)
            except StopIteration:
                return
        yield e


class LockedVfs:
    def __init__(self, fs):
        self.fs = fs

    def mount(self, readonly, mkfs):
        with L:
            return self.fs.mount(readonly, mkfs)

    def umount(self):
        with L:
            return self.fs.umount()

    def open(self, path, mode):
        with L:
            return LockedFile(self.fs.open(path, mode))

    def ilistdir(self, path):
        # lazy, as on the board: one entry per step, the lock held only for that step
        # (a whole listing of a big directory would not fit the board's heap)
        with L:
            it = self.fs.ilistdir(path)
        return _locked_iter(it)

    def chdir(self, path):
        with L:
            return self.fs.chdir(path)

    def getcwd(self):
        with L:
            return self.fs.getcwd()

    def mkdir(self, path):
        with L:
            return self.fs.mkdir(path)

    def remove(self, path):
        with L:
            return self.fs.remove(path)

    def rename(self, old, new):
        with L:
            return self.fs.rename(old, new)

    def rmdir(self, path):
        with L:
            return self.fs.rmdir(path)

    def stat(self, path):
        with L:
            return self.fs.stat(path)

    def statvfs(self, path):
        with L:
            return self.fs.statvfs(path)
