"""Attacks on the handshake itself (issue 11, breaks 3 and 9): a relay that passes a real
host's handshake through, on the OTA port or RemoteIO's, and then injects, reorders,
replays, drops or reads; a relay that edits the board's hello on its way (the `mpy` a
push compiles for, what `uota info` shows); impostor devices that can't prove the key;
what a captured handshake gives an offline guesser. Authentication is mutual and every later byte travels
in MAC'd, encrypted records (docs/protocol.md "Authentication", "Records", "RemoteIO")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from attack_helpers import HEALTHY_APP, PASSWORD, TapProxy, flash_hashes, make_project, secured_board, wait_until
from relay_helpers import Impostor, Relay, fake_hello, ota_impostor
from uota_core.cli import cli
from uota_core.link import LinkClosed, LinkError
from uota_core.remoteio import RemoteIOClient
from uota_core.seal import PROTO, RecordError
from uota_core.session import AuthError, Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
WIFI_PASSWORD = "wifi-Pa55-on-the-board"  # in config/ota.json on the board, as a real project has it
# `say` prints (text * n) on the console and to RemoteIO listeners, and returns it in capitals
APP = HEALTHY_APP.replace("def run():", "@remoteio.on('say')\ndef _(text='', n=1):\n"
                          "    print('said ' + text * n)\n    return text.upper()\n\n\ndef run():")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("relay")
    project = make_project(tmp / "proj", password=PASSWORD, app=APP)
    cfg = project / "config" / "ota.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "ssid": "lab", "password": WIFI_PASSWORD}))
    with secured_board(tmp / "board", project, name="relayboard") as b:
        # the pushed app's healthy mark, not the bootstrap boot's: tests snapshot the flash,
        # which the mark writes
        b.expect(r"app started[\s\S]*boot marked healthy", timeout=20)
        assert WIFI_PASSWORD.encode() in b.read_file("/config/ota.json")
        yield b


def wifi_forms() -> list[bytes]:
    raw = WIFI_PASSWORD.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw)]


def relayed(board: VirtualBoard, mode: str, inject: bytes = b"") -> tuple[Relay, Session]:
    relay = Relay((board.host, 2018), mode, inject)
    s = Session(TcpLink(*relay.addr, timeout=5), PASSWORD)
    s.open()
    assert relay.sealed.is_set()  # the board accepted the real host's proof through the relay
    return relay, s


# (what the relay sends the board once the host is in, as if the host sent it)
INJECTED = {
    "plain-commands": b"rm app/app.py\nget config/ota.json\n",
    "forged-record": b"\x00\x20" + bytes(32) + bytes(16) + b"rm app/app.py\nget config/ota.json\n",
}


@pytest.mark.parametrize("what", sorted(INJECTED))
def test_a_relay_cannot_inject_commands_after_the_hosts_handshake(board: VirtualBoard, what: str) -> None:
    # break 3: the relay waited for `uota version`'s handshake, then read the WiFi password
    before = flash_hashes(board)
    relay, s = relayed(board, "inject", INJECTED[what])
    with relay, s:
        with pytest.raises(LinkError):
            s.version()  # the board ended the connection at the first byte that isn't a record
        assert wait_until(relay.board_closed.is_set, 5, "the board to close the relayed connection")
    for form in wifi_forms():
        assert form not in relay.to_host, "the WiFi password went to the relay"
    assert b"error" not in relay.to_host.split(b"ok\n", 1)[-1]  # no reply at all to the injection
    assert flash_hashes(board) == before  # the injected rm did not run


@pytest.mark.parametrize("mode", ["reorder", "replay", "drop"])
def test_a_relay_cannot_reorder_replay_or_drop_the_hosts_records(board: VirtualBoard, mode: str) -> None:
    before = flash_hashes(board)
    relay, s = relayed(board, mode)
    # two commands in two records; the relay tampers with the first one
    first, second = (b"ping\n", b"version\n") if mode == "replay" else (b"rm app/app.py\n", b"ping\n")
    with relay, s:
        s.link.write(first)
        s.link.flush()  # type: ignore[attr-defined]
        s.link.write(second)
        replies = []
        with pytest.raises(LinkError):
            while True:
                replies.append(s._reply(timeout=5))
        assert wait_until(relay.board_closed.is_set, 5, "the board to close the relayed connection")
    if mode == "replay":
        # the original ping ran (its pong may be cut off by the reset); its copy and
        # everything after it did not
        assert replies in ([], ["pong"]), replies
    else:
        assert replies == [], replies  # the first record the board got was out of place
    assert flash_hashes(board) == before  # the rm never ran


def test_a_relay_reads_nothing_of_a_session(board: VirtualBoard) -> None:
    relay, s = relayed(board, "read")
    with relay, s:
        assert WIFI_PASSWORD.encode() in s.get("config/ota.json")  # the host reads it fine...
        assert s.get("main.py")
    for form in wifi_forms():  # ...the relay in between does not
        assert form not in relay.to_host and form not in relay.to_board
    assert b"get config/ota.json" not in relay.to_board  # nor which file was asked for


def replaced(pattern: bytes, value: bytes) -> Callable[[bytes], bytes]:
    """An edit of the hello line: the first match of `pattern`'s group 1 becomes `value`."""

    def edit(line: bytes) -> bytes:
        m = re.search(pattern, line)
        return line if m is None else line[: m.start(1)] + value + line[m.end(1):]

    return edit


