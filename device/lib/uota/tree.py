# Directory-tree helpers used during an OTA session and a commit (loaded on demand).
import os
from uota.fs import is_dir, remove


def rmtree(path):
    if not is_dir(path):
        remove(path)
        return
    for name in os.listdir(path):
        rmtree(path + "/" + name)
    try:
        os.rmdir(path)
    except OSError:
        pass


def prune_dirs(path, stop):
    # remove now-empty parent directories of `path`, up to (not including) `stop`
    i = path.rfind("/")
    while i > len(stop):
        d = path[:i]
        try:
            if os.listdir(d):
                return
            os.rmdir(d)
        except OSError:
            return
        i = d.rfind("/")


def walk(top, rel=""):
    # yields paths relative to `top` of every file below it
    try:
        names = os.listdir(top + "/" + rel if rel else (top or "/"))
    except OSError:
        return
    for name in names:
        r = rel + "/" + name if rel else name
        if is_dir(top + "/" + r):
            yield from walk(top, r)
        else:
            yield r


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


def first_file(top, skip=(), rel=""):
    """Some file below `top` (relative path), skipping `skip` and *.part; None if none.

    Callers that move files out one at a time use this instead of a full listing, which
    for a 100-file directory would need one large block of a fragmented heap."""
    d = top + "/" + rel if rel else top
    try:
        it = os.ilistdir(d)
    except OSError:
        return None
    found = None
    for entry in it:
        if found is not None:
            continue  # drain the iterator so the directory handle closes
        name = entry[0]
        r = rel + "/" + name if rel else name
        if entry[1] == 0x4000:
            found = first_file(top, skip, r)
        elif not name.endswith(".part") and r not in skip:
            found = r
    return found
