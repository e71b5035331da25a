"""Everything a virtual board printed: kept in memory, appended to console.log, waitable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from uota_core.outputlog import OutputLog

MAX_IN_MEMORY = 16 * 1024 * 1024


class Console(OutputLog[bytearray]):
    """Thread-safe record of board output with `expect` on new text."""

    def __init__(self) -> None:
        super().__init__(bytearray(), MAX_IN_MEMORY)
        self._log: BinaryIO | None = None

    def open_log(self, path: Path) -> None:
        self._log = open(path, "ab", buffering=0)

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def append(self, data: bytes) -> None:
        with self._cond:  # the log gets chunks in the order the record does
            self._append(data)  # bytearray += bytes
            if self._log:
                self._log.write(data)

    def bytes(self, since: int = 0) -> bytes:
        return bytes(self._since(since))

    def text(self, since: int = 0) -> str:
        return self.bytes(since).decode("utf-8", errors="replace")

    def tail(self, n: int) -> str:
        with self._cond:
            return bytes(self._data[-n:]).decode("utf-8", errors="replace")

    def expect(self, pattern: str | bytes, timeout: float, since: int = 0) -> re.Match[bytes]:
        """Wait until `pattern` (a regex) appears after offset `since`; returns the match.

        On timeout raises TimeoutError showing the output seen so far.
        """
        found = self._search(re.compile(pattern.encode() if isinstance(pattern, str) else pattern), since, timeout)
        if found is None:
            seen = self.bytes(since)[-2000:]
            raise TimeoutError(
                f"{pattern!r} not seen on the board's console within {timeout} s; "
                f"output so far:\n{seen.decode('utf-8', errors='replace')}"
            )
        return found[0]
