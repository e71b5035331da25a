"""Hostile input, per transport (DESIGN.md "Paths", wire protocol): hypothesis drives
malformed commands, headers, bodies and serial frames into the real device code on a
virtual board. After every case the board answers `ping` within 1 s; it never crashes,
resets or logs a session failure; no file outside the staging area changes."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from attack_helpers import PASSWORD, count, flash_hashes, healthy_board, outside_staging, raw_login
from fuzz_cases import STAGE_PATH, STAGE_SHA, Case, cases, frame_damage, serial_cases
from uota_core.link import LinkError
from uota_core.seal import MAX_RECORD, TAG, SessionKeys, _Direction, seal
from uota_core.serial_transport import open_serial_link
from uota_core.session import Session
from uota_core.sim import VirtualBoard

PING_WITHIN = 1.0
# a wrong `auth` pauses its source for the guess throttle: 300 ms doubling with each recent
# failure, at most 5 s (device/lib/uota/throttle.py; held to that in test_attack_guessing.py)
GUESS_PAUSE = 5.0
CASE_DEADLINE = 10.0  # the device must end a connection the host has half-closed by then
CHECK_EVERY = 100  # flash snapshots are compared this often (and at the end)
STACK_FAILURES = re.compile(r"OTA session failed|event loop recovered|app crashed")


def failures(console: str) -> list[str]:
    """Signs of a failure in the OTA stack: its last-resort messages, and tracebacks through
    its code other than the KeyboardInterrupt with which the serial transport stops the
    event loop. (Junk that reaches the REPL after a serial session ended is run as Python
    there, as on any board: its tracebacks are in <stdin> and don't count.)"""
    found = [m.group(0) for m in STACK_FAILURES.finditer(console)]
    for block in console.split("Traceback (most recent call last):")[1:]:
        lines = block.replace("\r", "").split("\n")[1:]
        frames = [ln for ln in lines if ln.startswith("  ")]
        error = next((ln for ln in lines if ln and not ln.startswith("  ")), "")
        if any("uota/" in ln for ln in frames) and not error.startswith("KeyboardInterrupt"):
            found.append(error or "a traceback")
    return found


@pytest.fixture(scope="module")
def fuzz_board(tmp_path_factory: pytest.TempPathFactory):
    with healthy_board(tmp_path_factory.mktemp("fuzz"), "fuzzboard", password=PASSWORD) as (board, _):
        yield board


class Watch:
    """What must not change while fuzzing: files outside staging, boots, the console's calm."""

    def __init__(self, board: VirtualBoard, reboots: bool = False) -> None:
        self.board = board
        # a session the board ends over serial soft-reboots it to restart the app, and each
        # boot updates the boot guard's count: that file may change then, nothing else
        self.ignored = ("/ota_boot.json", "/ota_boot.json.tmp") if reboots else ()  # .tmp: caught mid-write
        self.files = self._snapshot()
        self.mark = board.console_mark()
        self.boots = board.console.count("rst:")
        self.cases = 0
        self.items = 0
        self.slowest_ping = 0.0

    def after_case(self, case: Case, ping_seconds: float) -> None:
        self.cases += 1
        self.items += len(case.items)
        self.slowest_ping = max(self.slowest_ping, ping_seconds)
        assert ping_seconds <= PING_WITHIN, f"ping took {ping_seconds:.2f}s after {case!r}"
        new = self.board.console[self.mark:]
        bad = failures(new)
        assert not bad, f"{bad} on the console after {case!r}:\n{new[-3000:]}"
        assert self.board.console.count("rst:") == self.boots, f"the board reset after {case!r}"
        if self.cases % CHECK_EVERY == 0:
            self.check_files(case)

    def _snapshot(self) -> dict[str, str]:
        return {p: h for p, h in outside_staging(flash_hashes(self.board)).items() if p not in self.ignored}

    def check_files(self, case: Case | None = None) -> None:
        now = self._snapshot()
        changed = sorted(set(now.items()) ^ set(self.files.items()))
        assert not changed, f"files outside staging changed (last case {case!r}): {changed[:6]}"


# -- known nasty inputs (regressions) ---------------------------------------------------

# (case items, the reply line the device must give): each once crashed the session with
# a MemoryError/OverflowError, or answered with a misleading error
NASTY = [
    ([b"manifest 99999999999\n{"], b"error: a 99999999999-byte JSON manifest doesn't fit in RAM"),
    ([b"manifest 99999999999999999999999\n{"], b"error: a 99999999999999999999999-byte JSON manifest"),
    ([b"manifest 60000\n{" + b" " * 59999], b"error: a 60000-byte JSON manifest doesn't fit in RAM"),
    ([b"manifest 6000\n{\"files\":" + b"[" * 5990 + b"}"], b"error: bad request (JSON too deeply nested)"),
    ([b"manifest 500\nuota-manifest-lines 1 " + b"[" * 478 + b"\n"], b"error: bad request"),
    ([b"\xff\xfeping\n"], b"error: line is not UTF-8"),
    ([b"\xc3\xa9" + b"a" * 300 + b" x\n"], b"error: unknown command"),  # once RuntimeError: name too long
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("items,reply", NASTY, ids=[f"nasty{i}" for i in range(len(NASTY))])
def test_known_nasty_inputs_get_an_error_reply(fuzz_board: VirtualBoard, items: list[bytes], reply: bytes) -> None:
    watch = Watch(fuzz_board)
    conn = LineSocket(fuzz_board.host)
    try:
        case = Case(auth=True, staged=True, items=items)
        open_case(conn, case)
        for item in items:
            conn.send(item)
        assert conn.line().startswith(reply)
    finally:
        conn.close()
    watch.after_case(case, tcp_ping(fuzz_board))
    watch.check_files()


@pytest.mark.timeout(120)
def test_a_refused_json_manifest_is_read_to_its_end_and_the_session_goes_on(fuzz_board: VirtualBoard) -> None:
    # the device once closed at once on unread bytes: the connection was reset under a client
    # still sending, which then never saw why
    conn = LineSocket(fuzz_board.host)
    try:
        open_case(conn, Case(auth=True, staged=False))
        assert conn.ask(b"start_ota\n") == b"ready"
        size = 300_000
        refused = conn.ask(f"manifest {size}\n".encode() + b"{" + b" " * (size - 1))
        assert refused.startswith(b"error: a 300000-byte JSON manifest doesn't fit in RAM"), refused
        assert conn.ask(b"ping\n") == b"pong"
    finally:
        conn.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_manifest_with_utf8_paths_or_crlf_lines_is_read_to_its_exact_end(fuzz_board: VirtualBoard,
                                                                           eol: str) -> None:
    # the device once counted characters, not bytes (and not the stripped \r), so it read
    # past such a manifest and swallowed the next command
    files = {"app/caf\u00e9.py": STAGE_SHA, "app/\u65e5\u672c.py": STAGE_SHA, "app/main.py": STAGE_SHA}
    lines = ['uota-manifest-lines 1 {"version":"u"}'] + [f"{p}:{h}" for p, h in sorted(files.items())]
    body = eol.join(lines).encode() + eol.encode()
    conn = LineSocket(fuzz_board.host)
    try:
        open_case(conn, Case(auth=True, staged=False))
        assert conn.ask(b"start_ota\n") == b"ready"
        assert conn.ask(f"manifest {len(body)}\n".encode() + body) == b"ok"
        size = int(conn.ask(b"need\n"))
        while len(conn.buf) < size:
            conn.buf += conn.more()
        assert sorted(json.loads(conn.buf[:size])) == sorted(files)
        conn.buf = conn.buf[size:]
        assert conn.ask(b"abort\n") == b"aborted"
    finally:
        conn.close()


# -- WiFi TCP ---------------------------------------------------------------------------

class LineSocket:
    """A raw client of the OTA port; after `seal` its bytes travel in records."""

    def __init__(self, host: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, 2018), timeout=timeout)
        self.buf = b""
        self.tx: _Direction | None = None
        self.rx: _Direction | None = None

    def seal(self, keys: SessionKeys) -> None:
        self.tx, self.rx = _Direction(keys.h2d_enc, keys.h2d_mac), _Direction(keys.d2h_enc, keys.d2h_mac)

    def send(self, data: bytes) -> None:
        if self.tx is None:
            self.sock.sendall(data)
            return
        for at in range(0, len(data), MAX_RECORD):
            self.sock.sendall(seal(self.tx, data[at : at + MAX_RECORD]))

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = self.sock.recv(n - len(data))
            if not more:
                raise ConnectionError("closed")
            data += more
        return data

    def more(self) -> bytes:
        """The next bytes from the device (a record's plaintext once sealed)."""
        if self.rx is None:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed")
            return data
        head = self._exact(2)
        n = int.from_bytes(head, "big")
        rest = self._exact(-(-n // 16) * 16 + TAG)
        seq, cipher = self.rx.next()
        assert rest[-TAG:] == self.rx.tag(seq, head, rest[:-TAG]), "a record from the device failed its tag"
        return cipher.decryptor().update(rest[:-TAG])[:n]

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            self.buf += self.more()
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def ask(self, text: bytes) -> bytes:
        self.send(text)
        return self.line()

    def close(self) -> None:
        self.sock.close()


def open_case(conn: LineSocket | Session, case: Case) -> None:
    """The legitimate part of a case: hello, auth, start_ota and an accepted manifest."""
    if isinstance(conn, Session):
        ask = lambda b: conn.request(b.decode().strip()).encode()  # noqa: E731
        if case.auth:
            conn.password = PASSWORD
            assert conn.open() is not None
        else:
            assert conn.hello() is not None
    else:
        ask = conn.ask
        hello = ask(b"hello\n")
        assert hello.startswith(b"hello "), hello
        if case.auth:
            conn.seal(raw_login(ask, PASSWORD, hello))
    if case.staged:
        assert ask(b"start_ota\n") == b"ready"
        body = f'uota-manifest-lines 1 {{"version":"fz"}}\n{STAGE_PATH}:{STAGE_SHA}\n'.encode()
        assert ask(f"manifest {len(body)}\n".encode() + body) == b"ok"


def tcp_case(board: VirtualBoard, case: Case) -> None:
    conn = LineSocket(board.host)
    try:
        open_case(conn, case)
        try:
            for item in case.items:
                conn.send(item)
            conn.sock.shutdown(socket.SHUT_WR)  # the device reads every byte, then sees the end
        except OSError:
            return  # the device already closed the connection on bad input: fine
        deadline = time.monotonic() + CASE_DEADLINE
        conn.sock.settimeout(1.0)
        while True:
            try:
                if not conn.sock.recv(65536):
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                break
            assert time.monotonic() < deadline, f"the device kept a half-closed connection open: {case!r}"
    finally:
        conn.close()


def tcp_ping(board: VirtualBoard) -> float:
    started = time.monotonic()
    conn = LineSocket(board.host, timeout=PING_WITHIN + 1)
    try:
        assert conn.ask(b"ping\n") == b"pong"
    finally:
        conn.close()
    return time.monotonic() - started


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("n", [pytest.param(300, id="sample"),
                               pytest.param(10_000, id="soak", marks=pytest.mark.soak)])
def test_fuzz_wifi_tcp(fuzz_board: VirtualBoard, n: int) -> None:
    watch = Watch(fuzz_board)

    @settings(max_examples=n, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(case=cases())
    def one(case: Case) -> None:
        tcp_case(fuzz_board, case)
        watch.after_case(case, tcp_ping(fuzz_board))

    one()
    watch.check_files()
    print(f"wifi_tcp fuzz: {watch.cases} cases, {watch.items} malformed items, slowest ping {watch.slowest_ping:.3f}s")
    assert watch.cases >= n * 0.9  # hypothesis ran (almost) all it was asked to


# -- USB serial -------------------------------------------------------------------------

class SerialTarget:
    """One framed serial session, reopened when a case leaves it out of step."""

    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.s: Session | None = None
        self.reopens = 0
        self.slowest_reopen = 0.0

    def session(self) -> Session:
        if self.s is None:
            started = time.monotonic()
            before = self.board.describe()
            try:
                self.s = Session(open_serial_link(self.board.serial_port, timeout=5))
            except Exception as e:
                # what crossed the line while the session tried to start tells board from host
                raise AssertionError(f"{e}\nboard before: {before}\nboard after: {self.board.describe()}") from e
            self.reopens += 1
            self.slowest_reopen = max(self.slowest_reopen, time.monotonic() - started)
        return self.s

    def drop(self) -> None:
        if self.s is not None:
            self.s.close()
            self.s = None

    def in_step(self, within: float) -> float | None:
        """Send a ping; seconds until its pong came back (earlier replies are skipped), or
        None if it didn't within `within` or the session ended."""
        assert self.s is not None
        link = self.s.link
        started = time.monotonic()
        deadline = started + within
        try:
            link.write(b"\nping\n")
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                # endswith: a `need` blob has no newline of its own, so the pong may follow it;
                # but not an error naming a fuzzed "pong" command
                line = link.readline(left).rstrip(b"\r\n")
                if line.endswith(b"pong") and not line.startswith(b"error"):
                    return time.monotonic() - started
        except LinkError:
            return None

    def ping(self) -> float:
        """Seconds until a ping is answered (on a new session if the case ended the last)."""
        self.session()
        waited = self.in_step(PING_WITHIN + 1)
        assert waited is not None, "no pong on the serial session"
        return waited


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("n", [pytest.param(200, id="sample"),
                               pytest.param(10_000, id="soak", marks=pytest.mark.soak)])
def test_fuzz_serial(fuzz_board: VirtualBoard, n: int) -> None:
    from hypothesis import strategies as st

    watch = Watch(fuzz_board, reboots=True)
    target = SerialTarget(fuzz_board)
    ended = 0

    @settings(max_examples=n, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(case=serial_cases(), damage=st.lists(st.none() | frame_damage(), min_size=5, max_size=5))
    def one(case: Case, damage: list) -> None:
        try:
            one_case(case, damage)
        except BaseException as e:
            # hypothesis runs a failing case again to report it, on a board the failure may
            # have left in another state: keep the first failure, which is the one to read
            if not first_failure:
                first_failure.append((f"{case!r} damage={damage!r}: {type(e).__name__}: {e}", e))
            raise

    def one_case(case: Case, damage: list) -> None:
        nonlocal ended
        s = target.session()
        open_case(s, case)
        ser = s.link.ser  # type: ignore[attr-defined]
        try:
            for item, hurt in zip(case.items, damage):
                s.link.write(item)  # malformed commands, inside valid frames
                if hurt is not None:  # and malformed frames, straight onto the line
                    ser.write(hurt(s.link.key))  # type: ignore[attr-defined]
            # a case that may guess may wait on the throttle, over the UART in the session
            guessed = any(b"auth" in item for item in case.items[: len(damage)])
            allowed = PING_WITHIN + (GUESS_PAUSE if guessed else 0.0)
            # longer than allowed: a board ending the session first swallows the host's
            # frames in flight (up to 1 s) before its CLOSE
            waited = target.in_step(allowed + 2)
        except LinkError:
            waited = None
        if waited is None and s.link.peer_closed:  # type: ignore[attr-defined]
            # the board ended the session on bad input: allowed, if nothing of what the host
            # had in flight reached the REPL and the next session starts as usual
            ended += 1
            mark = fuzz_board.console_mark()
            target.drop()
            assert '"<stdin>"' not in fuzz_board.console[watch.mark:], f"input reached the REPL after {case!r}"
            # the app is back once the stack runs again; the next session's Ctrl-C then
            # doesn't land in the virtual board's imports (docs/virtual-board.md, Limits)
            fuzz_board.expect("uota: listening on", timeout=10, since=mark)
        elif waited is None or waited > allowed:
            target.drop()  # hypothesis runs a failing case again: on a session of its own
            raise AssertionError(f"the serial session fell out of step after {case!r} (pong after {waited} s)")
        watch.after_case(case, target.ping())

    first_failure: list[tuple[str, BaseException]] = []
    try:
        one()
    except BaseException:
        if first_failure:
            text, error = first_failure[0]
            raise AssertionError(f"first failing case: {text}") from error
        raise
    finally:
        target.drop()
    watch.check_files()
    print(f"serial fuzz: {watch.cases} cases, {watch.items} malformed items, {ended} ended by the board, "
          f"{target.reopens} sessions "
          f"(slowest start {target.slowest_reopen:.2f}s), slowest ping {watch.slowest_ping:.3f}s")
    assert watch.cases >= n * 0.9
    assert ended, "no case ended a session: the session-ending inputs never ran"