def original_hello(relay: Relay) -> bytes:
    """The board's hello line as it sent it (the relay passed on an edited one)."""
    return bytes(relay.to_host).split(b"\n", 1)[0] + b"\n"


# what a host acts on: the .mpy version a push compiles for (issue 11: 6 became 5, the app
# failed and the board rolled back), and what `uota info` shows
OTA_HELLO_EDITS = {
    "mpy": replaced(rb'"mpy": (\d+)', b"5"),
    "version": replaced(rb'"version": ("[^"]*")', b'"6.6.6-evil"'),
    "release": replaced(rb'"release": (\d+)', b"999999"),
}


@pytest.mark.parametrize("field", sorted(OTA_HELLO_EDITS))
def test_a_relay_cannot_edit_the_hello_reply(board: VirtualBoard, field: str) -> None:
    with Relay((board.host, 2018), "read", edit_hello=OTA_HELLO_EDITS[field]) as relay:
        with Session(TcpLink(*relay.addr, timeout=5), PASSWORD) as s, \
                pytest.raises(AuthError, match="impostor or a relay"):
            s.open()
    assert relay.hello_sent and relay.hello_sent != original_hello(relay), relay.hello_sent
    # the host checked the device's proof, which covers the hello it got, and sent nothing keyed
    assert re.fullmatch(rb"hello\nchallenge [0-9a-f]{32}\n", relay.to_board), relay.to_board


