# Journaled atomic apply of a staged file set, and rollback to /ota_prev/ through the same
# journal (docs/protocol.md "Commit"). Every step is idempotent, so a boot that finds the
# journal replays it and lands on exactly the new set.
from uota import fs, tree


def installed():
    m = fs.read_json(fs.full(fs.MANIFEST))
    if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
        m = {"version": "", "release": 0, "files": {}}
    return m


def _wipe_candidates(keep):
    from uota import paths

    return [p for p in tree.walk(fs.ROOT) if p not in keep and paths.wipeable(p)]


def begin(files, version, release, moves, wipe):
    """Commit `moves` (staged paths) so that `files` becomes the installed set."""
    from uota import paths

    cur = installed()
    deletes = [p for p in cur["files"] if p not in files and paths.deletable(p)]
    if wipe:
        for p in _wipe_candidates(files):
            if p not in deletes:
                deletes.append(p)
    prev = fs.full(fs.PREV)
    tree.rmtree(prev)
    fs.write_json(prev + "/.manifest.json", cur)
    manifest = {"version": version, "release": release, "files": files}
    fs.write_json(
        fs.full(fs.JOURNAL),
        {"src": fs.STAGE, "backup": 1, "moves": moves, "deletes": deletes, "manifest": manifest},
    )
    return apply()


def apply():
    """Finish the journalled commit if there is one; returns True if it did."""
    j = fs.read_json(fs.full(fs.JOURNAL))
    if not isinstance(j, dict):
        fs.remove(fs.full(fs.JOURNAL))
        return False
    src = fs.full(j["src"])
    prev = fs.full(fs.PREV)
    backup = j.get("backup")
    for p in j["moves"]:
        s, d = src + "/" + p, fs.full(p)
        if not fs.exists(s):
            continue  # moved before the power cut
        if backup and fs.exists(d) and not fs.exists(prev + "/" + p):
            fs.move(d, prev + "/" + p)
        fs.move(s, d)
    for p in j["deletes"]:
        d = fs.full(p)
        if not fs.exists(d):
            continue
        if backup and not fs.exists(prev + "/" + p):
            fs.move(d, prev + "/" + p)
        else:
            fs.remove(d)
        tree.prune_dirs(d, fs.ROOT)
    fs.write_json(fs.full(fs.MANIFEST), j["manifest"])
    tree.rmtree(src)
    fs.remove(fs.full(fs.JOURNAL))
    return True


def can_rollback():
    return fs.exists(fs.full(fs.PREV) + "/.manifest.json")


def rollback():
    """Restore the set saved in /ota_prev/ (keeping the release counter)."""
    prev = fs.full(fs.PREV)
    old = fs.read_json(prev + "/.manifest.json")
    if not isinstance(old, dict) or not isinstance(old.get("files"), dict):
        return False
    cur = installed()
    moves = [p for p in tree.walk(prev) if p != ".manifest.json"]
    deletes = [p for p in cur["files"] if p not in old["files"]]
    manifest = {"version": old.get("version", ""), "release": cur.get("release", 0), "files": old["files"]}
    fs.write_json(
        fs.full(fs.JOURNAL),
        {"src": fs.PREV, "backup": 0, "moves": moves, "deletes": deletes, "manifest": manifest},
    )
    return apply()
