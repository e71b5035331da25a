# Manifests on flash: sorted "path:sha256" lines (the installed set, the pending set of an
# OTA session, the set saved in /ota_prev/). They are only ever streamed, never loaded
# whole, so a 100-file manifest costs a line of RAM, not a dict.
from uota import fs


class Reader:
    """Forward cursor over a manifest-lines file (a missing file reads as empty)."""

    def __init__(self, path):
        self.path = path
        self.f = None
        self.cur = None
        self._open()

    def _open(self):
        self.close()
        try:
            self.f = open(self.path)
        except OSError:
            self.f = None
        self.next()

    def next(self):
        self.cur = None
        if self.f is None:
            return
        line = self.f.readline()
        if not line:
            self.close()
            return
        line = line.rstrip("\n")
        i = line.rfind(":")
        self.cur = (line[:i], line[i + 1 :])

    def seek(self, key):
        """The sha256 of `key` if listed; moves forward only (keys must come sorted)."""
        while self.cur is not None and self.cur[0] < key:
            self.next()
        return self.cur[1] if self.cur is not None and self.cur[0] == key else None

    def find(self, key):
        """Like seek(), but restarts from the top when `key` is behind the cursor."""
        if self.cur is None or self.cur[0] > key:
            self._open()
        return self.seek(key)

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


def entries(path):
    r = Reader(path)
    try:
        while r.cur is not None:
            yield r.cur
            r.next()
    finally:
        r.close()


def copy(src, dst, extra=()):
    """Copy a manifest file, merging in the sorted (path, sha) pairs `extra` yields (taken
    one at a time: a generator never becomes a list)."""
    fs.makedirs_for(dst)
    extra = iter(extra)
    e = _next(extra)
    with open(dst, "w") as out:
        for p, sha in entries(src):
            while e is not None and e[0] < p:
                out.write("%s:%s\n" % e)
                e = _next(extra)
            out.write("%s:%s\n" % (p, sha))
        while e is not None:
            out.write("%s:%s\n" % e)
            e = _next(extra)


def _next(it):
    # next(it, None) needs a port option the ESP32 build doesn't enable
    try:
        return next(it)
    except StopIteration:
        return None


def keep_existing():
    """Drop installed entries whose file is gone (after rm / wipe)."""
    path = fs.full(fs.MANIFEST)
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        for p, sha in entries(path):
            if fs.exists(fs.full(p)):
                out.write("%s:%s\n" % (p, sha))
    fs.move(tmp, path)


def missing_from(path, other):
    """Paths listed in `path` but not in `other` (both sorted), one at a time."""
    r = Reader(other)
    try:
        for p, _ in entries(path):
            if r.seek(p) is None:
                yield p
    finally:
        r.close()
