"""Boot sequence, resets, power cuts and the machine/network shims of the virtual board."""

from __future__ import annotations

import time

import pytest

from serial_helpers import enter_raw, open_port, raw_exec
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(60)


def test_boot_py_then_main_py_then_repl(fast_board: VirtualBoard) -> None:
    fast_board.power_cut()
    fast_board.write_file("/boot.py", "print('one: boot')\n")
    fast_board.write_file("/main.py", "print('two: main')\n")
    mark = fast_board.console_mark()
    fast_board.power_on()
    fast_board.wait_repl("friendly")
    text = fast_board._console.text(mark)
    assert text.index("one: boot") < text.index("two: main") < text.index(">>> ")


def test_exception_in_main_prints_traceback_and_falls_to_repl(fast_board: VirtualBoard) -> None:
    fast_board.power_cut()
    fast_board.write_file("/main.py", "print('before')\nraise ValueError('broken app')\n")
    mark = fast_board.console_mark()
    fast_board.power_on()
    fast_board.wait_repl("friendly")
    text = fast_board._console.text(mark)
    assert "Traceback (most recent call last):" in text
    assert 'File "main.py", line 2' in text and "ValueError: broken app" in text


def test_files_persist_across_power_cut(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    out, err = raw_exec(port, "f = open('/data.txt', 'w'); f.write('survives'); f.close(); print('w')")
    assert err == b""
    fast_board.power_cut()
    assert fast_board.read_file("/data.txt") == b"survives"
    fast_board.power_on()
    enter_raw(fast_board, port)
    out, _ = raw_exec(port, "print(open('/data.txt').read())")
    assert out.strip() == b"survives"


def test_reset_causes_and_machine_reset(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    out, _ = raw_exec(port, "import machine; print(machine.reset_cause(), machine.PWRON_RESET)")
    cause, pwron = out.split()
    assert cause == pwron == b"1"
    mark = fast_board.console_mark()
    port.write(b"import machine; machine.reset()\x04")
    fast_board.expect("SW_CPU_RESET", 10, since=mark)
    enter_raw(fast_board, port)
    out, _ = raw_exec(port, "import machine; print(machine.reset_cause() == machine.SOFT_RESET)")
    assert out.strip() == b"True"
    fast_board.reset()
    enter_raw(fast_board, port)
    out, _ = raw_exec(port, "import machine; print(machine.reset_cause() == machine.HARD_RESET)")
    assert out.strip() == b"True"


def test_unique_id_is_stable_and_sys_path_is_esp32_like(tmp_path) -> None:
    ids = []
    for _ in range(2):
        with VirtualBoard(tmp_path / "b", baud=None, mdns=False) as b:
            port = open_port(b)
            enter_raw(b, port)
            out, err = raw_exec(port, "import machine, sys, os; print(machine.unique_id().hex(), sys.path, os.getcwd())")
            assert err == b""
            ids.append(out.split()[0])
            assert b"['', '.frozen', '/lib']" in out
            port.close()
    assert ids[0] == ids[1] and len(ids[0]) == 12


def test_free_heap_at_boot_py_is_esp32_like(fast_board: VirtualBoard) -> None:
    """A real ESP32 without PSRAM (128 KB heap) has about 110 KB free when boot.py starts."""
    fast_board.power_cut()
    fast_board.write_file("/boot.py", "import gc\ngc.collect()\nprint('FREE', gc.mem_free())\n")
    mark = fast_board.console_mark()
    fast_board.power_on()
    free = int(fast_board.expect(rb"FREE (\d+)", 10, since=mark).group(1))
    assert 100_000 < free < 120_000


def test_heap_option_changes_what_device_code_gets(tmp_path) -> None:
    with VirtualBoard(tmp_path / "big", baud=None, mdns=False, heap="1M") as big:
        port = open_port(big)
        enter_raw(big, port)
        out, _ = raw_exec(port, "import gc; gc.collect(); print(gc.mem_free())")
        assert int(out) > 900_000


def test_pin_and_adc_values_settable_from_host(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    fast_board.set_pin(4, 1)
    fast_board.set_adc(34, 1820)
    out, err = raw_exec(
        port,
        "from machine import Pin, ADC\n"
        "print(Pin(4, Pin.IN).value(), ADC(Pin(34)).read())\n"
        "Pin(2, Pin.OUT).value(1)\n",
    )
    assert err == b"" and out.split() == [b"1", b"1820"]
    assert fast_board.get_pin(2) == 1


def test_wlan_shim_reports_board_address(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    out, err = raw_exec(
        port,
        "import network\n"
        "w = network.WLAN(network.STA_IF); w.active(True); w.connect('lab', 'pw')\n"
        "print(w.isconnected(), w.ifconfig()[0], network.hostname(), len(w.config('mac')))\n",
    )
    assert err == b"", err
    connected, ip, hostname, maclen = out.split()
    assert connected == b"True" and ip.decode() == fast_board.host
    assert hostname.decode() + ".local" == fast_board.hostname and maclen == b"6"


def test_power_on_returns_once_boot_py_started(fast_board: VirtualBoard) -> None:
    fast_board.power_cut()
    fast_board.write_file("/boot.py", "import time\nprint('boot starts')\ntime.sleep(3)\nprint('boot ends')\n")
    t0 = time.monotonic()
    fast_board.power_on()
    assert time.monotonic() - t0 < 2.5
    fast_board.expect("boot ends", 10)
