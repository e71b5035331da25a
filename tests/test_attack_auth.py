"""Attacks on authentication (DESIGN.md "Auth is challenge-response"): the password and
the keys never cross a link in clear, wrong guesses are slow, nothing that changes the
board works before auth, and secret comparisons don't short-circuit."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attack_helpers import (PASSWORD, SIGNING_KEY, TapProxy, flash_hashes, healthy_board, secret_forms,
                            serial_tap, wait_until)
from uota_core.auth import MAX_ITERATIONS, PASSWD_SIG_TAG, command_signature, new_salt, passwd_request
from uota_core.config import load_config
from uota_core.errors import UotaError
from uota_core.connect import open_remoteio, open_session, wait_reachable
from uota_core.push import push
from uota_core.remoteio import RemoteIOClient
from uota_core.session import AuthError, DeviceError, Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
NEW_PASSWORD = "an0ther-passw0rd-never-on-the-wire"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory):
    """One board with a password and a signing key, shared by this module's tests."""
    with healthy_board(tmp_path_factory.mktemp("auth"), "authboard", password=PASSWORD,
                       signing_key=SIGNING_KEY) as board_and_project:
        yield board_and_project


def assert_no_secret(captured: bytes, *secrets: str, keys: tuple[bytes, ...] = ()) -> None:
    """No form of a password (or the signing key) and no form of a PBKDF2 key K in `captured`."""
    forms = [form for secret in secrets for form in secret_forms(secret)]
    forms += [form for k in keys for form in (k, k.hex().encode(), k.hex().upper().encode(), base64.b64encode(k))]
    for form in forms:
        assert form not in captured, f"a form of a secret crossed the link: {form[:12]!r}..."


def stored_key(board: VirtualBoard) -> bytes:
    """K, the PBKDF2 key of the OTA password, as the board stores it."""
    return bytes.fromhex(json.loads(board.read_file("/config/.ota.secrets.json"))["otaKey"])


def test_no_password_or_key_on_the_tcp_link(locked: tuple[VirtualBoard, Path]) -> None:
    board, project = locked
    cfg = load_config(project)
    app = project / "app" / "app.py"
    app.write_text(app.read_text() + "# pushed through the tap\n")
    keys = [stored_key(board)]  # K, then K' and K'' after each password change below
    with TapProxy((board.host, 2018)) as ota, TapProxy((board.host, 2019)) as rio:
        mark = board.console_mark()
        with Session(TcpLink(*ota.addr), cfg.password, cfg.signing_key) as s:
            s.open()
            # plain bodies: a secret inside a pushed file would show up in the capture
            assert push(s, cfg, "fast", version="tap-1", compress=False).committed
        board.expect("boot marked healthy", timeout=30, since=mark)
        wait_reachable(board.host, 2018)
        with Session(TcpLink(*ota.addr), cfg.password, cfg.signing_key) as s:  # a password change, then back
            s.open()
            s.passwd(NEW_PASSWORD)
        keys.append(stored_key(board))
        with Session(TcpLink(*ota.addr), NEW_PASSWORD, cfg.signing_key) as s:
            s.open()
            s.passwd(PASSWORD)
        keys.append(stored_key(board))
        with RemoteIOClient(link=TcpLink(*rio.addr), password=PASSWORD) as client:
            assert client.call("echo", n=7654321) == 7654321
            assert client.call("version") == {"version": "tap-1"}
        captured = bytes(ota.to_server + ota.to_client + rio.to_server + rio.to_client)
    # the tap really saw the session: the mutual proofs; the manifest and the file went in
    # encrypted records, so neither appears in clear
    assert b"challenge " in ota.to_server and b"auth " in ota.to_server and b"proof " in ota.to_client
    assert b'"sig":' not in ota.to_server and b"pushed through the tap" not in ota.to_server
    assert len(ota.to_server) > len(app.read_bytes())
    assert b'{"auth": "ok"}' in rio.to_client
    # ...and so did RemoteIO's calls and results after its handshake
    assert b"7654321" not in rio.to_server + rio.to_client and b"tap-1" not in rio.to_client
    assert len(set(keys)) == 3  # the password changes really made new keys
    assert_no_secret(captured, PASSWORD, NEW_PASSWORD, SIGNING_KEY, keys=tuple(keys))


