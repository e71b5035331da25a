"""The virtual board's REPL behaves like MicroPython's pyexec on an ESP32."""

from __future__ import annotations

import time

import pytest

from serial_helpers import enter_raw, open_port, raw_exec, read_until
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(60)


def test_friendly_repl_banner_and_expression_echo(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    fast_board.wait_repl("friendly")
    port.write(b"\x02")  # Ctrl-B: banner again
    banner = read_until(port, b">>> ")
    assert b"MicroPython v" in banner and b"ESP32" in banner
    assert b'Type "help()" for more information.\r\n' in banner
    port.write(b"6 * 7\r")
    assert b"42\r\n>>> " in read_until(port, b"42\r\n>>> ")


def test_friendly_repl_compound_statement_and_paste_mode(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    fast_board.wait_repl("friendly")
    port.write(b"for i in range(3):\r")
    read_until(port, b"... ")
    # readline auto-indents the next line; erase that indent and Enter ends the block.
    port.write(b"print('n', i)\r\x08\x08\x08\x08\r")
    out = read_until(port, b">>> ")
    assert b"n 0\r\nn 1\r\nn 2\r\n" in out
    port.write(b"\x05")
    read_until(port, b"paste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
    port.write(b"x = 5\ry = x * 2\rprint('pasted', y)\r\x04")
    assert b"pasted 10" in read_until(port, b">>> ")


def test_raw_repl_round_trip_and_error(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    out, err = raw_exec(port, "print(1 + 1)")
    assert out.strip() == b"2" and err == b""
    out, err = raw_exec(port, "1/0")
    assert out == b"" and b"ZeroDivisionError" in err
    port.write(b"\x02")  # Ctrl-B back to the friendly REPL
    read_until(port, b">>> ")


def test_raw_paste_honours_window_flow_control(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    port.write(b"\x05A\x01")
    assert read_until(port, b"R\x01") .endswith(b"R\x01")
    header = port.read(3)
    while len(header) < 3:
        header += port.read(3 - len(header))
    window = int.from_bytes(header[:2], "little")
    assert window == 128 and header[2:] == b"\x01"
    # Send 12 KB of code, never more than the device has granted (mostly comments, so
    # compiling it fits a 128 KB heap, as a real script would).
    code = b"".join(b"# %s\nv = %d\n" % (b"c" * 110, i) for i in range(100)) + b"print('total', v + 1101)\n"
    credit, sent, grants = 2 * window, 0, 0
    while sent < len(code):
        while credit == 0:
            b = port.read(1)
            if b == b"\x01":
                credit += window
                grants += 1
            elif b:
                raise AssertionError(f"unexpected byte {b!r} during raw paste")
        n = min(credit, len(code) - sent)
        port.write(code[sent:sent + n])
        sent += n
        credit -= n
    port.write(b"\x04")
    out = read_until(port, b"\x04>", timeout=20)
    assert grants >= len(code) // window - 2
    # Nothing may be lost: the host never had more than 256 bytes unread by the board. (A
    # lost chunk that held only a comment and a `v = ` line went unseen in the output.)
    assert fast_board.line_stats.rx_overflow == 0
    assert b"total 1200" in out


def test_ctrl_c_interrupts_busy_main_py(board: VirtualBoard) -> None:
    board.power_cut()
    board.write_file("/main.py", "print('main starts')\nwhile True:\n    pass\n")
    board.power_on()
    board.expect("main starts", 10)
    port = open_port(board)
    mark = board.console_mark()
    port.write(b"\x03")
    board.expect(r"KeyboardInterrupt", 10, since=mark)
    board.wait_repl("friendly")
    port.write(b"print('alive')\r")
    board.expect("alive", 5, since=mark)


def test_ctrl_c_interrupts_sleeping_raw_repl_code(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    port.write(b"import time\ntime.sleep(100)\x04")
    read_until(port, b"OK")
    # As on a real board, "OK" goes out before the code is compiled and Ctrl-C armed; a
    # Ctrl-C in between is plain input. Press it again until the sleep ends (10 s at most).
    out, deadline = b"", time.monotonic() + 10
    while not out.endswith(b"\x04>"):
        assert time.monotonic() < deadline, out[-300:]
        port.write(b"\x03")
        out += port.read_until(b"\x04>")  # the port's 0.1 s timeout paces the presses
    assert b"KeyboardInterrupt" in out


def test_soft_reboot_runs_boot_and_main_again(fast_board: VirtualBoard) -> None:
    fast_board.power_cut()
    fast_board.write_file("/boot.py", "print('boot ran')\n")
    fast_board.write_file("/main.py", "print('main ran')\n")
    fast_board.power_on()
    fast_board.wait_repl("friendly")
    port = open_port(fast_board)
    mark = fast_board.console_mark()
    port.write(b"\x04")
    fast_board.expect(r"MPY: soft reboot\r\n(.|\r|\n)*boot ran(.|\r|\n)*main ran", 10, since=mark)


def test_soft_reboot_in_raw_repl_keeps_raw_mode_and_skips_main(fast_board: VirtualBoard) -> None:
    fast_board.power_cut()
    fast_board.write_file("/boot.py", "print('boot ran')\n")
    fast_board.write_file("/main.py", "print('main ran')\n")
    fast_board.power_on()
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    mark = fast_board.console_mark()
    port.write(b"\x04")
    out = read_until(port, b"raw REPL; CTRL-B to exit\r\n>", timeout=10)
    assert b"OK\r\nMPY: soft reboot\r\n" in out and b"boot ran" in out
    assert "main ran" not in fast_board._console.text(mark)
    assert fast_board.wait_repl("raw") == "raw"


def test_app_thread_output_shows_while_repl_idle(fast_board: VirtualBoard) -> None:
    fast_board.power_cut()
    fast_board.write_file(
        "/main.py",
        "import _thread, time\n"
        "def app():\n"
        "    for i in range(3):\n"
        "        print('tick', i)\n"
        "        time.sleep(0.05)\n"
        "_thread.start_new_thread(app, ())\n",
    )
    fast_board.power_on()
    fast_board.expect("tick 2", 10)
    assert fast_board.wait_repl("friendly") == "friendly"
