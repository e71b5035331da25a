"""Each virtual board has its own loopback address and mDNS name."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from serial_helpers import enter_raw, open_port, read_until
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(60)

# Device code as written for the ESP32 port: bind 0.0.0.0:2018 and answer with a name.
SERVER = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind({addr})\n"
    "s.listen(1)\n"
    "print('listening')\n"
    "c, peer = s.accept()\n"
    "c.send(b'hello from %s' % {name!r})\n"
    "c.close(); s.close()\n"
)


def _serve(board: VirtualBoard, name: str, addr_expr: str):
    port = open_port(board)
    enter_raw(board, port)
    port.write(SERVER.format(addr=addr_expr, name=name).encode() + b"\x04")
    read_until(port, b"listening")
    return port


def test_two_boards_listen_on_port_2018_side_by_side(tmp_path: Path) -> None:
    with VirtualBoard(tmp_path / "a", name="a", baud=None, mdns=False) as a, \
         VirtualBoard(tmp_path / "b", name="b", baud=None, mdns=False) as b:
        assert a.host != b.host
        assert a.serial_port != b.serial_port
        pa = _serve(a, "a", "('0.0.0.0', 2018)")
        pb = _serve(b, "b", "socket.getaddrinfo('0.0.0.0', 2018)[0][-1]")
        for board, expected in ((a, b"hello from a"), (b, b"hello from b")):
            with socket.create_connection((board.host, 2018), timeout=5) as c:
                assert c.recv(100) == expected
        for port in (pa, pb):
            read_until(port, b"\x04>")


def test_hostname_resolves_through_zeroconf_on_loopback(tmp_path: Path) -> None:
    from zeroconf import IPVersion, ServiceInfo, Zeroconf

    name = f"mdns-board-{os.getpid()}"  # another run's board of the same name would make the probe fail
    with VirtualBoard(tmp_path / "m", name=name, baud=None) as board:
        assert board.mdns_registered.wait(10), f"board never finished its mDNS announcement: {board._mdns and board._mdns.error!r}"
        zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        try:
            info = ServiceInfo("_uota._tcp.local.", f"{name}._uota._tcp.local.")
            assert info.request(zc, 5000)
            assert info.parsed_addresses() == [board.host]
            assert info.server == f"{name}.local."
            assert info.port == 2018
        finally:
            zc.close()