def test_a_passwd_with_more_iterations_than_the_host_accepts_is_refused(locked: tuple[VirtualBoard, Path]) -> None:
    # a key of more than MAX_ITERATIONS would make the host refuse the board at every hello,
    # until a USB bootstrap: the host won't send one, and the board won't take one
    board, _ = locked
    before = board.read_file("/config/.ota.secrets.json")
    too_many = MAX_ITERATIONS + 1
    with Session(TcpLink(board.host, 2018), PASSWORD, SIGNING_KEY) as s:
        s.open()
        with pytest.raises(UotaError, match="10000000.*password not changed"):
            s.passwd(NEW_PASSWORD, iterations=too_many)
        # a raw request, as a hostile or older host would send it (the key's value doesn't
        # matter: the board can't tell, and deriving 10 M iterations would take seconds)
        request = passwd_request(s._key, s.info.nonce, s.host_nonce, bytes(32), new_salt(), too_many)
        request += ";" + command_signature(SIGNING_KEY, PASSWD_SIG_TAG, s.info.id, s.info.nonce, s.info.release,
                                           request)  # signed: the iterations are what's refused
        with pytest.raises(DeviceError, match="100000 to 10000000 iterations"):
            s.request("passwd " + request)
        assert s.ping()  # the session goes on
    assert board.read_file("/config/.ota.secrets.json") == before, "a refused passwd changed the secrets"
    with Session(TcpLink(board.host, 2018), PASSWORD) as s:  # the old password still opens it
        info = s.open()
        assert info is not None and info.iter <= MAX_ITERATIONS


def test_no_password_or_key_on_the_serial_line(locked: tuple[VirtualBoard, Path]) -> None:
    board, project = locked
    cfg = load_config(project)
    app = project / "app" / "app.py"
    app.write_text(app.read_text() + "# pushed over the tapped serial line\n")
    key = stored_key(board)
    mark = board.console_mark()
    with serial_tap(board) as (to_board, to_host):
        with open_session(cfg, "serial", port=board.serial_port) as s:
            assert push(s, cfg, "fast", version="tap-serial", compress=False).committed
        board.expect("boot marked healthy", timeout=30, since=mark)
        with open_remoteio(cfg, "serial", port=board.serial_port) as rio:  # RemoteIO on the UART
            assert rio.call("echo", n=7654321) == 7654321
            assert rio.call("version") == {"version": "tap-serial"}
    assert b"challenge " in to_board and b"auth " in to_board  # the tap saw the handshake...
    assert b"over the tapped serial line" not in to_board  # ...and the file only encrypted
    assert b'{"auth": "ok"}' in to_host  # and RemoteIO's; its call and results in records too
    assert b"7654321" not in to_board + to_host and b'"version": "tap-serial"' not in to_host
    assert_no_secret(bytes(to_board + to_host), PASSWORD, SIGNING_KEY, keys=(key,))
    wait_reachable(board.host, 2018)


def _guess(link: TcpLink, response: str) -> str:
    link.write(b"hello\n")
    assert link.readline().startswith(b"hello ")
    link.write(b"challenge " + b"ab" * 16 + b"\n")
    assert link.readline().startswith(b"proof ")
    link.write(f"auth {response}\n".encode())
    return link.readline().decode().strip()


def test_wrong_passwords_are_slowed_down_on_the_ota_port(locked: tuple[VirtualBoard, Path]) -> None:
    board, _ = locked
    guesses = 5
    with TcpLink(board.host, 2018) as link:
        started = time.monotonic()
        for i in range(guesses):
            assert _guess(link, f"{i:064x}") == "error: auth failed"
        per_guess = (time.monotonic() - started) / guesses
    # a new connection per guess doesn't escape the delay either
    started = time.monotonic()
    for i in range(guesses):
        with TcpLink(board.host, 2018) as link:
            assert _guess(link, f"{i:064x}") == "error: auth failed"
    per_connection = (time.monotonic() - started) / guesses
    assert per_guess >= 0.25 and per_connection >= 0.25, (per_guess, per_connection)
    with Session(TcpLink(board.host, 2018), PASSWORD) as s:  # the right password still works at once
        s.open()
        s.version()  # raises AuthError if refused


def test_wrong_passwords_are_slowed_down_on_remoteio(locked: tuple[VirtualBoard, Path]) -> None:
    board, _ = locked
    guesses = 5
    started = time.monotonic()
    for i in range(guesses):  # one guess per connection: the attacker reconnects each time
        with TcpLink(board.host, 2019) as link:
            assert json.loads(link.readline())["hello"]["auth"] is True
            link.write(json.dumps({"challenge": "cd" * 16}).encode() + b"\n")
            assert "proof" in json.loads(link.readline())
            link.write(json.dumps({"auth": f"{i:064x}"}).encode() + b"\n")
            assert json.loads(link.readline()) == {"e": "auth failed"}
    per_guess = (time.monotonic() - started) / (guesses - 1)  # the first one is answered at once
    assert per_guess >= 0.25, per_guess
    with RemoteIOClient(board.host, password=PASSWORD) as client:
        assert client.call("ping") == "pong"


# every command but ping/hello/auth, each with an argument that would change the board
REFUSED = ["version", "ls", "ls /", "ls config", "get main.py", "get config/.ota.secrets.json", "files",
           "rm main.py", "rm app/app.py", "wipe", "reset", "start_ota", "need", "end_ota", "abort",
           "passwd " + "00" * 32 + ";" + "00" * 32]


def _refused_everywhere(s: Session) -> None:
    for line in REFUSED:
        with pytest.raises(AuthError, match="auth required"):
            s.request(line)
    assert s.ping()  # still the same, in-sync connection


