"""Bad input for the serial transport: one clear error that names the port and what to try."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import serial
from click.testing import CliRunner

from uota_core.cli import cli
from uota_core.serial_transport import SerialTransportError, open_serial_link
from uota_core.serialport import SerialPortError, detect
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(60)


def test_missing_port_is_named() -> None:
    with pytest.raises(SerialPortError, match=r"serial port /dev/ttyUSB-uota-missing does not exist"):
        open_serial_link("/dev/ttyUSB-uota-missing")


def test_busy_port_says_another_program_holds_it(board: VirtualBoard) -> None:
    holder = serial.Serial(board.serial_port, 115200, exclusive=True)
    try:
        with pytest.raises(SerialPortError, match=rf"{board.serial_port} is busy: another program holds it"):
            open_serial_link(board.serial_port)
    finally:
        holder.close()


def test_a_port_where_nothing_answers() -> None:
    master, slave = os.openpty()  # a serial port with no MicroPython behind it: silence
    try:
        with pytest.raises(SerialTransportError, match=r"is not responding: is it powered, running MicroPython"):
            open_serial_link(os.ttyname(slave))
    finally:
        os.close(slave)
        os.close(master)


def test_baud_mismatch_suggests_the_baud_rate(board: VirtualBoard) -> None:
    board.wait_repl(timeout=10)
    with pytest.raises(SerialTransportError, match=r"wrong baud rate\? ESP32 MicroPython uses 115200"):
        open_serial_link(board.serial_port, baud=9600)


def test_cli_reports_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from uota_core.project import init_project

    init_project(tmp_path / "p")
    monkeypatch.chdir(tmp_path / "p")
    result = CliRunner().invoke(cli, ["version", "--port", "/dev/ttyUSB-uota-missing"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "error: serial port /dev/ttyUSB-uota-missing does not exist" in result.stderr
    result = CliRunner().invoke(cli, ["version", "--transport", "serial", "--port", "2018"])
    assert result.exit_code == 1 and "is a TCP port" in result.stderr


def test_detection_without_boards_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import uota_core.serialport as sp

    monkeypatch.setattr(sp.list_ports, "comports", lambda: [])
    with pytest.raises(SerialPortError, match="no ESP32 USB serial port found"):
        detect()
    ports = [SimpleNamespace(device="/dev/ttyUSB0", vid=0x10C4, pid=0xEA60, description="CP2102"),
             SimpleNamespace(device="/dev/ttyACM0", vid=0x303A, pid=0x1001, description="USB JTAG"),
             SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, description="n/a")]
    monkeypatch.setattr(sp.list_ports, "comports", lambda: ports)
    with pytest.raises(SerialPortError, match=r"several ESP32 serial ports found: /dev/ttyACM0 .*/dev/ttyUSB0"):
        detect()
    monkeypatch.setattr(sp.list_ports, "comports", lambda: ports[:1] + ports[2:])
    assert detect() == "/dev/ttyUSB0"


def test_a_session_the_board_ends_on_bad_input_leaves_nothing_for_the_repl(ota_board: VirtualBoard) -> None:
    from uota_core.link import LinkError

    ota_board.expect("listening on", timeout=15)
    link = open_serial_link(ota_board.serial_port)
    mark = ota_board.console_mark()
    # a line longer than the session's buffer ends the session on the board; the frames the
    # host has sent meanwhile must be swallowed, not typed into the REPL as Python
    try:
        link.write(b"x" * 600 + b"\n" + b"print('leaked into the REPL')\n" * 20)
        while True:
            link.readline(5)
    except LinkError:
        pass
    link.close()
    ota_board.expect("MPY: soft reboot", timeout=10, since=mark)  # closing restarted the board
    ota_board.expect("listening on", timeout=15, since=mark)
    after = ota_board.console[mark:]
    assert "leaked into the REPL" not in after and "SyntaxError" not in after, after[-1500:]


def test_closing_a_session_after_a_pause_leaves_nothing_for_the_repl(ota_board: VirtualBoard) -> None:
    """Found by the serial fuzz soak: a host that closed a session it had left idle past the
    retransmit timeout sent a POLL behind its CLOSE; the POLL reached the raw REPL after
    the session, and its type byte (4) is Ctrl-D there: the bytes before it ran as code."""
    from uota_core.serial_link import RTO
    from uota_core.session import Session

    ota_board.expect("listening on", timeout=15)
    s = Session(open_serial_link(ota_board.serial_port))
    assert s.ping()
    time.sleep(RTO * 3)  # the scenario itself: a host idle past its retransmit timeout
    mark = ota_board.console_mark()
    s.close()
    ota_board.expect("MPY: soft reboot", timeout=10, since=mark)
    ota_board.expect("listening on", timeout=15, since=mark)
    after = ota_board.console[mark:]
    assert "<stdin>" not in after, after[-1500:]


def test_a_close_frame_never_holds_a_raw_repl_control_key() -> None:
    """Whatever the session key and ack, the host's CLOSE has no Ctrl-A..Ctrl-D byte (it may
    reach a board already back in its raw REPL), and it still parses as a CLOSE."""
    import random

    from uota_core.serial_link import CLOSE, REPL_KEYS, FrameParser, close_frame

    rng = random.Random(6)
    for key in [0, *(rng.randrange(1 << 31) for _ in range(300))]:
        for ack in (0, 1, 2, 3, 4, rng.randrange(256)):
            f = close_frame(ack, key)
            assert not REPL_KEYS.intersection(f), (key, ack, f)
            frames, junk = FrameParser(key).feed(f)
            assert [t for t, *_ in frames] == [CLOSE] and not junk, (key, ack, f)
