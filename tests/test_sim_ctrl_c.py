"""Ctrl-C from the serial port interrupts the board's main thread, whatever else runs.

This reproduces how a serial session start (a Ctrl-C) killed the VM under CPU load; see
docs/reliability.md, "Flaky under load".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from serial_helpers import enter_raw, open_port, raw_exec, read_until
from uota_core.sim import VirtualBoard
from uota_core.sim.vm import thread_cpu_s

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


BLOCKING_LOOP = (  # blocking calls back to back, each releasing and taking the GIL again
    "import time\n"
    "def storm():\n"
    "    end = time.ticks_add(time.ticks_ms(), 4000)\n"
    "    print('storming')\n"
    "    while True:\n"  # two handlers: a Ctrl-C landing in the inner one is still caught
    "        try:\n"
    "            while True:\n"
    "                try:\n"
    "                    while time.ticks_diff(end, time.ticks_ms()) > 0:\n"
    "                        time.sleep_ms(0)\n"
    "                    return\n"
    "                except KeyboardInterrupt:\n"
    "                    pass\n"
    "        except KeyboardInterrupt:\n"
    "            pass\n"
    "storm()\n"
)
MEASURE = (
    "import time\n"
    "t0 = time.ticks_ms()\n"
    "for _ in range(100):\n"
    "    time.sleep_ms(0)\n"
    "print('took', time.ticks_diff(time.ticks_ms(), t0))\n"
)


@pytest.mark.soak  # the storm also hits the unix VM's asynchronous Ctrl-C where it corrupts state
def test_a_ctrl_c_in_a_blocking_call_never_leaves_the_gil_taken(fast_board: VirtualBoard) -> None:
    """A Ctrl-C that landed between the main thread taking the emulated GIL and recording
    it left the lock held by nobody: from then on each blocking call waited the 20 ms
    starvation limit, so the board answered a serial session ~100 times slower (seen as
    fuzz cases falling out of step under load). After 60 Ctrl-Cs into blocking calls,
    100 more blocking calls must not each wait for the lock (leaked: at least 2 s)."""
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    port.write(BLOCKING_LOOP.encode() + b"\x04")
    out = bytearray(read_until(port, b"storming", timeout=10))
    for i in range(60):  # bounded: 60 Ctrl-Cs in about 1.5 s, while the storm runs 4 s
        port.write(b"\x03")
        time.sleep(0.015 + 0.001 * (i % 17))  # spreads where they land; nothing waits on it
        out += port.read(port.in_waiting)
        if b"\x04" in out:
            # the storm ended early (the unix VM raises a Ctrl-C at any instruction, and a
            # few land where no handler catches them): more would hit the virtual board's
            # REPL code, which its C original isn't (docs/virtual-board.md)
            break
    deadline = time.monotonic() + 30
    while not out.endswith(b"\x04>"):  # the storm's end
        assert time.monotonic() < deadline, f"the storm didn't end: {bytes(out[-300:])!r}"
        out += port.read(1)
    measured, err = raw_exec(port, MEASURE, timeout=30)
    took = int(measured.split()[-1])
    assert not err and took < 500, f"100 blocking calls took {took} ms: {measured!r} {err!r}"
    assert fast_board.panics == []


STARVED_LOOP = (  # about 50 ms of computing (N iterations), then a wait: a Ctrl-C belongs in the wait
    "import time\n"
    "def work():\n"
    "    x = 0\n"
    "    for i in range(%d):\n"
    "        x += i * i\n"  # line 5: interpreter work, where a Ctrl-C may not land
    "while True:\n"
    "    print('working')\n"  # the host's Ctrl-C comes now: 50 ms of computing before the wait
    "    work()\n"
    "    time.sleep_ms(20)\n"  # line 9: a safe wait
)
CALIBRATE = "x = 0\nfor i in range(300000):\n    x += i * i\n"


def test_a_ctrl_c_waits_for_a_safe_point_however_little_cpu_the_vm_gets(fast_board: VirtualBoard) -> None:
    """On a loaded machine the VM may get a fifth of a core. A Ctrl-C waited 100 ms of wall
    time for the main thread to reach a safe wait, then raised it wherever the thread was:
    in LittleFS, an import, the GC. Here the VM's main thread shares one core with three
    busy loops (each in its own session, as the kernel's autogroups share a core by
    session) at a lower priority; each Ctrl-C must still land in the wait, never in the
    50 ms of computing before it (before the fix it landed there most times)."""
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    assert fast_board._vm is not None
    vm = fast_board._vm.pid
    # 50 ms of the VM's CPU time, by the kernel's count (the wall clock on a loaded CI lies)
    cpu = thread_cpu_s(vm)
    raw_exec(port, CALIBRATE)
    per_iteration = (thread_cpu_s(vm) - cpu) / 300000
    loop = (STARVED_LOOP % int(0.05 / per_iteration)).encode()
    core = min(os.sched_getaffinity(0))
    loads = [subprocess.Popen([sys.executable, "-c", "while 1: pass"], start_new_session=True) for _ in range(3)]
    try:
        for load in loads:
            os.sched_setaffinity(load.pid, {core})
        os.sched_setaffinity(vm, {core})  # the main thread's: the one a Ctrl-C goes to
        os.setpriority(os.PRIO_PROCESS, vm, 10)
        for i in range(10):
            port.write(loop + b"\x04")
            read_until(port, b"working", timeout=30)
            port.write(b"\x03")
            out = read_until(port, b"\x04>", timeout=30)
            assert b"KeyboardInterrupt" in out, (i, out[-300:])
            assert b"line 9" in out and b"line 5" not in out, (i, out[-300:])
    finally:
        for load in loads:
            load.kill()
            load.wait()
    assert fast_board.panics == []
