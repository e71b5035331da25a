"""`OutputLog`: what a board printed, kept in memory for waiting on.

One mechanism for the virtual board's console (bytes) and a `Device`'s print output
(text): thread-safe, bounded (the older half goes when the limit is passed) and waitable,
with offsets (`mark()`) that stay valid when the front is trimmed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", str, bytearray)
R = TypeVar("R")


class OutputLog(Generic[T]):
    def __init__(self, empty: T, limit: int) -> None:
        self._data: T = empty
        self._limit = limit
        self._base = 0  # units trimmed off the front, so offsets stay valid
        self._cond = threading.Condition()  # re-entrant: subclasses extend append under it

    def _append(self, chunk: str | bytes) -> None:
        with self._cond:
            self._data += chunk
            if len(self._data) > self._limit:
                cut = len(self._data) - self._limit // 2
                self._data = self._data[cut:]
                self._base += cut
            self._cond.notify_all()

    def mark(self) -> int:
        """An offset: waits and reads given `since=mark` look only at later output."""
        with self._cond:
            return self._base + len(self._data)

    def _since(self, since: int) -> T:
        with self._cond:
            return self._data[max(0, since - self._base):]

    def _wait(self, found: Callable[[], R | None], timeout: float) -> R | None:
        """found()'s first result that isn't None, checked under the lock as output arrives;
        None if there was none within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = found()
                if result is not None:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def _search(self, rx: re.Pattern, since: int, timeout: float) -> tuple[re.Match, int] | None:
        """The first match of `rx` after offset `since` and the offset just past it, waiting
        up to `timeout` for it."""
        def found() -> tuple[re.Match, int] | None:
            m = rx.search(self._data, max(0, since - self._base))
            return (m, self._base + m.end()) if m else None

        return self._wait(found, timeout)
