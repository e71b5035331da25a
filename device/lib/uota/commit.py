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
    # The old backup goes aside in one rename (both names are in the root directory: one
    # LittleFS commit, so a cut leaves it whole under one name or the other); the boot
    # after this commit's reset removes it (boot_guard.settle), not the wait for `ok`.
    old = fs.full(fs.PREV_OLD)
    tree.rmtree(old)  # one a cut boot did not get to clear
    if fs.exists(prev):
        fs.move(prev, old)
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


def _dirs(manifest):
    # the directory of each run of entries of the sorted manifest, one at a time (a
    # directory comes again after its subdirectories' entries)
    last = None
    for p, _ in mlist.entries(manifest):
        d = p[: max(p.rfind("/"), 0)]
        if d != last:
            last = d
            yield d


def _swap(src, rel, new, prev):
    """Install the staged directory src/rel whole when it replaces most of the live one.

    LittleFS moves a file by scanning its old directory's log once per entry tag in it:
    a commit that empties two directories (the live one into /ota_prev/, the stage into
    the live one) file by file takes time quadratic in their logs. Instead the few live
    files the new set keeps unchanged move into the staged directory, the live directory
    moves whole into /ota_prev/ (its replaced and dropped files are the backup) and the
    staged one takes its place. Only for a directory of plain files that all belong to the
    old or the new set, none protected; and only so that a power cut at any step leaves a
    state a replay finishes the same way: each keep-file moved becomes one more staged file
    of the new set (so the choice below never flips; a per-file commit's steps only move
    it further from a swap: a new file installed is one more that stays, a backup made
    rules the swap out), and a missing live directory takes the staged one whole.
    """
    s, d, b = src + "/" + rel, fs.full(rel), prev + "/" + rel
    if not rel or not paths.deletable(rel) or _kind(s) != tree.DIR:
        return
    new_r = mlist.Reader(new)
    old_r = mlist.Reader(fs.full(fs.MANIFEST))
    try:
        staged = 0
        for e in os.ilistdir(s):
            p = rel + "/" + e[0]
            if e[1] != FILE or paths.reserved(p) or new_r.find(p) is None:
                return  # a subdirectory, or a stale or refused file: each file on its own
            staged += 1
        k = _kind(d)
        if not k:
            i = rel.rfind("/")
            if i < 0 or _kind(fs.full(rel[:i])) == tree.DIR:
                fs.move(s, d)  # a new directory (or the last step of a swap a cut stopped)
            return
        if k != tree.DIR or _kind(b):
            return  # a file where the directory goes, or backups made one by one already
        live = dropped = 0
        for e in os.ilistdir(d):
            p = rel + "/" + e[0]
            if e[1] != FILE or not paths.deletable(p):
                return
            if new_r.find(p) is None:
                if old_r.find(p) is None:
                    return  # no OTA installed it (a file put there over USB): it stays put
                dropped += 1
            live += 1
        if live - dropped - staged >= staged + dropped:
            # more files stay than change or go: moving those costs less. (Files the new
            # set drops would each be one move to /ota_prev/; with the swap they go with
            # the directory.)
            return
        while True:
            replaced = moved = 0
            new_r.close()
            new_r = mlist.Reader(new)
            for e in os.ilistdir(d):
                if new_r.find(rel + "/" + e[0]) is None:
                    continue  # dropped from the set: its backup goes with the directory
                if _kind(s + "/" + e[0]):
                    replaced += 1
                else:
                    # one that stays, or a new one a per-file commit cut short installed:
                    # it goes with the staged directory
                    fs.move(d + "/" + e[0], s + "/" + e[0])
                    moved += 1
            if not moved:
                break
            # Moving out the entry just read is safe on LittleFS; should a listing still
            # have skipped one, the files of the new set left are more than those replaced
            new_r.close()
            new_r = mlist.Reader(new)
            left = 0
            for e in os.ilistdir(d):
                if new_r.find(rel + "/" + e[0]) is not None:
                    left += 1
            if left == replaced:
                break
    finally:
        new_r.close()
        old_r.close()
    fs.move(d, b)
    fs.move(s, d)


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
        if backup and not swapped:
            for d in _dirs(new):
                _swap(src, d, new, prev)
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
