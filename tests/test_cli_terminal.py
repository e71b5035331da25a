"""`uota terminal` as a user runs it (a subprocess, outside any project): output lines
return to column 0, Ctrl-C's stopped OTA server comes back on exit, Ctrl-] over TCP ends it
without an Enter."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from attack_helpers import wait_until
from uota_core.cli.terminal import crlf
from uota_core.connect import wait_reachable
from uota_core.sim import VirtualBoard

UOTA = [sys.executable, "-m", "uota_core.cli"]


class Output:
    """Everything a stream delivers, collected by a thread so a test can wait on it."""

    def __init__(self, fd: int) -> None:
        self.data = b""
        self._fd = fd
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := os.read(self._fd, 4096):
            self.data += chunk


@contextlib.contextmanager
def terminal(cwd: Path, *args: str, tty: bool = False) -> Iterator[tuple[subprocess.Popen[bytes], Output, Output, int]]:
    """`uota terminal ARGS` running, and the fd its keystrokes are written to: a pipe, or
    with `tty` a pseudo-terminal in line mode, as a user's shell leaves it."""
    keys, stdin = os.openpty() if tty else os.pipe()[::-1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([*UOTA, "terminal", *args], cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc, Output(proc.stdout.fileno()), Output(proc.stderr.fileno()), keys
    finally:
        proc.kill()
        proc.wait()
        os.close(keys)
        os.close(stdin)


def test_bare_newlines_become_crlf_across_chunks() -> None:
    assert crlf(b"app line 1\napp line 2\n") == b"app line 1\r\napp line 2\r\n"
    assert crlf(b">>> \r\nok\r\n") == b">>> \r\nok\r\n"  # the REPL's own CRLF stays as it is
    assert crlf(b"\nnext", prev=b"\r") == b"\nnext"  # a CRLF split between two reads
    assert crlf(b"\nnext", prev=b"x") == b"\r\nnext"


@pytest.mark.timeout(120)
def test_ctrl_c_at_the_terminal_then_exit_brings_the_ota_server_back(ota_board: VirtualBoard,
                                                                   tmp_path: Path) -> None:
    ota_board.expect("uota: listening on", timeout=30)
    with terminal(tmp_path, "--port", ota_board.serial_port) as (proc, out, err, w):
        wait_until(lambda: b"Ctrl-] exits" in err.data, 30, "the terminal to connect")
        os.write(w, b"\x03")  # to the REPL: stops uota's loop (and with it the OTA server)
        wait_until(lambda: b">>> " in out.data, 30, "the REPL prompt")
        os.write(w, b"print(6 * 7)\n")
        wait_until(lambda: b"42\r\n" in out.data, 30, "the board's answer")
        assert b"\n" not in out.data.replace(b"\r\n", b"")  # every line starts at column 0
        mark = ota_board.console_mark()
        os.write(w, b"\x1d")
        assert proc.wait(30) == 0, err.data
        assert b"soft-resetting" in err.data and b"they start again" in err.data
        ota_board.expect(r"soft reboot[\s\S]*uota: listening on", timeout=30, since=mark)
        wait_reachable(ota_board.host, 2018)


@pytest.mark.timeout(120)
def test_without_ctrl_c_the_terminal_leaves_the_board_running(ota_board: VirtualBoard, tmp_path: Path) -> None:
    ota_board.expect("uota: listening on", timeout=30)
    with terminal(tmp_path, "--port", ota_board.serial_port) as (proc, out, err, w):
        wait_until(lambda: b"Ctrl-] exits" in err.data, 30, "the terminal to connect")
        mark = ota_board.console_mark()
        os.write(w, b"\x1d")
        assert proc.wait(30) == 0, err.data
        assert b"soft-resetting" not in err.data
        wait_reachable(ota_board.host, 2018)
        assert "soft reboot" not in ota_board.console[mark:]


@pytest.mark.timeout(120)
def test_ctrl_bracket_ends_the_tcp_shell_without_an_enter(ota_board: VirtualBoard, tmp_path: Path) -> None:
    with terminal(tmp_path, "--host", ota_board.host, tty=True) as (proc, out, err, master):
        wait_until(lambda: b"RemoteIO shell" in out.data, 30, "the shell's banner")
        os.write(master, b"ping\n")
        wait_until(lambda: b"'pong'" in out.data, 30, "the handler's answer")
        os.write(master, b"hel\x1d")  # half a line, then Ctrl-]
        assert proc.wait(15) == 0, err.data
