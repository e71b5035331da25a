"""`uota terminal`: the board's friendly REPL over USB serial, or a RemoteIO line shell over TCP.

Ctrl-] exits (as in telnet/miniterm).
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

from uota_core.cli.common import PortParam, project_config, reports_errors

# pyserial and the engine load when the command runs (tests/test_cli_startup.py)
if TYPE_CHECKING:
    import serial

    from uota_core.config import Config

EXIT = b"\x1d"  # Ctrl-]


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


def passthrough(ser: serial.Serial, in_fd: int, out_fd: int) -> None:
    """Copy keystrokes to the port and the port to the screen until Ctrl-] (or stdin ends)."""
    ser.timeout = 0
    while True:
        ready, _, _ = select.select([in_fd, ser.fileno()], [], [], 0.5)
        if ser.fileno() in ready:
            data = ser.read(ser.in_waiting or 1)
            if data:
                os.write(out_fd, data)
        if in_fd in ready:
            keys = os.read(in_fd, 256)
            if not keys:
                return
            i = keys.find(EXIT)
            if i >= 0:
                ser.write(keys[:i])
                return
            ser.write(keys.replace(b"\n", b"\r"))


def _rio_shell(cfg: Config, host: str | None, port: int | str | None) -> None:
    from uota_core.cli.remoteio import parse_kwargs
    from uota_core.connect import open_remoteio

    with open_remoteio(cfg, "wifi_tcp", host, port, 10.0) as rio:
        click.echo("RemoteIO shell: NAME key=value ... calls a handler; an empty line shows prints; Ctrl-] or Ctrl-D exits")
        for line in sys.stdin:
            if EXIT.decode() in line:
                return
            words = line.split()
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
@click.option("--baud", type=click.IntRange(min=1200), default=None, help="Serial baud rate (default 115200).")
@reports_errors
def terminal(transport: str | None, port: int | str | None, host: str | None, baud: int | None) -> None:
    """An interactive shell on the board: its MicroPython REPL over USB serial; Ctrl-] exits."""
    from uota_core.connect import resolve_transport, serial_port

    cfg = project_config()
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
            passthrough(ser, sys.stdin.fileno(), sys.stdout.fileno())
    finally:
        ser.close()
