"""`uota terminal` over serial: keystrokes reach the friendly REPL, output comes back, Ctrl-] ends it."""

from __future__ import annotations

import os
import select
import threading
import time

import pytest

from uota_core.cli.terminal import passthrough
from uota_core.serialport import open_port
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(30)


def test_passthrough_runs_a_line_at_the_repl_and_ctrl_bracket_exits(board: VirtualBoard) -> None:
    board.wait_repl(timeout=10)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    ser = open_port(board.serial_port)
    done = threading.Event()

    def run() -> None:
        passthrough(ser, in_r, out_w)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    os.write(in_w, b"print(6 * 7)\n")
    seen = b""
    deadline = time.monotonic() + 10
    while b"42\r\n" not in seen:  # the board's answer reaches the screen
        assert time.monotonic() < deadline, seen[-300:]
        if select.select([out_r], [], [], 0.2)[0]:
            seen += os.read(out_r, 4096)
    os.write(in_w, b"\x1d")
    assert done.wait(5), "Ctrl-] did not end the terminal"
    ser.close()
    for fd in (in_r, in_w, out_r, out_w):
        os.close(fd)
