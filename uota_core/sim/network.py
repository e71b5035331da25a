"""The virtual board's place on the (loopback) network: its own 127.0.0.N and its mDNS name."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
import threading
from pathlib import Path

from uota_core.errors import BoardError

OTA_PORT = 2018
REMOTEIO_PORT = 2019
SERVICE_TYPE = "_uota._tcp.local."

_LEASE_DIR = Path(tempfile.gettempdir()) / "uota-sim-addresses"


class AddressLease:
    """Holds 127.0.0.N for one board, across processes, until released.

    A lease is a flock on a file named after the address, so boards started by
    different supervisors (pytest-xdist workers, `uota sim run` in two shells) never collide.
    """

    def __init__(self, explicit: str | None = None, preferred: str | None = None) -> None:
        _LEASE_DIR.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        if explicit:
            problem = self._try(explicit)
            if problem:
                raise BoardError(f"address {explicit} is not available: {problem}; pick another address")
            self.addr = explicit
            return
        candidates = [f"127.0.0.{n}" for n in range(2, 255)]
        if preferred in candidates:
            candidates.remove(preferred)
            candidates.insert(0, preferred)
        for addr in candidates:
            if not self._try(addr):
                self.addr = addr
                return
        raise BoardError("no free loopback address in 127.0.0.2-254: stop some virtual boards")

    def _try(self, addr: str) -> str | None:
        if not addr.startswith("127."):
            return "virtual boards live on loopback addresses (127.x.y.z)"
        fd = os.open(_LEASE_DIR / f"{addr}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return "another virtual board holds it"
        for port in (OTA_PORT, REMOTEIO_PORT):
            busy = _port_in_use(addr, port)
            if busy:
                os.close(fd)
                return f"{addr}:{port} is already in use by another program ({busy})"
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _port_in_use(addr: str, port: int) -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "address in use"
        return exc.strerror or str(exc)
    finally:
        s.close()
    return None


class MdnsAnnouncer:
    """Announces `<hostname>.local` and a `_uota._tcp` service, as ESP-IDF's responder would.

    zeroconf is bound to 127.0.0.1 so nothing leaves the machine. Registration probes
    the name for ~1.5 s, so it runs in the background and never delays the boot.
    """

    def __init__(self, hostname: str, addr: str, properties: dict[str, str]) -> None:
        self.hostname = hostname
        self.addr = addr
        self.properties = properties
        self.registered = threading.Event()
        self.error: Exception | None = None
        self._zc = None
        self._closing = False
        self._thread = threading.Thread(target=self._register, name=f"mdns {hostname}", daemon=True)
        self._thread.start()

    def _register(self) -> None:
        try:
            from zeroconf import IPVersion, ServiceInfo, Zeroconf

            zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
            self._zc = zc
            info = ServiceInfo(
                SERVICE_TYPE,
                f"{self.hostname}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(self.addr)],
                port=OTA_PORT,
                server=f"{self.hostname}.local.",
                properties=self.properties,
            )
            if not self._closing:
                zc.register_service(info, allow_name_change=False)
                self.registered.set()
        except Exception as exc:  # a broken mDNS must never take the board down
            self.error = exc

    def close(self) -> None:
        self._closing = True
        self._thread.join(timeout=5)
        if self._zc is not None:
            try:
                self._zc.close()
            except Exception:
                pass
            self._zc = None
