"""The virtual board's emulated modules against what the ESP32 port documents.

One class per module. Each check names the ESP32 behaviour it holds the board to (the
MicroPython docs: library/<module>.html and esp32/quickref.html, and the port's source where
the docs give no value); what is known to differ is in docs/virtual-board.md's fidelity table.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from attack_helpers import wait_until
from serial_helpers import enter_raw, open_port, raw_exec, read_until
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)


class Repl:
    """One board and its raw REPL, shared by a module's checks (a boot costs seconds)."""

    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.port: serial.Serial = open_port(board)
        enter_raw(board, self.port)

    def __call__(self, code: str, timeout: float = 10.0) -> str:
        out, err = raw_exec(self.port, code, timeout)
        assert err == b"", err.decode(errors="replace")
        return out.decode().strip()

    def error(self, code: str) -> str:
        out, err = raw_exec(self.port, code)
        assert err, f"{code!r} raised nothing; printed {out!r}"
        return err.decode().strip().splitlines()[-1]

    def reenter(self) -> None:
        enter_raw(self.board, self.port)


@pytest.fixture(scope="module")
def repl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repl]:
    with VirtualBoard(tmp_path_factory.mktemp("conformance") / "b", name="conformance", baud=None,
                      mdns=False) as board:
        r = Repl(board)
        yield r
        r.port.close()


class TestMachine:
    def test_reset_cause_constants_are_the_esp32_ports(self, repl: Repl) -> None:
        # ports/esp32/modmachine.h: PWRON 1, HARD 2, WDT 3, DEEPSLEEP 4, SOFT 5; a panic
        # (ESP_RST_PANIC) reads as SOFT_RESET: there is no PANIC_RESET.
        out = repl("import machine as m\nprint(m.PWRON_RESET, m.HARD_RESET, m.WDT_RESET, m.DEEPSLEEP_RESET,"
                   " m.SOFT_RESET, hasattr(m, 'PANIC_RESET'), m.reset_cause())")
        assert out == "1 2 3 4 5 False 1"

    def test_unique_id_freq(self, repl: Repl) -> None:
        out = repl("import machine\nprint(machine.unique_id().hex(), machine.freq())\n"
                   "machine.freq(240000000)\nprint(machine.freq())\nmachine.freq(160000000)")
        assert out.split() == [repl.board.uid, "160000000", "240000000"]

    def test_pins_and_adc(self, repl: Repl) -> None:
        # machine.Pin / machine.ADC constants as the ESP32 port defines them
        out = repl("from machine import Pin, ADC\n"
                   "print(Pin.IN, Pin.OUT, Pin.OPEN_DRAIN, Pin.PULL_UP, Pin.PULL_DOWN, Pin.IRQ_RISING,"
                   " Pin.IRQ_FALLING, ADC.ATTN_0DB, ADC.ATTN_11DB, ADC.WIDTH_9BIT, ADC.WIDTH_12BIT)\n"
                   "Pin(2, Pin.OUT).value(1)")
        assert out == "1 3 7 2 1 1 2 0 3 0 3"
        assert repl.board.get_pin(2) == 1
        repl.board.set_pin(4, 1)
        repl.board.set_adc(34, 4095)
        out = repl("from machine import Pin, ADC\na = ADC(Pin(34))\n"
                   "print(Pin(4, Pin.IN).value(), a.read(), a.read_u16())\na.width(ADC.WIDTH_9BIT)\nprint(a.read())")
        assert out.split() == ["1", "4095", "65535", "511"]
        assert repl.error("from machine import Pin\nPin(64)") == "ValueError: invalid pin"


class TestNetwork:
    def test_station_connects_with_the_boards_own_address(self, repl: Repl) -> None:
        out = repl("import network, machine\nw = network.WLAN(network.STA_IF)\n"
                   "print(w is network.WLAN(network.STA_IF), network.STA_IF, network.AP_IF, network.STAT_GOT_IP)\n"
                   "w.active(True)\nw.connect('lab', 'pw')\n"
                   "print(w.isconnected(), w.status() == network.STAT_GOT_IP, w.ifconfig()[0])\n"
                   "print(w.config('mac') == machine.unique_id(), network.hostname())")
        lines = out.splitlines()
        assert lines[0] == "True 0 1 1010"
        assert lines[1] == f"True True {repl.board.host}"
        assert lines[2] == f"True {repl.board.hostname.removesuffix('.local')}"


