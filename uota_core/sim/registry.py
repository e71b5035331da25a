"""Running virtual boards announce their serial port here, as a plugged-in board's USB port
shows in the system's port list: a pty never does, so `uota list` looks here too.

One JSON file per board in a per-machine directory; an entry counts only while its board's
supervisor holds the state directory's lock, so a killed supervisor leaves no ghost.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REGISTRY_DIR = Path(tempfile.gettempdir()) / "uota-sim-boards"


def register(uid: str, hostname: str, serial: str, addr: str, state_dir: Path) -> Path:
    """Record a started board; returns the entry to pass to `unregister`."""
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    entry = REGISTRY_DIR / f"{uid}.json"
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"uid": uid, "hostname": hostname, "serial": serial, "addr": addr,
                               "state": str(state_dir)}))
    os.replace(tmp, entry)
    return entry


def unregister(entry: Path) -> None:
    try:
        entry.unlink()
    except FileNotFoundError:
        pass


def running_boards() -> list[dict[str, Any]]:
    """The entries of boards whose supervisor is running now."""
    from uota_core.sim.state import is_running

    boards = []
    for entry in sorted(REGISTRY_DIR.glob("*.json")) if REGISTRY_DIR.is_dir() else []:
        try:
            if entry.stat().st_uid != os.getuid():
                continue  # the directory is shared by the machine's users: only our own boards count
            data = json.loads(entry.read_text())
            alive = is_running(Path(data["state"])) and os.path.exists(data["serial"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written or removed right now, or not ours
        if alive:
            boards.append(data)
    return boards
