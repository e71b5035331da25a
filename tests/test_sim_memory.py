"""The virtual board's heap is calibrated to a 32-bit ESP32 without PSRAM: gc reports the
board's numbers, what fits on the board fits here, and what runs out there runs out here
(docs/virtual-board.md, "Heap")."""

from __future__ import annotations

import pytest

from serial_helpers import enter_raw, open_port, raw_exec
from uota_core.sim import VirtualBoard
from uota_core.sim.vm import HEAP_SCALE_PCT, vm_heap_size

pytestmark = pytest.mark.timeout(60)

SENSOR = '''

class Sensor{k}:
    """Driver number {k}: reads a value, keeps a short history and reports it."""

    # history length: enough for a minute at one reading a second
    LIMIT = {limit}

    def __init__(self, pin, scale=1.0):
        self.pin = pin
        self.scale = scale
        self.history = []

    def read(self, raw):
        # scale, clamp and remember one reading
        v = max(0.0, raw * self.scale)
        self.history.append(v)
        if len(self.history) > self.LIMIT:
            self.history.pop(0)
        return v

    def report(self):
        n = len(self.history)
        return {{"sensor": {k}, "n": n, "mean": sum(self.history) / n if n else 0}}
    # ----------------------------------------------------------------------
'''


def firmware_module(size: int) -> str:
    """Ordinary driver code of about `size` bytes. At 23 KB it needs ~110 KB of heap to
    import on the 64-bit VM and, by the issue's measurement of such a module, ~72 KB on a
    32-bit ESP32 build of the same MicroPython."""
    parts = ["# drivers: classes with methods, constants, docstrings and comments\n"]
    k = 0
    while sum(map(len, parts)) < size:
        parts.append(SENSOR.format(k=k, limit=k + 60))
        k += 1
    return "".join(parts)


def boot_and_import(board: VirtualBoard, size: int) -> str:
    board.power_cut()
    board.write_file("/lib/drivers.py", firmware_module(size))
    board.write_file("/boot.py", "import gc\ngc.collect()\ntry:\n    import drivers\n    print('IMPORT ok')\n"
                                 "except MemoryError:\n    print('IMPORT MemoryError')\n")
    mark = board.console_mark()
    board.power_on()
    return board.expect(rb"IMPORT (\w+)", 20, since=mark).group(1).decode()


def test_gc_reports_the_boards_heap(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    out, err = raw_exec(port, "import gc\ngc.collect()\nprint(gc.mem_free(), gc.mem_alloc())")
    assert err == b""
    free, alloc = map(int, out.split())
    assert free + alloc == 128 * 1024  # the board's heap, not the VM's 64-bit one
    assert 95_000 < free < 120_000, out  # an ESP32 at its REPL with nothing imported
    # a 10 KB bytearray costs the board ~10 KB: reported within the model's error (docs)
    out, _ = raw_exec(port, "import gc\ngc.collect()\nf = gc.mem_free()\nb = bytearray(10240)\n"
                            "print(f - gc.mem_free())")
    assert 10240 * 100 // HEAP_SCALE_PCT - 1024 < int(out) < 10240 + 1024, out


def test_a_module_that_fits_an_esp32s_heap_imports_at_boot(fast_board: VirtualBoard) -> None:
    assert boot_and_import(fast_board, 23 * 1024) == "ok"


def test_a_module_too_big_for_an_esp32s_heap_runs_out_of_memory(fast_board: VirtualBoard) -> None:
    # ~40 KB of such code needs ~125 KB on a 32-bit board: more than its ~110 KB free
    assert boot_and_import(fast_board, 40 * 1024) == "MemoryError"


def test_the_vm_heap_follows_the_model() -> None:
    assert vm_heap_size(128 * 1024) == 128 * 1024 * HEAP_SCALE_PCT // 100 + 32 * 1024
    assert vm_heap_size(2 * 1024 * 1024) > 3 * 1024 * 1024