class TestSocket:
    def test_a_server_on_0_0_0_0_is_reached_at_the_boards_address(self, repl: Repl) -> None:
        repl.port.write(b"import socket\nprint(socket.getaddrinfo('0.0.0.0', 2021))\n"
                        b"s = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                        b"s.bind(('0.0.0.0', 2021))\ns.listen(1)\nprint('up')\n"
                        b"c, peer = s.accept()\nc.settimeout(0.2)\nc.send(b'hi')\n"
                        b"try:\n    c.recv(10)\nexcept OSError as e:\n    import errno\n"
                        b"    print('timeout', e.errno == errno.ETIMEDOUT)\nc.close()\ns.close()\x04")
        head = read_until(repl.port, b"up")
        assert b"[(2, 1, 0, '', ('0.0.0.0', 2021))]" in head  # the ESP32 (lwIP) 5-tuple form
        with socket.create_connection((repl.board.host, 2021), timeout=5) as c:
            assert c.recv(10) == b"hi"
            out = read_until(repl.port, b"\x04>")
        assert b"timeout True" in out  # an expired timeout is ETIMEDOUT, as lwIP reports it


class TestTime:
    def test_ticks_count_from_the_chip_reset_and_a_soft_reboot_keeps_counting(self, repl: Repl) -> None:
        board = repl.board
        before = time.monotonic()
        board.reset()
        repl.reenter()
        ticks = int(repl("import time\nprint(time.ticks_ms())"))
        assert 0 <= ticks <= (time.monotonic() - before) * 1000 + 50, ticks  # the host's clock reads far more
        repl.port.write(b"\x04")  # an empty raw-REPL command: soft reboot
        read_until(repl.port, b"MPY: soft reboot")
        repl.reenter()
        assert int(repl("import time\nprint(time.ticks_ms())")) >= ticks

    def test_ticks_wrap_at_2_to_the_30(self, repl: Repl) -> None:
        # A 32-bit port's ticks period (small ints have 31 bits); the 64-bit unix port's is 2**62.
        out = repl("import time\nprint(time.ticks_add(0, -1), time.ticks_diff(1, time.ticks_add(0, -1)),"
                   " time.ticks_diff(0, 1 << 29), time.ticks_us() < (1 << 30), time.ticks_cpu() < (1 << 30))")
        assert out == f"{(1 << 30) - 1} 2 {-(1 << 29)} True True"
        assert repl.error("import time\ntime.ticks_add(0, 1 << 29)") == "OverflowError: ticks interval overflow"
        assert repl("import time\nprint(hasattr(time, 'clock'), time.ticks_diff(time.ticks_ms(), 0) >= 0)") \
            == "False True"


class TestOs:
    def test_uname_and_no_host_functions(self, repl: Repl) -> None:
        out = repl("import os\nu = os.uname()\nprint(u.sysname, u.machine)\n"
                   "print([n for n in ('system', 'getenv', 'putenv') if hasattr(os, n)])\n"
                   "print(os.statvfs('/')[0])")
        assert out.splitlines() == ["esp32 Generic ESP32 module with ESP32", "[]", "4096"]

    def test_dupterm_mirrors_output_and_feeds_the_repl(self, repl: Repl) -> None:
        # os.dupterm(stream, index=0): output goes to the UART and the stream; the REPL
        # reads the stream too; returns the stream it replaces; one slot on the ESP32.
        out = repl("import io, os\n"
                   "class Term(io.IOBase):\n"
                   "    def __init__(self):\n"
                   "        self.out = bytearray()\n"
                   "        self.inp = list(b'print(6 * 7)\\r')\n"
                   "    def write(self, b):\n"
                   "        self.out += b\n"
                   "        return len(b)\n"
                   "    def readinto(self, buf):\n"
                   "        if not self.inp:\n"
                   "            return None\n"
                   "        buf[0] = self.inp.pop(0)\n"
                   "        return 1\n"
                   "term = Term()\n"
                   "print(os.dupterm(term), os.dupterm(term) is term)\n"
                   "print('to both')")
        assert out.splitlines() == ["None True", "to both"]
        mark = repl.board.console_mark()
        repl.port.write(b"\x02")  # the friendly REPL, which reads the stream's input
        # wait for the next prompt, not just "42": the line reaches the UART before the stream,
        # and reenter()'s Ctrl-C could interrupt Term.write (user code) between the two
        repl.board.expect(r">>> print\(6 \* 7\)\r\n42\r\n>>> ", 10, since=mark)
        repl.reenter()
        out = repl("import os\nprint(os.dupterm(None) is term, b'to both' in term.out, b'42' in term.out)")
        assert out == "True True True"
        assert repl.error("import os\nos.dupterm(None, 1)") == "ValueError: invalid dupterm index"

    def test_a_dupterm_stream_that_fails_is_deactivated(self, repl: Repl) -> None:
        out = repl("import io, os\nclass Bad(io.IOBase):\n"
                   "    def write(self, b):\n        raise ValueError('gone')\n"
                   "    def readinto(self, b):\n        return None\n"
                   "os.dupterm(Bad())\nprint('after')\nprint(os.dupterm(None))")
        # the UART got the line, then the stream's write failed: a note, and the slot is empty
        assert out.startswith("after\r\ndupterm: Exception in write() method, deactivating:"), out
        assert out.splitlines()[-2:] == ["ValueError: gone", "None"]


