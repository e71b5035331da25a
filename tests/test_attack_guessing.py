"""Online password guessing (docs/protocol.md "Authentication"): each wrong guess from a
source address doubles the pause before that source's next guess is checked (300 ms up to
5 s), on the OTA and RemoteIO ports alike; the owner still gets in, at once from another
address and within the cap from the guesser's own."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from attack_helpers import PASSWORD, healthy_board
from uota_core.remoteio import RemoteIOClient
from uota_core.session import Session
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(240)

CAP_S = 5.0  # device: throttle.CAP_MS
OTHER_SOURCE = "127.0.0.254"  # the owner's address in the "another address" check


def ota_guess(host: str, i: int) -> str:
    """One wrong guess on a fresh OTA connection; the device's answer."""
    with TcpLink(host, 2018, timeout=30) as link:
        link.write(b"hello\n")
        assert link.readline().startswith(b"hello ")
        link.write(f"challenge {i:032x}\n".encode())  # protocol 3: a guess follows the device's proof
        assert link.readline().startswith(b"proof ")
        link.write(f"auth {i:064x}\n".encode())
        return link.readline().decode().strip()


def remoteio_guess(host: str, i: int) -> dict[str, object]:
    with TcpLink(host, 2019, timeout=30) as link:
        assert json.loads(link.readline())["hello"]["auth"] is True
        link.write(json.dumps({"challenge": f"{i:032x}"}).encode() + b"\n")
        assert "proof" in json.loads(link.readline())
        link.write(json.dumps({"auth": f"{i:064x}"}).encode() + b"\n")
        return json.loads(link.readline())


def owner_from(host: str, source: str | None) -> float:
    """Seconds the owner's authenticated `version` took, from `source` (None: the default)."""
    started = time.monotonic()
    if source is None:
        link = TcpLink(host, 2018, timeout=30)
    else:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect((host, 2018))
        link = TcpLink.adopt(sock, f"{host}:2018 from {source}", timeout=30)
    with Session(link, PASSWORD) as s:
        s.open()
        s.version()
    return time.monotonic() - started


def test_guessing_slows_down_per_source_and_the_owner_still_gets_in(tmp_path: Path) -> None:
    with healthy_board(tmp_path, "guessboard", password=PASSWORD) as (board, _):
        answered = [time.monotonic()]
        for i in range(7):
            assert ota_guess(board.host, i) == "error: auth failed"
            answered.append(time.monotonic())
        gaps = [b - a for a, b in zip(answered, answered[1:])]
        print("seconds per wrong OTA guess:", " ".join(f"{g:.2f}" for g in gaps))
        # the pauses before guesses 2..7: 0.3, 0.6, 1.2, 2.4, 4.8, 5 s
        assert gaps[-1] >= CAP_S - 0.5 and gaps[-1] >= 4 * gaps[1], gaps
        assert sum(gaps) >= 13.0, gaps  # flat 0.3 s a guess would take about 2 s

        # another address is not slowed by this one's failures
        assert owner_from(board.host, OTHER_SOURCE) <= 1.5

        # the RemoteIO port shares the table: its next guess from here waits too
        started = time.monotonic()
        assert remoteio_guess(board.host, 99) == {"e": "auth failed"}
        assert time.monotonic() - started >= CAP_S - 0.5

        # the owner from the guesser's own address waits at most the cap
        waited = owner_from(board.host, None)
        print(f"the owner from the guesser's address waited {waited:.2f}s")
        assert waited <= CAP_S + 2.0, waited
        with RemoteIOClient(board.host, password=PASSWORD, timeout=30) as rio:
            assert rio.call("ping") == "pong"