def test_every_command_is_refused_before_auth_over_tcp(locked: tuple[VirtualBoard, Path]) -> None:
    board, _ = locked
    before = flash_hashes(board)
    boots = board.console.count("rst:")
    with Session(TcpLink(board.host, 2018)) as s:
        _refused_everywhere(s)  # before any hello
        with pytest.raises(DeviceError, match="send hello first"):
            s.request("auth " + "0" * 64)
    with Session(TcpLink(board.host, 2018)) as s:
        assert s.hello().auth
        _refused_everywhere(s)
        with pytest.raises(DeviceError, match="send hello first, then challenge"):
            s.request("auth " + "0" * 64)  # the device proves itself first
        assert s.request("challenge " + "0" * 32).startswith("proof ")
        _refused_everywhere(s)  # a challenge authenticates nothing
        with pytest.raises(DeviceError, match="send hello first"):
            s.request("challenge " + "1" * 32)  # one challenge per hello
        with pytest.raises(AuthError, match="auth failed"):
            s.request("auth " + "0" * 64)
        _refused_everywhere(s)  # a wrong guess authenticates nothing
        with pytest.raises(DeviceError, match="send hello first"):
            s.request("auth " + "0" * 64)  # the nonce is spent: no second guess without hello
    with Session(TcpLink(board.host, 2018), PASSWORD) as s:
        s.open()
        s.version()  # raises AuthError if refused
        s.hello()  # a new hello drops the authentication (inside the records)
        _refused_everywhere(s)
    # bodies are never read as commands: the connection closes after the refusal
    for header, body in ((b"manifest 20\n", b"rm main.py\nwipe\nreset\n"), (b"file main.py;5;" + b"0" * 64 + b"\n", b"wipe\n")):
        with TcpLink(board.host, 2018) as link:
            link.write(b"hello\n")
            link.readline()
            link.write(header + body)
            assert link.readline() == b"error: auth required\n"
            assert wait_until(lambda: _closed(link), 5, "the device to close the connection")
    assert flash_hashes(board) == before
    assert board.console.count("rst:") == boots  # `reset` didn't reset it either


def _closed(link: TcpLink) -> bool:
    try:
        link.readline(timeout=0.2)
    except Exception as e:  # LinkClosed is what we wait for; a timeout means still open
        return type(e).__name__ == "LinkClosed"
    return False


def test_every_command_is_refused_before_auth_over_serial(locked: tuple[VirtualBoard, Path]) -> None:
    board, project = locked
    from uota_core.serial_transport import open_serial_link

    before = flash_hashes(board)
    with Session(open_serial_link(board.serial_port)) as s:
        assert s.hello().auth
        _refused_everywhere(s)
        assert s.request("challenge " + "2" * 32).startswith("proof ")
        with pytest.raises(AuthError, match="auth failed"):
            s.request("auth " + "1" * 64)
        _refused_everywhere(s)
    assert flash_hashes(board) == before
    wait_reachable(board.host, 2018)


MP_COUNTER = """
import sys
sys.path.insert(0, sys.argv[1])
from uota import auth

class Counted:
    # bytes-like: counts every byte the comparison looks at
    def __init__(self, data):
        self.data = data
        self.reads = 0
    def __len__(self):
        return len(self.data)
    def __getitem__(self, i):
        self.reads += 1
        return self.data[i]

secret = bytes(range(64))
for name, other in (("equal", secret), ("first", b"x" + secret[1:]), ("last", secret[:-1] + b"x"),
                    ("all", bytes(64))):
    a, b = Counted(secret), Counted(other)
    print(name, auth.same(a, b), a.reads, b.reads)
"""


def test_secret_comparison_reads_every_byte_whatever_differs(tmp_path: Path) -> None:
    # run on the MicroPython VM the device code targets: a short-circuit on the first
    # differing byte would read fewer bytes when the difference comes first
    micropython = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    script = tmp_path / "count.py"
    script.write_text(MP_COUNTER)
    out = subprocess.run([micropython, str(script), str(REPO / "device" / "lib")], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    results = {name: (same, int(ra), int(rb)) for name, same, ra, rb in (line.split() for line in out.splitlines())}
    assert results["equal"] == ("True", 64, 64)
    for case in ("first", "last", "all"):
        assert results[case] == ("False", 64, 64), (case, results)


def test_every_secret_comparison_goes_through_the_constant_time_one() -> None:
    # a MAC or signature compared with == would leak how many leading bytes matched
    lib = REPO / "device" / "lib" / "uota"
    sources = {p.name: p.read_text() for p in lib.rglob("*.py")}
    for name, text in sources.items():
        for line in text.splitlines():
            if re.search(r"(hmac_hex|hexdigest|_sig|\bsig\b|\bwant\b|\bmac\b)", line) and re.search(r"[=!]=", line):
                raise AssertionError(f"{name}: a secret compared with ==: {line.strip()}")
    users = [n for n, t in sources.items() if "auth.same(" in t]
    # admin: rm/wipe signatures; pending: manifest signatures; seal: both proofs and the record tags
    assert sorted(users) == ["admin.py", "pending.py", "seal.py"], users
