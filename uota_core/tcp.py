"""The WiFi TCP transport: a `Link` over a socket to the device's port 2018 or 2019."""

from __future__ import annotations

import select
import socket
import time

from uota_core.link import DEFAULT_TIMEOUT, BufferedLink, LinkError, LinkTimeout

# Boards send a reply in several small writes (a size line, then the body in pieces) and
# lwIP, like the virtual board, holds back a small segment until the previous one is
# acknowledged (Nagle). Linux delays that acknowledgement by up to 40 ms: each such reply
# stalled that long (the `need` list: 48 ms -> 11 ms with 20 files). Asking for immediate
# ACKs after every read keeps the device's small writes flowing; Linux only, elsewhere a no-op.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

OTA_PORT = 2018
REMOTEIO_PORT = 2019


class TcpLink(BufferedLink):
    def __init__(self, host: str, port: int = OTA_PORT, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(f"{host}:{port}", timeout)
        self.host = host
        self.port = port
        self._sock = self._connect(host, port, connect_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack()
        self._sock.setblocking(False)

    @staticmethod
    def _connect(host: str, port: int, timeout: float) -> socket.socket:
        # a board that is rebooting (after a push) refuses connections for a moment:
        # keep trying until the deadline rather than failing on the first refusal
        from uota_core.mdns import resolve

        addr = resolve(host)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return socket.create_connection((addr, port), timeout=max(left, 0.1))
            except ConnectionRefusedError as e:
                if left <= 0:
                    err: OSError = e
                    break
                time.sleep(0.05)
            except OSError as e:
                err = e
                break
        raise LinkError(
            f"cannot reach {host}:{port} ({err.strerror or err}): check that the board is on "
            "and that hostname/port in config/ota.json (or --host/--port) are right"
        )

    @classmethod
    def adopt(cls, sock: socket.socket, name: str, timeout: float = DEFAULT_TIMEOUT) -> "TcpLink":
        """Wrap an already connected socket (e.g. one a listening test harness accepted)."""
        link = cls.__new__(cls)
        BufferedLink.__init__(link, name, timeout)
        link.host, link.port = sock.getpeername()[:2]
        link._sock = sock
        sock.setblocking(False)
        return link

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"{self.name} stopped accepting data for {self.timeout:.0f}s")
            _, writable, _ = select.select([], [self._sock], [], left)
            if not writable:
                continue
            try:
                n = self._sock.send(view)
            except BlockingIOError:
                continue
            except OSError as e:
                raise LinkError(f"{self.name}: connection lost while sending ({e.strerror or e})") from None
            view = view[n:]

    def _recv(self, max_bytes: int, deadline: float) -> bytes:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"{self.name} did not answer in time")
            readable, _, _ = select.select([self._sock], [], [], left)
            if not readable:
                continue
            try:
                data = self._sock.recv(max_bytes)
            except BlockingIOError:
                continue
            except OSError as e:
                raise LinkError(f"{self.name}: connection lost ({e.strerror or e})") from None
            self._quickack()  # the kernel clears it as it goes: re-arm after every read
            return data

    def _quickack(self) -> None:
        if _QUICKACK is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass  # a socket the peer closed: the next read says so

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