def test_uota_info_refuses_a_hello_a_relay_edited(board: VirtualBoard, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(make_project(tmp_path / "proj", password=PASSWORD))
    with Relay((board.host, 2018), "read", edit_hello=OTA_HELLO_EDITS["version"]) as relay:
        result = CliRunner().invoke(cli, ["info", "--host", relay.addr[0], "--port", str(relay.addr[1])])
    assert result.exit_code == 1, result.output
    assert "error: " in result.output and "a relay" in result.output, result.output
    assert "6.6.6-evil" not in result.output  # the made-up version is not shown
    assert b"auth " not in relay.to_board


def test_an_impostor_that_cannot_prove_the_key_gets_nothing() -> None:
    with Impostor(ota_impostor(fake_hello())) as fake:
        with Session(TcpLink(*fake.addr), PASSWORD) as s, pytest.raises(AuthError, match="impostor or a relay"):
            s.open()
        sent = fake.wait()
    # the host asked and checked; it sent no proof, no command, no file
    assert re.fullmatch(rb"hello\nchallenge [0-9a-f]{32}\n", sent), sent


@pytest.mark.parametrize("hello,message", [
    (fake_hello(auth=False), "asks for no OTA password"),  # pretends to have no password
    (fake_hello(proto=2), "older uota stack"),  # an older stack's crackable handshake
    (fake_hello(proto=3), "older uota stack"),  # its proofs don't cover the hello
    (fake_hello(iterations=1000), "PBKDF2 iterations"),  # a cheap key to attack offline
], ids=["no-password", "protocol-2", "protocol-3", "few-iterations"])
def test_a_device_that_asks_for_less_gets_nothing(hello: dict, message: str) -> None:
    with Impostor(ota_impostor(hello)) as fake:
        with Session(TcpLink(*fake.addr), PASSWORD) as s, pytest.raises(AuthError, match=message) as e:
            s.open()
        sent = fake.wait()
    assert sent == b"hello\n", sent
    if hello["proto"] < PROTO or not hello["auth"]:
        assert "re-run `uota bootstrap`" in str(e.value)


def test_a_remoteio_impostor_gets_no_proof() -> None:
    sent: list[dict] = []

    def answer(line: bytes) -> bytes | None:
        sent.append(json.loads(line))
        return json.dumps({"proof": "00" * 32}).encode() + b"\n" if "challenge" in sent[-1] else b""

    greeting = json.dumps({"hello": fake_hello()}).encode() + b"\n"  # the device speaks first
    with Impostor(answer, greeting) as fake:
        with pytest.raises(AuthError, match="impostor or a relay"):
            RemoteIOClient(link=TcpLink(*fake.addr), password=PASSWORD)
        fake.wait()
    assert [list(f) for f in sent] == [["challenge"]], sent  # no proof of the host's, no call


def test_a_remoteio_impostor_that_asks_for_no_password_gets_nothing() -> None:
    # with the project's password, a board announcing none is an impostor (or lost its
    # secrets): the client would otherwise send its calls in clear
    greeting = json.dumps({"hello": fake_hello(auth=False)}).encode() + b"\n"
    with Impostor(lambda line: b"", greeting) as fake:
        with pytest.raises(AuthError, match="asks for no OTA password") as e:
            RemoteIOClient(link=TcpLink(*fake.addr), password=PASSWORD)
        assert fake.wait() == b""
    assert "re-run `uota bootstrap`" in str(e.value)


def test_a_captured_handshake_costs_a_pbkdf2_per_guess(board: VirtualBoard) -> None:
    # break 9: from a sniffed push, nonce + response gave an offline check at ~259,000
    # guesses/s. Now every keyed value on the wire is keyed with PBKDF2(password, salt, >=
    # 100,000 iterations), and neither the wire nor the board holds SHA256(password)
    from uota_core.auth import MIN_ITERATIONS, derive_key
    from uota_core.seal import hello_sum, proof

    with TapProxy((board.host, 2018)) as tap:
        with Session(TcpLink(*tap.addr), PASSWORD) as s:
            s.open()
            s.version()
        to_board, to_host = bytes(tap.to_server), bytes(tap.to_client)
    line = to_host.split(b"\n", 1)[0] + b"\n"
    hello, hsum = json.loads(line[6:]), hello_sum(line)
    assert re.fullmatch("[0-9a-f]{32}", hello["salt"]) and hello["iter"] >= MIN_ITERATIONS >= 100_000
    host_nonce = re.search(rb"challenge ([0-9a-f]{32})\n", to_board)[1].decode()  # type: ignore[index]
    dev_proof = re.search(rb"proof ([0-9a-f]{64})\n", to_host)[1].decode()  # type: ignore[index]
    host_proof = re.search(rb"auth ([0-9a-f]{64})\n", to_board)[1].decode()  # type: ignore[index]
    key = derive_key(PASSWORD, hello["salt"], hello["iter"])
    assert dev_proof == proof(key, "dev", hello["id"], hello["nonce"], host_nonce, hsum)
    assert host_proof == proof(key, "host", hello["id"], hello["nonce"], host_nonce, hsum)
    weak = hashlib.sha256(PASSWORD.encode()).digest()
    for nonce in (hello["nonce"], host_nonce):  # the old response, under either nonce
        old = hmac.new(weak, nonce.encode(), hashlib.sha256).hexdigest().encode()
        assert old not in to_board + to_host
    stored = json.loads(board.read_file("/config/.ota.secrets.json"))
    assert stored["otaKey"] == key.hex() and "otaPassword" not in stored
    assert weak.hex() not in json.dumps(stored) and PASSWORD not in json.dumps(stored)
    # the board never runs PBKDF2: the host derives the key and provisions it
    device_code = "\n".join(p.read_text() for p in (REPO / "device").rglob("*.py"))
    assert not re.search(r"pbkdf2\w*\(", device_code, re.I)


def test_a_wrong_password_is_refused_before_the_host_proves_anything(board: VirtualBoard) -> None:
    with TapProxy((board.host, 2018)) as tap:
        with Session(TcpLink(*tap.addr), "not-the-password") as s, \
                pytest.raises(AuthError, match="wrong OTA password"):
            s.open()
    assert b"challenge " in tap.to_server and b"auth " not in tap.to_server
    with Session(TcpLink(board.host, 2018), PASSWORD) as s:  # and the right one still works
        s.open()
        assert s.ping()


# ---- RemoteIO (port 2019): the same records after the same handshake -----------------------


def rio_relayed(board: VirtualBoard, mode: str, way: str = "up", inject: bytes = b"") -> tuple[Relay, RemoteIOClient]:
    relay = Relay((board.host, 2019), mode, inject, way=way, rio=True)
    client = RemoteIOClient(link=TcpLink(*relay.addr, timeout=5), password=PASSWORD, timeout=5)
    assert relay.sealed.is_set()  # the board accepted the real host's proof through the relay
    return relay, client


# RemoteIO's hello holds no version: a relay adds one (a host that read it would show it),
# or raises the protocol it announces
RIO_HELLO_EDITS = {
    "mpy": replaced(rb'\{"hello": \{()', b'"mpy": 5, '),
    "version": replaced(rb'\{"hello": \{()', b'"version": "6.6.6-evil", '),
    "release": replaced(rb'\{"hello": \{()', b'"release": 999999, '),
    "proto": replaced(rb'"proto": (\d+)', b"9"),
}


@pytest.mark.parametrize("field", sorted(RIO_HELLO_EDITS))
def test_a_relay_cannot_edit_the_remoteio_hello(board: VirtualBoard, field: str) -> None:
    with Relay((board.host, 2019), "read", rio=True, edit_hello=RIO_HELLO_EDITS[field]) as relay:
        with pytest.raises(AuthError, match="impostor or a relay"):
            RemoteIOClient(link=TcpLink(*relay.addr, timeout=5), password=PASSWORD, timeout=5)
    assert relay.hello_sent and relay.hello_sent != original_hello(relay), relay.hello_sent
    sent = [json.loads(line) for line in relay.to_board.splitlines()]
    assert [list(f) for f in sent] == [["challenge"]], sent  # no proof of the host's, no call


def said(board: VirtualBoard, text: str) -> int:
    """How often the board's `say` handler ran with `text` (it prints on the console)."""
    # a call on a connection of our own runs after anything the relay got in, and its print
    # shows the console has caught up with the board
    marker = f"after-{text}"
    with RemoteIOClient(board.host, password=PASSWORD, timeout=10) as rio:
        assert rio.call("say", text=marker) == marker.upper()
    board.expect(f"said {marker}", timeout=10)
    return board.console.count(f"said {text}")


def test_a_relay_reads_no_remoteio_print_or_result(board: VirtualBoard) -> None:
    relay, rio = rio_relayed(board, "read")
    with relay, rio:
        assert rio.call("say", text="for-the-owner-only") == "FOR-THE-OWNER-ONLY"
        assert rio.expect("said for-the-owner-only", timeout=10)
        assert rio.call("echo", n=424242) == 424242
    for clear in (b"for-the-owner-only", b"FOR-THE-OWNER-ONLY", b"424242", b'"call"', b'"p":', b'"r":'):
        assert clear not in relay.to_host and clear not in relay.to_board, clear


RIO_CALL = json.dumps({"id": 99, "call": "say", "args": {"text": "injected"}}).encode() + b"\n"
RIO_INJECTED = {
    "plain-call": RIO_CALL,
    "forged-record": b"\x00\x20" + bytes(32) + bytes(16) + RIO_CALL,
}


@pytest.mark.parametrize("what", sorted(RIO_INJECTED))
def test_a_relay_cannot_inject_a_remoteio_call(board: VirtualBoard, what: str) -> None:
    before = said(board, "injected")
    relay, rio = rio_relayed(board, "inject", inject=RIO_INJECTED[what])
    with relay, rio:
        with pytest.raises(LinkClosed, match="refused a record from this host"):
            rio.call("ping")  # the board ended the connection at the first byte that isn't a record
        assert wait_until(relay.board_closed.is_set, 5, "the board to close the relayed connection")
    assert b"injected" not in relay.to_host  # no reply, no print of it
    assert said(board, "injected") == before  # the injected call never ran


@pytest.mark.parametrize("mode", ["reorder", "replay", "drop"])
def test_a_relay_cannot_reorder_replay_or_drop_remoteio_calls(board: VirtualBoard, mode: str) -> None:
    first, second = f"first-{mode}", f"second-{mode}"
    relay, rio = rio_relayed(board, mode)
    with relay, rio:
        # two calls in two records, sent before any reply is read; the relay tampers with the first
        for i, text in enumerate((first, second)):
            rio.link.write(json.dumps({"id": 1000 + i, "call": "say", "args": {"text": text}}).encode() + b"\n")
            rio.link.flush()  # type: ignore[attr-defined]
        results = []
        with pytest.raises(LinkClosed, match="refused a record from this host"):
            while True:
                frame = rio._frame(5)
                if "r" in frame:
                    results.append(frame["r"])
        assert wait_until(relay.board_closed.is_set, 5, "the board to close the relayed connection")
    # a replayed call ran at most once, the original (the board may end the connection before
    # it runs: the copy can arrive in the same read); nothing out of place or after a gap ran
    if mode == "replay":
        assert results in ([], [first.upper()]) and said(board, first) <= 1, results
    else:
        assert results == [] and said(board, first) == 0, results
    assert said(board, second) == 0


@pytest.mark.parametrize("mode", ["reorder", "replay", "drop", "inject"])
def test_a_relay_cannot_tamper_with_what_remoteio_sends_the_host(board: VirtualBoard, mode: str) -> None:
    # the call's result and its 1.5-2 KB print leave the board in two records
    forged = b"\x00\x20" + bytes(32) + bytes(16) + b'{"id": 1, "r": "forged"}\n{"p": "forged print"}\n'
    relay, rio = rio_relayed(board, mode, way="down", inject=forged)
    chunks = []
    with relay, rio, pytest.raises(RecordError, match="forged, replayed or reordered"):
        assert rio.call("say", text=f"{mode}-down-", n=150) == f"{mode}-down-".upper()  # a replayed record is whole
        chunks.extend(rio.listen(timeout=10))  # the next record gives it away
    assert not any("forged" in c for c in chunks)
