# Directory-tree helpers used during an OTA session and a commit (loaded on demand).
# Every walk reads directories with os.ilistdir, one entry at a time: a whole listing of a
# 2,000-file directory doesn't fit a 128 KB heap. Removing or moving out the entry just
# read while the directory is being read is safe on LittleFS (it adjusts open directory
# handles); entries created meanwhile may or may not be seen, so the callers that must
# empty a directory read it again until a pass finds nothing.
import os
from uota.fs import is_dir, remove

DIR = 0x4000


def _rmdir(path):
    try:
        os.rmdir(path)
        return True
    except OSError:  # not empty (or gone)
        return False


def rmtree(path):
    if not is_dir(path):
        remove(path)
        return
    last = -1
    while True:
        seen = 0
        for e in os.ilistdir(path):
            seen += 1
            if e[1] == DIR:
                rmtree(path + "/" + e[0])
            else:
                remove(path + "/" + e[0])
        if not seen or seen == last:
            break  # empty, or nothing more could be removed
        last = seen
    _rmdir(path)


def prune_dirs(path, stop):
    # remove now-empty parent directories of `path`, up to (not including) `stop`
    from uota import paths

    i = path.rfind("/")
    while i > len(stop):
        d = path[:i]
        if not paths.deletable(d[len(stop) + 1:]) or not _rmdir(d):
            return
        i = d.rfind("/")


def walk(top, rel="", prune=False):
    """Yield the relative path of every file below `top`. The caller may remove or move
    away each file as it gets it; with `prune`, a directory it emptied that way is removed
    once the walk has left it (never one holding protected paths)."""
    try:
        it = os.ilistdir(top + "/" + rel if rel else (top or "/"))
    except OSError:
        return
    for e in it:
        r = rel + "/" + e[0] if rel else e[0]
        if e[1] == DIR:
            yield from walk(top, r, prune)
            if prune:
                from uota import paths

                if paths.deletable(r):
                    _rmdir(top + "/" + r)
        else:
            yield r


def file_above(top, rel):
    """The first ancestor of `rel` that is a file (not a directory) below `top`, or None."""
    i = rel.find("/")
    while i > 0:
        d = top + "/" + rel[:i]
        try:
            if not os.stat(d)[0] & DIR:
                return rel[:i]
        except OSError:
            return None  # missing: nothing further down exists either
        i = rel.find("/", i + 1)
    return None


def sha256_file(path, buf):
    import hashlib
    import binascii

    h = hashlib.sha256()
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return binascii.hexlify(h.digest()).decode()
