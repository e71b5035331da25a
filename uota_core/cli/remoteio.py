"""`uota remoteio listen` and `uota remoteio call NAME key=val ...`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from uota_core.cli.common import PortParam, emit_json, json_option, names_board, project_config, reports_errors
from uota_core.errors import UotaError

# the RemoteIO client loads when a command runs (tests/test_cli_startup.py)
if TYPE_CHECKING:
    from uota_core.remoteio import RemoteIOClient


def parse_kwargs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """key=val pairs; values are JSON where they parse (true, 3, [1]), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UotaError(f"argument {pair!r} must look like key=value")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _client(transport: str | None, host: str | None, port: int | str | None, timeout: float) -> RemoteIOClient:
    from uota_core.connect import open_remoteio

    return open_remoteio(project_config(names_board(host, port, transport)), transport, host, port, timeout)


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--port", type=PortParam(), help="RemoteIO TCP port (default: ota.json remoteioPort), or "
                      "the serial port, e.g. /dev/ttyUSB0 (default: ota.json serialPort, else auto-detected).")(fn)
    fn = click.option("--host", help="Device IP or hostname (default: ota.json hostname).")(fn)
    fn = click.option("--transport", type=click.Choice(["wifi_tcp", "serial"]), default=None,
                      help="wifi_tcp: TCP 2019; serial: multiplexed on the board's UART "
                           "(default: serial for a --port path, else the first in ota.json transports).")(fn)
    return fn


@click.group()
def remoteio() -> None:
    """The device's print() stream and its RPC handlers (TCP 2019, or over USB serial)."""


@remoteio.command()
@_options
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@reports_errors
def listen(transport: str | None, host: str | None, port: int | str | None, timeout: float | None) -> None:
    """Stream everything the device print()s, with timestamps; follows the device across resets."""
    deadline = None if timeout is None else time.monotonic() + timeout
    first = True
    while deadline is None or time.monotonic() < deadline:
        if not first:
            click.echo(f"[{time.strftime('%H:%M:%S')}] --- the device closed the connection; reconnecting ---")
        first = False
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        with _client(transport, host, port, 10.0) as rio:
            pending = ""
            for chunk in rio.listen(left):
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    click.echo(f"[{time.strftime('%H:%M:%S')}] {line}")
            if pending:
                click.echo(f"[{time.strftime('%H:%M:%S')}] {pending}")


@remoteio.command()
@click.argument("name")
@click.argument("args", nargs=-1)
@_options
@click.option("--timeout", type=float, default=10.0, show_default=True)
@json_option
@reports_errors
def call(name: str, args: tuple[str, ...], transport: str | None, host: str | None, port: int | str | None,
         timeout: float, as_json: bool) -> None:
    """Call handler NAME on the device with key=val arguments (JSON values where they parse)."""
    kwargs = parse_kwargs(args)
    with _client(transport, host, port, timeout) as rio:
        result = rio.call(name, **kwargs)
    if as_json:
        emit_json({"result": result})
    else:
        click.echo(json.dumps(result))
