"""`Link`: the byte stream every transport yields, with deadlines.

The OTA `Session` and the `RemoteIOClient` speak through a Link and never know whether it
is TCP, a UART or BLE underneath. Transports subclass `BufferedLink` and implement only
`_send` and `_recv`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from collections.abc import Callable
from typing import TYPE_CHECKING, Self, TypeVar

from uota_core.errors import UotaError

if TYPE_CHECKING:
    from uota_core.seal import SessionKeys

DEFAULT_TIMEOUT = 10.0
# A board serves one OTA session at a time, and RemoteIO only between a session's turns:
# a connection's first reply (the hello) can wait behind someone else's stalled session
# until the board ends it, at most 15 s after its last command (the device's COMMAND_MS,
# docs/protocol.md "Deadlines"). The hello gets that plus a loaded machine's margin, so the
# owner's first command after a stalled password holder succeeds, slowly, not fails.
START_TIMEOUT = 25.0
# A board flooded with connections from many addresses may push a new one out of its lobby
# before it has proven the password (the device's uota.lobby keeps a place for addresses
# that proved it before, not for one it has never seen): a TCP connection lost before its
# handshake ends is opened again, this many times in all.
HANDSHAKE_TRIES = 3
MAX_LINE = 64 * 1024


class LinkError(UotaError):
    """The link failed: unreachable, reset, or closed by the device."""


class LinkTimeout(LinkError):
    """The device did not answer within the deadline."""


class LinkClosed(LinkError):
    """The device closed the connection."""


class Closing:
    """`with` support for anything that holds a link or port and has `close()`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


C = TypeVar("C", bound=Closing)


def handshaken(tries: int, connect: Callable[[], C], handshake: Callable[[C], object]) -> C:
    """`connect()`, then `handshake(conn)`: a connection lost before its handshake ends (not
    one that timed out) is opened again, `tries` times in all (HANDSHAKE_TRIES over TCP).
    The connection is closed on any failure."""
    for tried in range(1, tries + 1):
        conn = connect()
        try:
            handshake(conn)
            return conn
        except LinkError as e:
            conn.close()
            if tried == tries or isinstance(e, LinkTimeout):
                raise
        except BaseException:
            conn.close()
            raise
    raise ValueError(f"tries must be at least 1, not {tries}")


class Link(Closing, ABC):
    """A byte stream with deadlines: write, read_exact, readline, close."""

    name: str = "link"
    timeout: float = DEFAULT_TIMEOUT
    # a link slow enough that compressing file bodies pays for the device's inflating:
    # a UART does (11.5 KB/s at 115200); WiFi moves bytes faster than an ESP32 inflates them
    slow: bool = False

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def read_exact(self, n: int, timeout: float | None = None) -> bytes: ...

    @abstractmethod
    def readline(self, timeout: float | None = None) -> bytes:
        """One line including its b'\\n'."""

    @abstractmethod
    def close(self) -> None: ...

    def sealed(self, keys: SessionKeys) -> Link:
        """This link, its bytes carried in records (uota_core.seal) from now on."""
        from uota_core.seal import SealedLink

        return SealedLink(self, keys)


class BufferedLink(Link):
    """read_exact/readline over a `_recv` that returns whatever bytes arrive before a deadline."""

    def __init__(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.timeout = timeout
        self._buf = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0

    @abstractmethod
    def _send(self, data: bytes) -> None: ...

    @abstractmethod
    def _recv(self, max_bytes: int, deadline: float) -> bytes:
        """Some bytes (b'' means the peer closed); raise LinkTimeout past the deadline."""

    def write(self, data: bytes) -> None:
        self._send(data)
        self.bytes_sent += len(data)

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _more(self, deadline: float) -> None:
        chunk = self._recv(65536, deadline)
        if not chunk:
            raise LinkClosed(f"{self.name} closed the connection")
        self.bytes_received += len(chunk)
        self._buf += chunk

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        while len(self._buf) < n:
            self._more(deadline)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def readline(self, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self._buf[: i + 1])
                del self._buf[: i + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise LinkError(f"{self.name} sent a line longer than {MAX_LINE} bytes")
            start = len(self._buf)
            self._more(deadline)
