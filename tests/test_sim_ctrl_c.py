"""Ctrl-C from the serial port interrupts the board's main thread, whatever else runs.

This reproduces how a serial session start (a Ctrl-C) killed the VM under CPU load; see
docs/reliability.md, "Flaky under load".
"""

from __future__ import annotations

import time

import pytest

from serial_helpers import enter_raw, open_port, read_until
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(180)

THREAD_CHURN = (  # one short thread at a time, so that threads don't pile up in the heap
    "import _thread\n"
    "done = []\n"
    "def short():\n"
    "    done.append(1)\n"
    "print('churning')\n"
    "while True:\n"
    "    _thread.start_new_thread(short, ())\n"
    "    while not done:\n"
    "        pass\n"
    "    done.pop()\n"
)


def test_ctrl_c_while_threads_start_interrupts_the_main_thread(fast_board: VirtualBoard) -> None:
    """A SIGINT for the whole process could be taken by a thread being started, before it
    had MicroPython state: a segfault (the uota runtime starts the app's thread just as a
    serial session's Ctrl-C comes). Before the fix most of these runs crashed the VM."""
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    for i in range(40):
        port.write(THREAD_CHURN.encode() + b"\x04")
        read_until(port, b"churning", timeout=10)
        time.sleep(0.01 * (i % 5))  # vary where in the churn the Ctrl-C lands; nothing waits on it
        port.write(b"\x03")
        out = read_until(port, b"\x04>", timeout=15)
        assert b"KeyboardInterrupt" in out, (i, out[-300:])
        assert fast_board.panics == [], f"run {i}: {fast_board.console[-600:]}"
    assert fast_board.running
