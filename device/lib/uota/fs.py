# Filesystem helpers the OTA stack keeps resident (boot guard, config); the tree walkers
# used only during a session are in uota.tree. ROOT is '' on a board; the host's unit tests
# point it at a temp dir so the same code runs under the plain unix port.
import os
import json

ROOT = ""

STAGE = "ota_stage"
PREV = "ota_prev"
PREV_OLD = "ota_prev_old"  # the /ota_prev/ a commit replaced: cleared by the next boot
MANIFEST = "ota_manifest.txt"  # installed set, sorted path:sha256 lines (uota.mlist)
PENDING = "ota_pending.txt"  # the set an OTA session is about to install
VERSION = "ota_version.json"  # version + release alone: cheap to read
JOURNAL = "ota_journal.json"
BOOT_STATE = "ota_boot.json"
CRASH = "ota_crash.json"  # the last crash/rollback, for the host's push (uota.health)
SECRETS = "config/.ota.secrets.json"
CONFIG = "config/ota.json"


def full(rel):
    return ROOT + "/" + rel


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def makedirs_for(path):
    # mkdir every missing parent of `path` (an absolute device path)
    i = path.find("/", 1)
    while i > 0:
        d = path[:i]
        if d and not is_dir(d):
            try:
                os.mkdir(d)
            except OSError:
                pass
        i = path.find("/", i + 1)


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def move(src, dst):
    makedirs_for(dst)
    try:
        os.rename(src, dst)  # LittleFS replaces dst atomically
    except OSError:
        # FAT refuses to rename over an existing file: not atomic, but still completes
        remove(dst)
        os.rename(src, dst)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, obj):
    # write-then-rename: a power cut leaves the old or the new content, never half a file
    tmp = path + ".tmp"
    makedirs_for(path)
    with open(tmp, "w") as f:
        json.dump(obj, f)
    move(tmp, path)


def version_info():
    """{"version", "release"} of the installed set, without parsing its file list."""
    v = read_json(full(VERSION), {})
    if not isinstance(v, dict):
        v = {}
    return {"version": v.get("version", ""), "release": v.get("release", 0)}
