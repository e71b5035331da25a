"""Claiming one board out of several for this process (e.g. one per pytest-xdist worker).

Each board is a slot named by its serial port and/or address; a file lock per slot in a
shared directory makes the claim exclusive across processes, and it ends with the process.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from uota_core.errors import BoardError

DEFAULT_LOCK_DIR = Path(tempfile.gettempdir()) / "uota-board-locks"


def _lock_path(lock_dir: Path, slot: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", slot).strip("_")[:60]
    return lock_dir / f"{safe}-{hashlib.sha256(slot.encode()).hexdigest()[:8]}.lock"


class BoardClaim:
    """The slot this process holds; `release()` (or process exit) frees it."""

    def __init__(self, index: int, slot: str, lock: FileLock) -> None:
        self.index = index
        self.slot = slot
        self._lock = lock

    def release(self) -> None:
        self._lock.release()


def claim_board(slots: list[str], lock_dir: Path = DEFAULT_LOCK_DIR, preferred: int = 0) -> BoardClaim:
    """Lock the first free slot, trying `preferred` first (e.g. the xdist worker number)."""
    if not slots:
        raise BoardError("no boards to choose from")
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = [(preferred + i) % len(slots) for i in range(len(slots))]
    for i in order:
        lock = FileLock(str(_lock_path(lock_dir, slots[i])))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        return BoardClaim(i, slots[i], lock)
    raise BoardError(f"all {len(slots)} boards ({', '.join(slots)}) are in use by other test processes: "
                     "run at most one pytest-xdist worker per board (-n {0}), or wait for the other run "
                     "to finish".format(len(slots)))
