# Journaled atomic apply of a staged file set, and rollback to /ota_prev/ through the same
# journal (docs/protocol.md "Commit"). Every step is idempotent, so a boot that finds the
# journal replays it and lands on exactly the new set.
import os
from uota import fs, tree, mlist, paths

PREV_MANIFEST = "/.manifest.txt"
PREV_VERSION = "/.version.json"


def begin(version, release, wipe):
    """Install the pending manifest: staged files move in, files it drops move out."""
    prev = fs.full(fs.PREV)
    tree.rmtree(prev)
    mlist.copy(fs.full(fs.MANIFEST), prev + PREV_MANIFEST, _unmanaged_replaced())
    fs.write_json(prev + PREV_VERSION, fs.version_info())
    fs.write_json(
        fs.full(fs.JOURNAL),
        {"src": fs.STAGE, "backup": 1, "manifest": fs.PENDING, "version": version, "release": release,
         "wipe": wipe},
    )
    return apply()


def _unmanaged_replaced():
    # files the new set overwrites that no OTA installed (e.g. a file put there over USB): the
    # saved old manifest lists them too, so a rollback restores them instead of deleting.
    # Yielded in order, one at a time: no list that grows with the file count.
    inst = mlist.Reader(fs.full(fs.MANIFEST))
    buf = bytearray(512)
    try:
        for p, _ in mlist.entries(fs.full(fs.PENDING)):
            if inst.seek(p) is None and _kind(fs.full(p)) == FILE:
                yield p, tree.sha256_file(fs.full(p), buf)
    finally:
        inst.close()


FILE = 0x8000


def _kind(path):
    # one stat (each costs a directory lookup: a commit of many files does thousands):
    # 0 if missing, else the mode's type bits, tree.DIR or FILE
    try:
        return os.stat(path)[0] & 0xF000
    except OSError:
        return 0


def _in(src, p, backup, prev):
    # Only ever a file over a file (or onto nothing): never a directory moved, never one
    # kind turned into the other, never a protected path; even if the stage or the saved
    # set was tampered with. What is refused stays in `src` and goes with it.
    s, d = src + "/" + p, fs.full(p)
    if paths.reserved(p) or _kind(s) != FILE:
        return
    k = _kind(d)
    if k == tree.DIR or (not k and tree.file_above(fs.ROOT, p)):  # an existing file's parents are dirs
        return
    if backup and k and not fs.exists(prev + "/" + p):
        fs.move(d, prev + "/" + p)
    fs.move(s, d)


def _out(p, backup, prev, prune=True):
    d = fs.full(p)
    if not paths.deletable(p) or _kind(d) != FILE:
        return  # a directory is never moved, a protected path never deleted
    if backup and not fs.exists(prev + "/" + p):
        fs.move(d, prev + "/" + p)
    else:
        fs.remove(d)
    if prune:
        tree.prune_dirs(d, fs.ROOT)


def apply():
    """Finish the journalled commit if there is one; returns True if it did.

    Nothing here is a list held from before a power cut: what to move is what is left in
    the source dir, what to delete is recomputed from the two manifests until the new one
    is swapped in. So every replay picks up exactly where the last one stopped.
    """
    j = fs.read_json(fs.full(fs.JOURNAL))
    if not isinstance(j, dict):
        fs.remove(fs.full(fs.JOURNAL))
        return False
    src = fs.full(j["src"])
    prev = fs.full(fs.PREV)
    backup = j.get("backup")
    new = fs.full(j["manifest"])
    swapped = not fs.exists(new)
    if j["src"] == fs.PREV:
        # a rollback restores every backed-up file, listed in the old manifest or not
        skip = (PREV_MANIFEST[1:], PREV_VERSION[1:])
        for p in tree.walk(src):
            if p not in skip and not p.endswith(".part"):
                _in(src, p, backup, prev)
    else:
        # staged files of the new set (stale leftovers in the stage are just dropped)
        for p, _ in mlist.entries(fs.full(fs.MANIFEST) if swapped else new):
            _in(src, p, backup, prev)  # if it is (still) in the stage
    if not swapped:  # deletions may be unfinished until the new manifest is in place
        for p in mlist.missing_from(fs.full(fs.MANIFEST), new):
            _out(p, backup, prev)
        if j.get("wipe"):
            r = mlist.Reader(new)
            for p in tree.walk(fs.ROOT, prune=True):  # each file moves out as it is read
                if paths.wipeable(p) and r.find(p) is None:
                    _out(p, backup, prev, False)
            r.close()
        fs.move(new, fs.full(fs.MANIFEST))
    fs.write_json(fs.full(fs.VERSION), {"version": j["version"], "release": j["release"]})
    tree.rmtree(src)
    fs.remove(fs.full(fs.JOURNAL))
    return True


def can_rollback():
    return fs.exists(fs.full(fs.PREV) + PREV_MANIFEST)


def rollback():
    """Restore the set saved in /ota_prev/ (keeping the release counter)."""
    if not can_rollback():
        return False
    old = fs.read_json(fs.full(fs.PREV) + PREV_VERSION, {})
    from uota import health

    health.record_rollback(old.get("version", "") if isinstance(old, dict) else "")  # for the host's push
    fs.write_json(
        fs.full(fs.JOURNAL),
        {"src": fs.PREV, "backup": 0, "manifest": fs.PREV + PREV_MANIFEST,
         "version": old.get("version", "") if isinstance(old, dict) else "",
         "release": fs.version_info()["release"]},
    )
    return apply()
