# How the app fared after a push (docs/protocol.md "App health"): the RemoteIO builtin
# `uota_health`, and the rollback's part of the record it reports. Loaded only when there is
# something to write or ask, then dropped: none of this stays resident.
import sys
from uota import fs, boot_guard

# fs.CRASH holds {"release", "version", "trace"[, "restored"]}: the last crash (written by
# uota.runtime when the app raises) or rollback (below)
CRASH = fs.CRASH


def record_rollback(restored):
    """About to restore `restored` (a version) over the set that failed; written before the
    rollback starts, so a cut during it still leaves the record."""
    print("uota: rolling back to version %s" % restored)  # a serial host reads the console
    cur = fs.version_info()
    last = fs.read_json(fs.full(CRASH), None)
    trace = last.get("trace", "") if isinstance(last, dict) and last.get("release") == cur["release"] else ""
    fs.write_json(fs.full(CRASH), {"release": cur["release"], "version": cur["version"], "trace": trace,
                                   "restored": restored})


def report():
    """This boot as the host's push waits on it: the installed set, the app's state, whether
    the boot guard marked the boot healthy, and the last crash/rollback record."""
    rt = sys.modules.get("uota.runtime")
    app = rt._app if rt else {}
    cur = fs.version_info()
    last = fs.read_json(fs.full(CRASH), None)
    return {"version": cur["version"], "release": cur["release"], "app": app.get("state", "none"),
            "healthy": boot_guard.is_clean(), "unclean": boot_guard.unclean_count(),
            "trace": app.get("trace") or "", "last": last if isinstance(last, dict) else None}