class TestSys:
    def test_sys_attributes_cannot_be_rebound(self, repl: Repl) -> None:
        # The port's sys is a C module: `sys.stdout = x` raises; ps1/ps2 may be set.
        err = repl.error("import sys\nsys.stdout = None")
        assert err == "AttributeError: 'module' object has no attribute 'stdout'"
        assert repl("import sys\nsys.ps1 = '>> '\nprint(sys.ps1)\nsys.stdout.write('still\\n')") == ">> \r\nstill"
        assert repl.error("import sys\ndel sys.path").startswith("AttributeError")

    def test_platform_maxsize_and_path(self, repl: Repl) -> None:
        out = repl("import sys\nprint(sys.platform, sys.maxsize, sys.path, hasattr(sys, 'executable'))")
        assert out == "esp32 2147483647 ['', '.frozen', '/lib'] False"
        assert repl("import sys\nsys.print_exception(ValueError('x'))") == "ValueError: x"


class TestMicropython:
    def test_kbd_intr_off_makes_ctrl_c_data(self, repl: Repl) -> None:
        repl.port.write(b"import micropython, sys\nmicropython.kbd_intr(-1)\nprint('ready')\n"
                        b"print(sys.stdin.buffer.read(1))\x04")
        read_until(repl.port, b"ready")
        wait_until(lambda: repl.board.line_stats and repl.board._uart and repl.board._uart.interrupt_char == -1,
                   5, "the board to stop treating Ctrl-C as an interrupt")
        repl.port.write(b"\x03")
        assert b"b'\\x03'" in read_until(repl.port, b"\x04>")

    def test_heap_functions(self, repl: Repl) -> None:
        out = repl("import micropython\nlocked = 0\nmicropython.heap_lock()\ntry:\n    bytearray(10)\n"
                   "except MemoryError:\n    locked = 1\nmicropython.heap_unlock()\nprint('locked' * locked)\n"
                   "print(micropython.const(3), callable(micropython.mem_info), callable(micropython.schedule))")
        assert out.splitlines() == ["locked", "3 True True"]


class TestThread:
    def test_thread_api(self, repl: Repl) -> None:
        # The API only: how threads interleave (a GIL on the ESP32) is covered elsewhere.
        # acquire() takes no timeout on any port (modthread.c ignores it), so none here.
        out = repl("import _thread, time\nlock = _thread.allocate_lock()\nseen = []\n"
                   "def work(n):\n    with lock:\n        seen.append((n, _thread.get_ident()))\n"
                   "_thread.start_new_thread(work, (1,))\n"
                   "t = time.ticks_ms()\nwhile not seen and time.ticks_diff(time.ticks_ms(), t) < 5000:\n"
                   "    time.sleep_ms(5)\n"
                   "print(seen[0][0], seen[0][1] != _thread.get_ident())\n"
                   "lock.acquire()\nprint(lock.acquire(0), lock.locked())\nlock.release()\n"
                   "print(callable(_thread.stack_size))")
        assert out.splitlines() == ["1 True", "False True", "True"]


def test_the_board_is_still_sane(repl: Repl, tmp_path: Path) -> None:
    """After every check above the board still runs code: nothing left it wedged."""
    assert repl("print(1 + 1)") == "2"
