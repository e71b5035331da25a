"""Floods and port hogging (docs/reliability.md "Floods"): strangers that open idle
connections, flood RemoteIO with calls they never read, or outnumber the listeners can't
lock the owner out, grow the board's RAM, or push an authenticated listener off."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from attack_helpers import PASSWORD, closed_by_device, healthy_board, wait_until
from uota_core.connect import wait_reachable
from uota_core.errors import UotaError
from uota_core.link import LinkError
from uota_core.remoteio import RemoteIOClient
from uota_core.session import Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(180)

AUTH_S = 5.0  # device: wifi_tcp.AUTH_MS and remoteio.AUTH_MS
SLACK = 3.0
OWNER_BOUND = 2.0  # the owner's `version` behind idle strangers, connect to reply


@pytest.fixture(scope="module")
def floods(tmp_path_factory: pytest.TempPathFactory):
    with healthy_board(tmp_path_factory.mktemp("floods"), "floodboard", password=PASSWORD) as (board, _):
        yield board


def strangers(board: VirtualBoard, port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection((board.host, port), timeout=5) for _ in range(n)]


def owner_version(board: VirtualBoard, timeout: float = 30, source: str | None = None) -> float:
    """Seconds the owner's `uota version` (connect, hello, auth, version) took, from its
    usual address or from `source`."""
    started = time.monotonic()
    if source is None:
        link = TcpLink(board.host, 2018, timeout=timeout)
    else:
        sock = socket.socket()
        try:
            sock.bind((source, 0))
            sock.settimeout(timeout)
            sock.connect((board.host, 2018))
        except OSError:
            sock.close()
            raise
        link = TcpLink.adopt(sock, "owner", timeout=timeout)
    with Session(link, PASSWORD) as s:
        s.open()
        s.version()
    return time.monotonic() - started


def test_idle_strangers_do_not_lock_the_owner_out(floods: VirtualBoard) -> None:
    # the attack: idle connections to 2018, renewed before each of the owner's 5 tries;
    # more of them than the board holds waiting (wifi_tcp.WAITING = 4)
    board = floods
    held: list[socket.socket] = []
    waits = []
    try:
        for _ in range(5):
            held += strangers(board, 2018, 6)
            waits.append(owner_version(board))
    finally:
        for s in held:
            s.close()
    print("owner's version behind 6 idle strangers, s:", " ".join(f"{w:.2f}" for w in waits))
    assert max(waits) <= OWNER_BOUND, f"the owner waited {max(waits):.1f}s behind idle strangers: {waits}"


CHURN_PER_S = 50
CHURN_THREADS = 3  # a connect waits while the board's listen queue is full: several keep the pace
CHURN_S = 4.0
STRANGERS = [f"127.0.0.{i}" for i in range(77, 85)]  # the strangers' own source addresses, as on the LAN


# what each churned connection sends before it is left idle: a byte, or as far into the
# handshake as a stranger gets (hello and challenge: the owner's own stage while it derives
# the key, so ranking by progress alone can't protect it)
OPENINGS = {("byte", 2018): b"h", ("byte", 2019): b"h",
            ("handshake", 2018): b"hello\nchallenge " + b"0" * 32 + b"\n",
            ("handshake", 2019): b'{"challenge": "' + b"0" * 32 + b'"}\n'}


def churn(board: VirtualBoard, port: int, opening: bytes, sources: list[str], stop: threading.Event,
          opened: list[int]) -> None:
    """A stranger's connection churn: open, send `opening`, leave it idle, at its share of
    CHURN_PER_S a second, from each of `sources` in turn."""
    held: list[socket.socket] = []
    try:
        until = time.monotonic() + CHURN_S + 30  # bounded even if the test's stop never comes
        while time.monotonic() < until and not stop.wait(CHURN_THREADS / CHURN_PER_S):
            s = socket.socket()
            try:
                s.bind((sources[opened[0] % len(sources)], 0))
                s.settimeout(2)
                s.connect((board.host, port))
                s.send(opening)
            except OSError:
                s.close()
                continue
            held.append(s)
            opened[0] += 1
    finally:
        for s in held:
            s.close()


def hold(board: VirtualBoard, port: int, opening: bytes, source: str, stop: threading.Event,
         opened: list[int]) -> None:
    """A stranger holding a place: open, send `opening`, and open again the moment the board
    closes it (round 4's attack)."""
    until = time.monotonic() + CHURN_S + 30  # bounded even if the test's stop never comes
    while time.monotonic() < until and not stop.is_set():
        with socket.socket() as s:
            try:
                s.bind((source, 0))
                s.settimeout(0.2)
                s.connect((board.host, port))
                s.send(opening)
                opened[0] += 1
                while not stop.is_set() and time.monotonic() < until:
                    try:
                        if not s.recv(4096):
                            break  # closed: take a place again at once
                    except TimeoutError:
                        continue
            except OSError:
                stop.wait(0.01)


def owner_once(board: VirtualBoard, port: int, source: str | None = None) -> None:
    if port == 2018:
        owner_version(board, timeout=10, source=source)
    else:
        with RemoteIOClient(board.host, password=PASSWORD, timeout=10) as rio:
            assert rio.call("ping") == "pong"


def owner_under_churn(board: VirtualBoard, port: int, kind: str, sources: list[str],
                      owner_from: str | None = None) -> None:
    """The owner's tries (from its usual address, or `owner_from`), one after another for
    CHURN_S, while strangers churn connections from the `sources` addresses (`kind` "hold":
    at least 4 strangers, spread over them, each taking a place again the moment it loses
    one); every try must get in at the first attempt."""
    stop = threading.Event()
    opened = [0]
    if kind == "hold":
        opening = OPENINGS["handshake", port]
        workers = [threading.Thread(target=hold, args=(board, port, opening, sources[i % len(sources)], stop,
                                                       opened), daemon=True) for i in range(max(len(sources), 4))]
    else:
        workers = [threading.Thread(target=churn, args=(board, port, OPENINGS[kind, port], sources, stop, opened),
                                    daemon=True) for _ in range(CHURN_THREADS)]
    for w in workers:
        w.start()
    results: list[str] = []
    try:
        wait_until(lambda: opened[0] >= min(10, len(workers)), 10, "the churn to start")
        began, was = time.monotonic(), opened[0]
        until = began + CHURN_S
        while time.monotonic() < until and len(results) < 1000:
            try:
                owner_once(board, port, owner_from)
                results.append("ok")
            except (UotaError, OSError) as e:
                results.append(f"{type(e).__name__}: {e}")
        churned, took = opened[0] - was, time.monotonic() - began
    finally:
        stop.set()
        for w in workers:
            w.join(40)
    failed = [r for r in results if r != "ok"]
    print(f"port {port}, {kind}, {len(sources)} source(s): the owner got in {len(results) - len(failed)} of "
          f"{len(results)} times under a churn of {churned} connections in {took:.1f} s")
    assert results and not failed, (f"{len(failed)} of the owner's {len(results)} tries failed: {failed[:3]}; "
                                    f"{board.describe()}; console: {board.console[-1500:]}")


@pytest.fixture
def single_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    # the board's lobby is under test, not the host's second try (link.HANDSHAKE_TRIES)
    import uota_core.remoteio

    monkeypatch.setattr(uota_core.remoteio, "HANDSHAKE_TRIES", 1)


@pytest.mark.parametrize("sources", [1, len(STRANGERS)])
@pytest.mark.parametrize("kind", ["byte", "handshake", "hold"])
@pytest.mark.parametrize("port", [2018, 2019])
def test_strangers_churning_connections_do_not_shut_the_owner_out(floods: VirtualBoard, single_tries: None,
                                                                   port: int, kind: str, sources: int) -> None:
    # every newcomer used to push out the oldest unauthenticated connection, the owner's
    # mid-handshake among them: at 50/s the owner's `version` failed 7 of 7. Ranked by
    # handshake progress, strangers that send hello and challenge still did (0 of 17).
    # Places shared per source address held against one address, not against 8 (the
    # owner's `version` 248 of 309 here, `ping` 950 of 1000): an address that proved the
    # password now keeps its place ahead of strangers (uota.lobby). The owner has used the
    # board before the attack, as an owner has (its bootstrap and pushes).
    owner_once(floods, port)
    owner_under_churn(floods, port, kind, STRANGERS[:sources])


def test_a_stranger_churning_from_a_known_address_does_not_shut_out_the_owners_new_one(
        floods: VirtualBoard, single_tries: None) -> None:
    # a known address is only an address (the owner's old DHCP lease, or everyone behind the
    # owner's NAT): one churning from it got every place kept for known addresses, and the
    # owner, from an address the board hadn't met, lost its place to each next connection
    owner_once(floods, 2018)  # 127.0.0.1 is known
    owner_under_churn(floods, 2018, "hold", ["127.0.0.1"], owner_from="127.0.3.1")


def test_a_relay_from_new_addresses_does_not_push_the_owners_address_off_the_known_list(
        floods: VirtualBoard) -> None:
    # a relay passing the owner's handshake through (round 5: cut after `ok`, so the host
    # tries again) is remembered under its own address, one new address a try: 2 commands
    # pushed the owner's address off the list of the last 4. The list now keeps the most
    # proven addresses. Each proof below is the owner's password arriving from another
    # address, as through such a relay.
    board = floods
    for _ in range(2):
        owner_once(board, 2018)
    for i in range(1, 2 * 4 + 1):
        owner_once(board, 2018, source=f"127.5.0.{i}")
    assert board.flash is not None
    kept = [a for a, _ in json.loads(board.flash.read_file("/ota_known.json"))]
    assert "127.0.0.1" in kept and len(kept) == 4, kept


@pytest.mark.timeout(240)
def test_the_owner_stays_known_across_a_reset(floods: VirtualBoard, single_tries: None) -> None:
    # a push ends with a reset: the addresses that proved the password are kept in flash
    board = floods
    owner_once(board, 2018)
    board.reset()
    assert board.flash is not None
    assert "127.0.0.1" in [a for a, _ in json.loads(board.flash.read_file("/ota_known.json"))]
    wait_reachable(board.host, 2018, 30)  # a connection that proves nothing
    wait_reachable(board.host, 2019, 30)
    owner_under_churn(board, 2018, "handshake", STRANGERS)
    owner_under_churn(board, 2019, "handshake", STRANGERS)


def test_a_stranger_flooding_calls_is_dropped_and_costs_the_others_nothing(floods: VirtualBoard) -> None:
    board = floods
    memory_errors = board.console.count("MemoryError")
    with RemoteIOClient(board.host, password=PASSWORD) as listener:
        flooder = socket.socket()
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # reads nothing anyway
        flooder.connect((board.host, 2019))
        flooder.settimeout(0.5)
        calls = b"".join(json.dumps({"id": i, "call": "ping"}).encode() + b"\n" for i in range(50))
        sent, dropped, deadline = 0, False, time.monotonic() + AUTH_S + SLACK
        while sent < 2000 and time.monotonic() < deadline:  # bounded: 100,000 calls, 8 s
            try:
                flooder.sendall(calls)
                sent += 1
            except TimeoutError:
                continue  # the board stopped reading it
            except OSError:
                dropped = True
                break
        try:
            cut = 0.0 if dropped else closed_by_device(flooder, AUTH_S + SLACK)
        finally:
            flooder.close()
        assert listener.call("ping") == "pong"  # the listener connected before it was served all along
        with RemoteIOClient(board.host, password=PASSWORD) as late:
            assert late.call("echo", n=5) == 5
    assert cut is not None, f"the flooder ({sent * 50} calls sent) was never dropped"
    assert board.console.count("MemoryError") == memory_errors


def test_a_listener_that_stops_reading_loses_no_reply(floods: VirtualBoard) -> None:
    # an authenticated caller that sends far more calls than it reads is held back (its
    # input is left unread), not dropped, and gets every reply once it reads again
    board = floods
    n, payload = 1500, "x" * 200
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((board.host, 2019))
    with RemoteIOClient(link=TcpLink.adopt(sock, "caller", timeout=30), password=PASSWORD) as caller:
        with RemoteIOClient(board.host, password=PASSWORD) as other:
            free_before = other.call("free_mem")
            lines = [json.dumps({"id": i, "call": "echo", "args": {"n": f"{i}{payload}"}}).encode() + b"\n"
                     for i in range(1, n + 1)]
            done = threading.Event()
            errors: list[BaseException] = []

            def send_all() -> None:
                try:
                    for line in lines:
                        caller.link.write(line)
                except BaseException as e:  # reported below
                    errors.append(e)
                finally:
                    done.set()

            writer = threading.Thread(target=send_all, daemon=True)
            writer.start()
            done.wait(3.0)  # by then the board has stopped taking its calls (or taken them all)
            assert other.call("ping") == "pong"  # others are served meanwhile
            free_during = other.call("free_mem")
            got = []
            while len(got) < n:
                frame = json.loads(caller.link.readline(timeout=30))
                if "p" in frame:
                    continue
                got.append(frame)
            writer.join(30)
    assert not errors, errors
    assert [f.get("id") for f in got] == list(range(1, n + 1))
    assert all(f.get("r") == f"{f['id']}{payload}" for f in got)
    assert free_during >= free_before - 16 * 1024, (free_before, free_during)


def test_strangers_do_not_push_an_authenticated_listener_off(floods: VirtualBoard) -> None:
    board = floods
    with RemoteIOClient(board.host, password=PASSWORD) as listener:
        held = strangers(board, 2019, 8)
        try:
            for s in held:  # each was accepted: its hello arrived
                assert b'"hello"' in s.recv(4096)
            assert listener.call("ping") == "pong"
            with RemoteIOClient(board.host, password=PASSWORD) as owner:  # the owner still gets in too
                assert owner.call("ping") == "pong"
        finally:
            for s in held:
                s.close()


def test_an_idle_stranger_on_remoteio_is_closed_after_the_deadline(floods: VirtualBoard) -> None:
    board = floods
    with RemoteIOClient(board.host, password=PASSWORD) as listener:
        stranger = socket.create_connection((board.host, 2019), timeout=5)
        try:
            assert b'"hello"' in stranger.recv(4096)
            cut = closed_by_device(stranger, AUTH_S + SLACK)
        finally:
            stranger.close()
        assert cut is not None and cut <= AUTH_S + SLACK, "the idle stranger kept its RemoteIO connection"
        assert listener.call("ping") == "pong"  # an authenticated listener has no such deadline


def test_a_fifth_listener_replaces_the_oldest(floods: VirtualBoard) -> None:
    # strangers can't push a listener off, but the owner's own stale listeners can't lock
    # it out either: at most 4 authenticated, and a 5th takes the oldest one's place
    board = floods
    clients = []
    try:
        for _ in range(5):
            clients.append(RemoteIOClient(board.host, password=PASSWORD))
            assert clients[-1].call("ping") == "pong"  # authenticated before the next one comes
        assert [c.call("echo", n=i) for i, c in enumerate(clients[1:], 1)] == [1, 2, 3, 4]
        with pytest.raises(LinkError):
            clients[0].call("ping")
    finally:
        for c in clients:
            c.close()
