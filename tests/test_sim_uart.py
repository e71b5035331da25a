"""The serial line: baud-rate throttle both ways and injected faults."""

from __future__ import annotations

import hashlib
import time

import pytest

from serial_helpers import enter_raw, open_port, raw_exec, read_until
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(90)

SIZE = 20 * 1024
LINE_RATE = 115200 / 10


def test_board_to_host_is_throttled_to_115200(board: VirtualBoard) -> None:
    port = open_port(board)
    enter_raw(board, port)
    port.write(b"import sys\nsys.stdout.write('x' * %d)\x04" % SIZE)
    read_until(port, b"OK")
    t0 = time.monotonic()
    data = read_until(port, b"\x04", timeout=30)
    elapsed = time.monotonic() - t0
    assert data.count(b"x") == SIZE
    assert elapsed >= 1.7, f"{SIZE} bytes took {elapsed:.2f} s, faster than 115200 baud allows"


def test_host_to_board_is_throttled_to_115200(board: VirtualBoard) -> None:
    port = open_port(board)
    enter_raw(board, port)
    payload = bytes(range(256)) * (SIZE // 256)
    port.write(
        # Binary data holds 0x03: disable Ctrl-C as device code must on a real UART.
        b"import sys, hashlib, micropython\nmicropython.kbd_intr(-1)\n"
        b"h = hashlib.sha256(); n = 0\n"
        b"while n < %d:\n"
        b"    b = sys.stdin.buffer.read(min(256, %d - n)); n += len(b); h.update(b)\n"
        b"print(n, h.digest().hex())\x04" % (SIZE, SIZE)
    )
    read_until(port, b"OK")
    t0 = time.monotonic()
    # Feed it in pieces the board's 4 KB receive buffer can hold, as a careful host would.
    for i in range(0, SIZE, 1024):
        port.write(payload[i:i + 1024])
        port.flush()
    out = read_until(port, b"\x04", timeout=30)
    elapsed = time.monotonic() - t0
    n, digest = out.split()[:2]
    assert int(n) == SIZE and digest.decode() == hashlib.sha256(payload).hexdigest()
    assert elapsed >= 1.7, f"{SIZE} bytes took {elapsed:.2f} s, faster than 115200 baud allows"
    assert board.line_stats.rx_overflow == 0


def _collect_until_prompt(port, timeout: float = 10.0) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not got.endswith(b"\x04>"):
        got += port.read(4096)
    return bytes(got)


def test_dropped_bytes_are_observable(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    fast_board.set_faults(drop=0.05, seed=7, direction="to_host")
    port.write(b"print('d' * 4000)\x04")
    got = _collect_until_prompt(port)
    assert fast_board.line_stats.dropped > 0
    assert 3000 < got.count(b"d") < 4000


def test_corrupted_bytes_are_observable(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    fast_board.set_faults(corrupt=0.05, seed=7, direction="to_host")
    port.write(b"print('c' * 4000)\x04")
    got = _collect_until_prompt(port)
    assert fast_board.line_stats.corrupted > 0
    assert 3000 < got.count(b"c") < 4000
    fast_board.set_faults()
    enter_raw(fast_board, port)
    out, _ = raw_exec(port, "print('clean')")
    assert out.strip() == b"clean"


def test_cut_link_passes_nothing_until_restored(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    fast_board.set_faults(cut=True)
    port.write(b"print('lost')\x04")
    assert port.read(100) == b""
    assert fast_board.line_stats.lost_while_cut > 0
    fast_board.set_faults()
    enter_raw(fast_board, port)
    out, _ = raw_exec(port, "print('back')")
    assert out.strip() == b"back"


def test_wrong_baud_rate_garbles_the_line(board: VirtualBoard) -> None:
    port = open_port(board, baud=9600)
    board.wait_repl("friendly")
    port.write(b"print(12345)\r")
    seen = port.read(200)
    assert b"12345" not in seen
    assert board.line_stats.garbled_baud > 0


def test_bytes_written_just_before_the_host_closes_the_port_still_reach_the_board() -> None:
    """mpremote writes its closing Ctrl-B and closes the port at once. A USB-UART bridge
    still sends what it was given; the virtual line must too, even when its thread only
    looks after the host has gone (a busy machine): here it is held off until then."""
    import os
    import select

    import serial

    from uota_core.sim.uart import UartLine

    line = UartLine(None, on_board_output=lambda data: None, on_interrupt=lambda: True)
    try:
        with line._lock:  # the line's thread can't take the host's bytes until it is released
            port = serial.Serial(line.port, 115200, timeout=0)
            port.write(b"\r\x02")
            port.flush()
            port.close()
        got = b""
        deadline = time.monotonic() + 10
        while got != b"\r\x02" and time.monotonic() < deadline:
            if select.select([line.vm_stdin], [], [], 0.2)[0]:
                got += os.read(line.vm_stdin, 64)
        assert got == b"\r\x02", f"the board got {got!r} of what the host wrote before closing"
    finally:
        line.close()


def _line_to_vm(line, host: "serial.Serial", data: bytes, expect: int) -> bytes:  # noqa: F821
    """Write `data` from the host and read what reaches the VM's stdin until `expect`
    bytes have come (or 10 s pass)."""
    import os
    import select

    host.write(data)
    host.flush()
    got = b""
    deadline = time.monotonic() + 10
    while len(got) < expect and time.monotonic() < deadline:
        if select.select([line.vm_stdin], [], [], 0.2)[0]:
            got += os.read(line.vm_stdin, expect - len(got))
    return got


def test_the_receive_buffer_holds_4_kb_whatever_the_board_has_read_before() -> None:
    """The board's 4 KB receive buffer must take any bytes that fit in it. It was a one-page
    pipe, and Linux refuses a write that does not fit in what is left of the page even when
    the pipe holds a few bytes: a slow VM lost whole chunks of a flow-controlled raw paste.
    Here the VM has read 3,990 of 4,000 bytes; 1,000 more must all arrive."""
    import serial

    from uota_core.sim.uart import RX_BUFFER, UartLine

    line = UartLine(None, on_board_output=lambda data: None, on_interrupt=lambda: True)
    port = serial.Serial(line.port, 115200, timeout=0)
    try:
        first = bytes(range(97, 123)) * 160  # no Ctrl-C in it
        assert _line_to_vm(line, port, first[:4000], 3990) == first[:3990]
        # 10 bytes unread; wait until the line has handed over all 4,000
        deadline = time.monotonic() + 10
        while line.stats.to_board < 4000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert line.stats.to_board == 4000
        second = b"0123456789" * 100
        got = _line_to_vm(line, port, second, 1010)
        assert got == first[3990:4000] + second, f"{1010 - len(got)} bytes lost"
        assert line.stats.rx_overflow == 0
        # And it is still 4 KB: what the board does not read beyond that is lost.
        port.write(b"x" * (RX_BUFFER + 904))
        port.flush()
        deadline = time.monotonic() + 10
        while line.stats.to_board + line.stats.rx_overflow < 4000 + 1000 + RX_BUFFER + 904:
            assert time.monotonic() < deadline, line.stats
            time.sleep(0.01)
        assert line.stats.rx_overflow == 904
    finally:
        port.close()
        line.close()
