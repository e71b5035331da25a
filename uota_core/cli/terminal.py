"""`uota terminal`: the board's friendly REPL over USB serial, or a RemoteIO line shell over TCP.

Ctrl-] exits (as in telnet/miniterm), at once, over serial and TCP alike.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from uota_core.cli.common import PortParam, names_board, project_config, reports_errors

# pyserial and the engine load when the command runs (tests/test_cli_startup.py)
if TYPE_CHECKING:
    import serial

    from uota_core.config import Config

EXIT = b"\x1d"  # Ctrl-]
CTRL_C = b"\x03"


@contextlib.contextmanager
def _raw_stdin(fd: int) -> Iterator[None]:
    """Keystrokes go to the board as typed (Ctrl-C included), when stdin is a terminal."""
    if not os.isatty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def crlf(data: bytes, prev: bytes = b"") -> bytes:
    """`data` with each bare `\n` made `\r\n`: a raw terminal moves down without returning
    to column 0 otherwise, so app output stair-steps. `prev` is the byte before `data`."""
    out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if prev == b"\r" and data.startswith(b"\n"):
        out = out[1:]  # its `\r` came in the previous chunk
    return out


def passthrough(ser: serial.Serial, in_fd: int, out_fd: int) -> bool:
    """Copy keystrokes to the port and the port to the screen until Ctrl-] (or stdin ends).
    Returns whether a Ctrl-C went to the board (which stops uota's OTA server and app)."""
    ser.timeout = 0
    interrupted = False
    last = b""
    while True:
        ready, _, _ = select.select([in_fd, ser.fileno()], [], [], 0.5)
        if ser.fileno() in ready:
            data = ser.read(ser.in_waiting or 1)
            if data:
                os.write(out_fd, crlf(data, last))
                last = data[-1:]
        if in_fd in ready:
            keys = os.read(in_fd, 256)
            if not keys:
                return interrupted
            i = keys.find(EXIT)
            if i >= 0:
                keys = keys[:i]
            interrupted = interrupted or CTRL_C in keys
            ser.write(keys.replace(b"\n", b"\r"))
            if i >= 0:
                return interrupted


def restore_app(ser: serial.Serial) -> None:
    """Soft-reset the board so the launcher (main.py) runs the OTA server and the app again:
    Ctrl-C ends whatever runs, Ctrl-B leaves a raw REPL, Ctrl-D at an empty friendly prompt
    soft-resets (which runs main.py, unlike a soft reset in the raw REPL)."""
    ser.write(b"\x03\x02\x04")
    ser.flush()


@contextlib.contextmanager
def _line_ends_at_exit(fd: int | None) -> Iterator[None]:
    """On a terminal, Ctrl-] also ends a line (VEOL), so it reaches the shell at once instead
    of after an Enter; line editing stays the terminal's."""
    if fd is None or not os.isatty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[6][termios.VEOL] = EXIT
    termios.tcsetattr(fd, termios.TCSANOW, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def _typed(fd: int | None) -> Iterator[bytes]:
    """What the user typed, up to Ctrl-] or the end of input. A real fd is read directly:
    sys.stdin's readline would wait for a newline after Ctrl-]."""
    while True:
        data = os.read(fd, 4096) if fd is not None else sys.stdin.readline().encode()
        if not data:
            return
        i = data.find(EXIT)
        if i >= 0:
            if i:
                yield data[:i]
            return
        yield data


def _rio_shell(cfg: Config, host: str | None, port: int | str | None) -> None:
    from uota_core.cli.remoteio import parse_kwargs
    from uota_core.connect import open_remoteio

    fd = _stdin_fd()
    with _line_ends_at_exit(fd), open_remoteio(cfg, "wifi_tcp", host, port, 10.0) as rio:
        click.echo("RemoteIO shell: NAME key=value ... calls a handler; an empty line shows prints; Ctrl-] or Ctrl-D exits")
        pending = b""
        for data in _typed(fd):
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                words = line.decode(errors="replace").split()
                if words:
                    try:
                        click.echo(repr(rio.call(words[0], **parse_kwargs(tuple(words[1:])))))
                    except Exception as e:  # one bad call must not end the shell
                        click.echo(f"error: {e}")
                for chunk in rio.listen(timeout=0.2):
                    click.echo(chunk, nl=False)


@click.command()
@click.option("--transport", type=click.Choice(["serial", "wifi_tcp"]), default=None,
              help="serial: the REPL over USB (default when --port is a path); wifi_tcp: a RemoteIO line shell.")
@click.option("--port", type=PortParam(), help="Serial port (e.g. /dev/ttyUSB0) or RemoteIO TCP port.")
@click.option("--host", help="Device IP or hostname for wifi_tcp.")
@click.option("--baud", type=click.IntRange(min=1200), default=None,
              help="Serial baud rate (default: ota.json serialBaud, else 115200).")
@reports_errors
def terminal(transport: str | None, port: int | str | None, host: str | None, baud: int | None) -> None:
    """An interactive shell on the board: its MicroPython REPL over USB serial; Ctrl-] exits.

    Ctrl-C stops uota's OTA server and the app to reach the REPL: on exit the board is then
    soft-reset so they run again. Outside a project, give --port or --host.
    """
    from uota_core.connect import resolve_transport, serial_port

    cfg = project_config(names_board(host, port, transport))
    if resolve_transport(cfg, transport, port) == "wifi_tcp":
        _rio_shell(cfg, host, port)
        return
    from uota_core.serialport import open_port

    path = serial_port(cfg, port)
    ser = open_port(path, baud or cfg.get("serialBaud", 115200))
    click.echo(f"connected to {path}; Ctrl-] exits", err=True)
    try:
        with _raw_stdin(sys.stdin.fileno()):
            ser.write(b"\r")  # shows the prompt
            interrupted = passthrough(ser, sys.stdin.fileno(), sys.stdout.fileno())
        if interrupted:
            restore_app(ser)
            click.echo(f"\nsoft-resetting {path}: Ctrl-C had stopped the OTA server and the app; "
                       "they start again", err=True)
    finally:
        ser.close()
