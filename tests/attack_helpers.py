"""Shared tools for the attack tests (tests/test_attack_*.py): secured virtual boards, a
recording/faulting TCP proxy on loopback, a serial line tap, and flash snapshots."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uota_core.auth import derive_key
from uota_core.bootstrap import install_offline
from uota_core.config import load_config
from uota_core.connect import wait_reachable
from uota_core.seal import SessionKeys, hello_sum, proof
from uota_core.sim import VirtualBoard

PASSWORD = "st4ple-Battery-h0rse-c0rrect"
SIGNING_KEY = "2de96380c5030846881d437e29a89f26b7e89b6d20924d68350463177b6157bb"  # as `uota keygen` makes

HEALTHY_APP = ("import time\nimport uota\nimport uota.remoteio as remoteio\n\n"
               "@remoteio.on('echo')\ndef _(n=0):\n    return n\n\n"
               "def run():\n    print('app started')\n    uota.mark_healthy()\n"
               "    while True:\n        time.sleep(1)\n")


def count(default: int, soak: int, request: Any) -> int:
    """The sample size: `soak` under `-m soak`, else `default` (CI stays fast)."""
    marker = request.node.get_closest_marker("soak")
    return soak if marker is not None else default


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    """Poll `predicate` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def closed_by_device(sock: socket.socket, within: float) -> float | None:
    """Seconds until the device closed `sock` (reading and discarding), None if it didn't."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < within:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def make_project(root: Path, password: str = "", signing_key: str = "", app: str = HEALTHY_APP,
                 **config: Any) -> Path:
    """A `uota init` project with the given secrets, app and ota.json overrides."""
    from uota_core.project import init_project

    init_project(root)
    (root / "app" / "app.py").write_text(app)
    cfg_path = root / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update({"healthyAfter": 2, **config})
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (root / "config" / ".ota.secrets.json").write_text(
        json.dumps({"otaPassword": password, "signingKey": signing_key}))
    return root


def point_at(project: Path, board: VirtualBoard) -> None:
    cfg_path = project / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["hostname"] = board.host
    cfg_path.write_text(json.dumps(cfg, indent=2))


@contextlib.contextmanager
def secured_board(state: Path, project: Path, name: str = "attackboard", app_up: str | None = "app started",
                  baud: int | None = None, **kw: Any) -> Iterator[VirtualBoard]:
    """A virtual board (unthrottled unless `baud`) with the stack and `project`'s secrets
    installed (as `uota bootstrap` would) and the project pushed (unless `app_up` is None),
    running the app; the console is printed on failure."""
    board = VirtualBoard(state, name=name, baud=baud, mdns=False, **kw)
    board.start(power_on=False)
    try:
        point_at(project, board)
        install_offline(board.write_file, load_config(project))
        board.power_on()
        wait_reachable(board.host, 2018)
        if app_up is not None:
            first_push(project, board, app_up)
        yield board
    finally:
        print(board.console[-4000:])  # shown by pytest only when the test failed
        print(board.describe())
        board.stop()


@contextlib.contextmanager
def healthy_board(tmp: Path, name: str, **secrets: str) -> Iterator[tuple[VirtualBoard, Path]]:
    """A `secured_board` with a project holding `secrets` (password, signing_key), once its
    pushed app has been marked healthy: for a module's tests to share."""
    project = make_project(tmp / "proj", **secrets)
    with secured_board(tmp / "board", project, name=name) as board:
        # the pushed app's boot, not the bootstrap's (a board with no app yet is healthy too)
        board.expect(r"app started[\s\S]*boot marked healthy", timeout=20)
        yield board, project


def first_push(project: Path, board: VirtualBoard, app_up: str = "app started", version: str | None = None) -> None:
    """Push the project and wait until the new app printed `app_up`."""
    from uota_core.connect import open_session
    from uota_core.push import push

    cfg = load_config(project)
    mark = board.console_mark()
    with open_session(cfg) as s:
        assert push(s, cfg, "fast", version=version).committed
    board.expect(app_up, timeout=30, since=mark)
    wait_reachable(board.host, 2018)


KNOWN_ADDRESSES = "/ota_known.json"  # updated by any proof of the password (uota.lobby)


def flash_hashes(board: VirtualBoard) -> dict[str, str]:
    """sha256 of every file on the board's flash, by absolute path, but for the addresses
    that proved the password: any authenticated session may update them."""
    assert board.flash is not None
    return {p: hashlib.sha256(data).hexdigest() for p, data in board.flash.walk().items() if p != KNOWN_ADDRESSES}


