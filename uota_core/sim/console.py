"""Everything a virtual board printed: kept in memory, appended to console.log, waitable."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import BinaryIO

MAX_IN_MEMORY = 16 * 1024 * 1024


class Console:
    """Thread-safe record of board output with `expect` on new text."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # bytes trimmed off the front, so offsets stay valid
        self._cond = threading.Condition()
        self._log: BinaryIO | None = None

    def open_log(self, path: Path) -> None:
        self._log = open(path, "ab", buffering=0)

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def append(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            if len(self._buf) > MAX_IN_MEMORY:
                cut = len(self._buf) - MAX_IN_MEMORY // 2
                del self._buf[:cut]
                self._base += cut
            if self._log:
                self._log.write(data)
            self._cond.notify_all()

    def mark(self) -> int:
        """An offset to pass to `expect(since=...)` to look only at later output."""
        with self._cond:
            return self._base + len(self._buf)

    def bytes(self, since: int = 0) -> bytes:
        with self._cond:
            return bytes(self._buf[max(0, since - self._base):])

    def text(self, since: int = 0) -> str:
        return self.bytes(since).decode("utf-8", errors="replace")

    def tail(self, n: int) -> str:
        with self._cond:
            return bytes(self._buf[-n:]).decode("utf-8", errors="replace")

    def expect(self, pattern: str | bytes, timeout: float, since: int = 0) -> re.Match[bytes]:
        """Wait until `pattern` (a regex) appears after offset `since`; returns the match.

        On timeout raises TimeoutError showing the output seen so far.
        """
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, max(0, since - self._base))
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = bytes(self._buf[max(0, since - self._base):])[-2000:]
                    raise TimeoutError(
                        f"{pattern!r} not seen on the board's console within {timeout} s; "
                        f"output so far:\n{seen.decode('utf-8', errors='replace')}"
                    )
                self._cond.wait(left)
