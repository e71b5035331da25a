"""A crash of the board's VM is an ESP32 panic and a reboot; a board that is off costs no CPU."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from attack_helpers import wait_until
from serial_helpers import enter_raw, open_port, raw_exec
from uota_core.errors import BoardError
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(90)

GURU = rb"(?s)Guru Meditation Error: Core  0 panic'ed \(LoadProhibited\)\. Exception was unhandled\."
REBOOT = rb"Rebooting\.\.\.\r\nets Jun  8 2016 00:22:57\r\n\r\nrst:0xc \(SW_CPU_RESET\)"


def test_a_segfault_in_device_code_panics_and_reboots(fast_board: VirtualBoard) -> None:
    """Reading address 0 is a LoadProhibited panic on an ESP32; here it is a real SIGSEGV."""
    fast_board.power_cut()
    fast_board.write_file("/main.py", "print('app up, boot', open('/n').read() if 'n' in __import__('os').listdir() else 0)\n")
    fast_board.power_on()
    fast_board.wait_repl("friendly")
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    assert raw_exec(port, "with open('/n', 'w') as f: f.write('1')") == (b"", b"")  # closed: it survives
    mark = fast_board.console_mark()
    crashed = fast_board._vm.pid if fast_board._vm else 0
    port.write(b"import uctypes\nuctypes.bytearray_at(0, 1)[0]\x04")
    panic = fast_board.wait_panic(1, timeout=10)
    assert (panic.signal, panic.cause, panic.pid) == ("SIGSEGV", "LoadProhibited", crashed)
    fast_board.expect(GURU + rb".*" + REBOOT, timeout=5, since=mark)
    fast_board.expect(r"app up, boot 1", timeout=15, since=mark)  # boot.py and main.py run again
    assert fast_board.reset_cause == 5
    enter_raw(fast_board, port)
    out, err = raw_exec(port, "import machine; print(machine.reset_cause(), machine.SOFT_RESET)")
    assert err == b"" and out.split() == [b"5", b"5"]  # ESP_RST_PANIC reads as SOFT_RESET on the port
    assert "panics=1" in fast_board.describe()


def test_a_crash_signal_while_idle_reboots_and_every_panic_is_counted(fast_board: VirtualBoard) -> None:
    for n, (sig, cause) in enumerate([(signal.SIGSEGV, "LoadProhibited"), (signal.SIGABRT, "abort()")], 1):
        fast_board.wait_repl("friendly")
        assert fast_board._vm is not None
        os.kill(fast_board._vm.pid, sig)
        assert fast_board.wait_panic(n, timeout=10).cause == cause
    fast_board.wait_repl("friendly", timeout=15)
    text = fast_board.console
    assert "abort() was called at PC" in text and text.count("rst:0xc (SW_CPU_RESET)") == 2
    assert [p.signal for p in fast_board.panics] == ["SIGSEGV", "SIGABRT"]


def test_a_vm_killed_from_outside_is_off_and_says_so(fast_board: VirtualBoard) -> None:
    """SIGKILL is not a crash (an OOM killer, a stray kill): no reboot, a clear note instead."""
    fast_board.wait_repl("friendly")
    assert fast_board._vm is not None
    pid = fast_board._vm.pid
    os.kill(pid, signal.SIGKILL)
    fast_board.expect(rf"uota-sim: the VM \(pid {pid}\) was killed by SIGKILL from outside; the board is off", 10)
    assert fast_board.panics == [] and not fast_board.running
    assert "alive=False" in fast_board.describe() and "SIGKILL" in fast_board.describe()
    fast_board.power_on()
    fast_board.wait_repl("friendly")


def test_a_vm_that_crashes_before_boot_py_is_not_rebooted_forever(tmp_path: Path) -> None:
    """Three panics before `boot.py` mean the emulator itself is broken: the board stops, saying why."""
    crasher = tmp_path / "micropython"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    board = VirtualBoard(tmp_path / "b2", baud=None, mdns=False, micropython=crasher)
    try:
        with pytest.raises(BoardError, match="crashed 3 times before reaching boot.py"):
            board.start()
    finally:
        board.stop()


def _process_cpu() -> float:
    t = os.times()
    return t.user + t.system


@pytest.mark.parametrize("how", ["power_cut", "killed"])
def test_a_board_that_is_off_costs_no_cpu(fast_board: VirtualBoard, how: str) -> None:
    """Before: the UART thread polled the dead VM's hung-up control pipe at 100 % of a core."""
    fast_board.wait_repl("friendly")
    assert fast_board._vm is not None
    if how == "power_cut":
        fast_board.power_cut()
    else:
        os.kill(fast_board._vm.pid, signal.SIGKILL)
        wait_until(lambda: "the board is off" in fast_board.console, 10, "the supervisor to see the VM gone")
    before, t0 = _process_cpu(), time.monotonic()
    time.sleep(1.0)
    used = (_process_cpu() - before) / (time.monotonic() - t0)
    assert used < 0.2, f"the supervisor used {used:.0%} of a core while the board was off"