# The staging area and its index (the pending manifest): the only files a session may
# change without committing (and the known addresses, which flash_hashes leaves out).
STAGING = ("/ota_stage/", "/ota_pending.txt")


def outside_staging(snapshot: dict[str, str]) -> dict[str, str]:
    return {p: h for p, h in snapshot.items() if not p.startswith(STAGING)}


def raw_login(ask: Callable[[bytes], bytes], password: str, hello: bytes | None = None) -> SessionKeys:
    """The protocol-4 handshake by hand over `ask` (send bytes, return the reply line
    without its newline): hello (unless its reply is given), challenge, the device's proof
    checked, auth. The keys of the records that every later byte must travel in."""
    if hello is None:
        hello = ask(b"hello\n")
    info = json.loads(hello[6:])
    hsum = hello_sum(hello + b"\n")  # the line as the device sent it
    key = derive_key(password, info["salt"], info["iter"])
    host_nonce = os.urandom(16).hex()
    reply = ask(f"challenge {host_nonce}\n".encode())
    assert reply == b"proof " + proof(key, "dev", info["id"], info["nonce"], host_nonce, hsum).encode(), reply
    assert ask(f"auth {proof(key, 'host', info['id'], info['nonce'], host_nonce, hsum)}\n".encode()) == b"ok"
    return SessionKeys.derive(key, info["id"], info["nonce"], host_nonce)


def secret_forms(secret: str) -> list[bytes]:
    """The secret and the encodings a careless implementation could send it in."""
    import base64

    raw = secret.encode()
    key = hashlib.sha256(raw).digest()  # the password's HMAC key (what the device stores)
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
             base64.b64encode(raw).rstrip(b"="), key, key.hex().encode(), base64.b64encode(key)]
    return forms


class TapProxy:
    """A loopback TCP proxy in front of `target` that records both directions.

    `cut_after` closes the connection once that many client→server bytes went through;
    `flip_at` flips one bit of the client→server byte at that offset.
    """

    def __init__(self, target: tuple[str, int], cut_after: int | None = None, flip_at: int | None = None) -> None:
        self.target = target
        self.cut_after = cut_after
        self.flip_at = flip_at
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.cut = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.addr = self._server.getsockname()
        self._stop = False
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            t = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        deadline = time.monotonic() + 300  # bounded: a proxied connection lives at most this long
        try:
            while not self._stop and time.monotonic() < deadline:
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        data, cut = self._to_server(data)
                        if data:
                            upstream.sendall(data)
                        if cut:
                            return  # drop the connection as a lost WiFi link would
                    else:
                        self.to_client += data
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def _to_server(self, data: bytes) -> tuple[bytes, bool]:
        """What to forward, and whether to cut the connection after it."""
        start = len(self.to_server)
        if self.cut_after is not None and start + len(data) >= self.cut_after:
            data = data[: self.cut_after - start]
            self.cut_after = None
            self.to_server += data
            self.cut.set()
            return data, True
        if self.flip_at is not None and start <= self.flip_at < start + len(data):
            mutable = bytearray(data)
            mutable[self.flip_at - start] ^= 0x20
            data = bytes(mutable)
            self.flip_at = None
        self.to_server += data
        return data, False

    def close(self) -> None:
        self._stop = True
        self._server.close()
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> "TapProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def serial_tap(board: VirtualBoard) -> Iterator[tuple[bytearray, bytearray]]:
    """Record every byte crossing the board's serial line: (to_board, to_host)."""
    uart = board._uart  # the supervisor's UART bridge: what a logic analyser on the wire would see
    assert uart is not None
    to_board, to_host = bytearray(), bytearray()
    orig_board, orig_host = uart._deliver_to_board, uart._write_host

    def deliver(data: bytes) -> None:
        to_board.extend(data)
        orig_board(data)

    def write_host(data: bytes, connected: bool) -> None:
        if connected:
            to_host.extend(data)
        orig_host(data, connected)

    uart._deliver_to_board = deliver  # type: ignore[method-assign]
    uart._write_host = write_host  # type: ignore[method-assign]
    try:
        yield to_board, to_host
    finally:
        uart._deliver_to_board = orig_board  # type: ignore[method-assign]
        uart._write_host = orig_host  # type: ignore[method-assign]


def random_bytes(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
