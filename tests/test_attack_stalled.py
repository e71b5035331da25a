"""Stalled or malicious clients can't block the OTA server for others: a stranger that
connects and stays silent, trickles bytes, or stops mid-line is cut off by the
per-connection deadline, and the owner's next session (and RemoteIO) is served."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest

from attack_helpers import (PASSWORD, SIGNING_KEY, closed_by_device, flash_hashes, healthy_board, outside_staging,
                            random_bytes)
from uota_core.link import LinkError
from uota_core.remoteio import RemoteIOClient
from uota_core.session import Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(180)

DEADLINE = 5.0  # device/lib/uota/transports/wifi_tcp.py AUTH_MS
SLACK = 3.0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    with healthy_board(tmp_path_factory.mktemp("stalled"), "stallboard", password=PASSWORD,
                       signing_key=SIGNING_KEY) as (board, _):
        yield board


def silent(sock: socket.socket, stop: threading.Event) -> None:
    stop.wait(60)


def trickle(sock: socket.socket, stop: threading.Event) -> None:
    for byte in b"hello\nauth " + b"0" * 200:  # one byte a second: never a complete guess
        if stop.wait(1.0):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def half_line(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(b"hello\nauth 1234")
    stop.wait(60)


def never_reads(sock: socket.socket, stop: threading.Event) -> None:
    # asks for replies and never reads them, until the device's send would block
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        for _ in range(20000):
            if stop.is_set():
                return
            sock.send(b"ping\n" * 50)
    except OSError:
        return


STALLERS = {"silent": silent, "trickle": trickle, "half-line": half_line, "never-reads": never_reads}


@pytest.mark.parametrize("kind", [pytest.param("silent"),
                                  pytest.param("trickle", marks=pytest.mark.soak),
                                  pytest.param("half-line", marks=pytest.mark.soak),
                                  pytest.param("never-reads", marks=pytest.mark.soak)])
def test_a_stalled_stranger_does_not_block_the_owner(guarded: VirtualBoard, kind: str) -> None:
    board = guarded
    stop = threading.Event()
    stranger = socket.create_connection((board.host, 2018), timeout=5)
    worker = threading.Thread(target=STALLERS[kind], args=(stranger, stop), daemon=True)
    worker.start()
    try:
        # the stranger's connection is complete, so it is first in the listen queue
        started = time.monotonic()
        # the owner, queued behind the stranger: served once the deadline cut the stranger off
        with Session(TcpLink(board.host, 2018, timeout=DEADLINE + SLACK + 30), PASSWORD) as s:
            s.open()
            assert s.ping()
        owner_waited = time.monotonic() - started
        with RemoteIOClient(board.host, password=PASSWORD) as rio:
            assert rio.call("ping") == "pong"
        cut = closed_by_device(stranger, DEADLINE + SLACK)
    finally:
        stop.set()
        stranger.close()
        worker.join(5)
    assert owner_waited <= DEADLINE + SLACK, f"the owner waited {owner_waited:.1f}s behind a {kind} stranger"
    assert cut is not None, f"the device kept the {kind} stranger's connection open"


def test_an_authenticated_session_is_not_cut_by_the_strangers_deadline(guarded: VirtualBoard) -> None:
    board = guarded
    with Session(TcpLink(board.host, 2018), PASSWORD) as s:
        s.open()
        deadline = time.monotonic() + DEADLINE + 2
        while time.monotonic() < deadline:  # a legitimate, slow session: one command a second
            assert s.ping()
            time.sleep(1.0)  # noqa: the pace of a slow client is what this test is about
        s.version()  # still served after the strangers' deadline passed


# an app thread that allocates flat out: on the virtual board (the unix port) every GC it
# triggers signals the event loop's thread, which restarts a blocking socket call's timeout
ALLOCATING_APP = ("import uota\n\n"
                  "def run():\n    print('app started')\n    uota.mark_healthy()\n    while True:\n"
                  "        junk = [bytearray(64) for _ in range(32)]\n")


def test_the_deadline_holds_while_the_app_allocates(tmp_path: Path) -> None:
    with healthy_board(tmp_path, "gcboard", password=PASSWORD, app=ALLOCATING_APP) as (board, _):
        with socket.create_connection((board.host, 2018), timeout=5) as stranger:
            ota_cut = closed_by_device(stranger, DEADLINE + SLACK)
        with socket.create_connection((board.host, 2019), timeout=5) as stranger:
            rio_cut = closed_by_device(stranger, DEADLINE + SLACK)
        with Session(TcpLink(board.host, 2018, timeout=30), PASSWORD) as s:
            s.open()
            assert s.ping()
    assert ota_cut is not None, "a silent OTA stranger outlived the 5 s deadline while the app allocated"
    assert rio_cut is not None, "a silent RemoteIO stranger outlived the 5 s deadline while the app allocated"


RECORD_S = 5.0  # device/lib/uota/seal.py RECORD_MS: a record whole within this of its head
COMMAND_S = 15.0  # device/lib/uota/session.py COMMAND_MS: an authenticated session's idle limit
HOLD_S = 40.0  # how long the holder would hold (the old per-read idle limit was 30 s per byte)


def authenticated_holder(board: VirtualBoard, dribble: bool, stop: threading.Event) -> threading.Thread:
    """A password holder (or a relay that passed the owner's session through) that
    authenticates, then holds the session: idle, or with a 1024-byte record's head and a
    byte a second of its body. Returns once the session is authenticated."""
    s = Session(TcpLink(board.host, 2018, timeout=30), PASSWORD)
    s.open()
    sock = s.link.inner._sock  # under the record layer: these bytes are not a whole record

    def hold() -> None:
        try:
            if dribble:
                sock.sendall(b"\x04\x00")
            until = time.monotonic() + HOLD_S
            while time.monotonic() < until and not stop.wait(1.0):
                if dribble:
                    sock.sendall(b"\x00")
        except OSError:
            pass  # the device cut it off
        finally:
            sock.close()

    worker = threading.Thread(target=hold, daemon=True)
    worker.start()
    return worker


@pytest.mark.parametrize("dribble, bound", [pytest.param(True, RECORD_S, id="partial-record"),
                                            pytest.param(False, COMMAND_S, id="idle")])
def test_an_authenticated_session_that_stalls_does_not_keep_the_owner_out(guarded: VirtualBoard, dribble: bool,
                                                                          bound: float) -> None:
    board = guarded
    stop = threading.Event()
    worker = authenticated_holder(board, dribble, stop)
    try:
        started = time.monotonic()
        # the host's own timeouts: its hello waits out the board's bound on the holder (it
        # used to fail at its 10 s reply timeout while the board waited 15 s)
        with Session(TcpLink(board.host, 2018), PASSWORD) as s:
            s.open()
            s.version()
        owner_waited = time.monotonic() - started
        with RemoteIOClient(board.host, password=PASSWORD) as rio:  # the event loop runs again
            assert rio.call("ping") == "pong"
    finally:
        stop.set()
        worker.join(5)
    print(f"the owner's version behind a stalled session ({'partial record' if dribble else 'idle'}): "
          f"{owner_waited:.2f}s")
    assert owner_waited <= bound + SLACK, f"the owner waited {owner_waited:.1f}s behind a stalled authenticated session"


GRACE_S = 10.0  # device/lib/uota/transports/wifi_tcp.py GRACE_MS: a body's time before the minimum rate counts


@pytest.mark.parametrize("every", [pytest.param(1.0, id="1-per-s"), pytest.param(0.005, id="200-per-s")])
def test_a_trickled_file_body_does_not_hold_the_port(guarded: VirtualBoard, every: float) -> None:
    # a password holder (or a relay holding back the owner's records) sends a file body one
    # 1-byte record at a time: each record is whole at once and each wait is under the idle
    # limit, so only a bound on the body as a whole (a minimum rate) ends it. At 200 records
    # a second the records' bytes on the wire (about 34 each) outrun the minimum rate: the
    # rate counts body bytes, not wire bytes
    board = guarded
    before = outside_staging(flash_hashes(board))
    staged, big = b"print('staged')\n", random_bytes(20000, 11)
    files = {"app/staged.py": hashlib.sha256(staged).hexdigest(), "app/big.bin": hashlib.sha256(big).hexdigest()}
    holder = Session(TcpLink(board.host, 2018, timeout=30), PASSWORD, SIGNING_KEY)
    holder.open()
    holder.start_ota()
    holder.send_manifest(files, "9.9.9")
    holder.send_file("app/staged.py", len(staged), files["app/staged.py"], [staged])
    holder.link.write(f"file app/big.bin;{len(big)};{files['app/big.bin']}\n".encode())
    holder.link.flush()
    stop, cut = threading.Event(), threading.Event()

    def trickle_body() -> None:
        try:
            for byte in big[: int(HOLD_S / every)]:
                if stop.wait(every):
                    return
                holder.link.write(bytes([byte]))
                holder.link.flush()  # a record of its own
        except (OSError, LinkError):
            cut.set()  # the device ended the session
        finally:
            holder.close()

    worker = threading.Thread(target=trickle_body, daemon=True)
    worker.start()
    try:
        started = time.monotonic()
        with Session(TcpLink(board.host, 2018), PASSWORD) as s:  # the host's own timeouts
            s.open()
            s.version()
        owner_waited = time.monotonic() - started
        # the session ended with nothing applied; the staged file is kept, so a retry resumes
        with Session(TcpLink(board.host, 2018, timeout=30), PASSWORD, SIGNING_KEY) as s:
            s.open()
            s.start_ota()
            s.send_manifest(files, "9.9.9")
            still_needed = s.need()
            s.abort()
    finally:
        stop.set()
        worker.join(5)
    print(f"the owner's version behind a trickled file body: {owner_waited:.2f}s")
    assert owner_waited <= GRACE_S + SLACK, f"the owner waited {owner_waited:.1f}s behind a trickled file body"
    assert still_needed == ["app/big.bin"], f"a retry after the cut body needs {still_needed}"
    assert outside_staging(flash_hashes(board)) == before, "the cut body changed files outside the staging area"
