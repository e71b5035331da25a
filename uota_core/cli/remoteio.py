"""`uota remoteio listen` and `uota remoteio call NAME key=val ...`."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from uota_core.cli.common import PortParam, emit_json, json_option, project_config, reports_errors
from uota_core.errors import UotaError
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


def _client(host: str | None, port: int | str | None, timeout: float) -> RemoteIOClient:
    cfg = project_config()
    if isinstance(port, str) or (port is None and cfg["transports"][0] == "serial"):
        # --port /dev/ttyUSB0: calls and prints multiplexed on the board's UART
        from uota_core.serial_transport import open_serial_remoteio
        from uota_core.serialport import detect

        return open_serial_remoteio(port or cfg.get("serialPort") or detect(), cfg.get("serialBaud", 115200),
                                    timeout)
    return RemoteIOClient(host or cfg["hostname"], port or cfg["remoteioPort"], timeout=timeout,
                          password=cfg.password)


@click.group()
def remoteio() -> None:
    """The device's print() stream and its RPC handlers (TCP 2019)."""


@remoteio.command()
@click.option("--host", help="Device IP or hostname (default: ota.json hostname).")
@click.option("--port", type=PortParam(), help="RemoteIO port (default: ota.json remoteioPort), or a serial "
              "port such as /dev/ttyUSB0 for RemoteIO over USB.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@reports_errors
def listen(host: str | None, port: int | str | None, timeout: float | None) -> None:
    """Stream everything the device print()s, with timestamps; follows the device across resets."""
    deadline = None if timeout is None else time.monotonic() + timeout
    first = True
    while deadline is None or time.monotonic() < deadline:
        if not first:
            click.echo(f"[{time.strftime('%H:%M:%S')}] --- the device closed the connection; reconnecting ---")
        first = False
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        with _client(host, port, 10.0) as rio:
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
@click.option("--host", help="Device IP or hostname (default: ota.json hostname).")
@click.option("--port", type=PortParam(), help="RemoteIO port (default: ota.json remoteioPort), or a serial "
              "port such as /dev/ttyUSB0 for RemoteIO over USB.")
@click.option("--timeout", type=float, default=10.0, show_default=True)
@json_option
@reports_errors
def call(name: str, args: tuple[str, ...], host: str | None, port: int | str | None, timeout: float,
         as_json: bool) -> None:
    """Call handler NAME on the device with key=val arguments (JSON values where they parse)."""
    kwargs = parse_kwargs(args)
    with _client(host, port, timeout) as rio:
        result = rio.call(name, **kwargs)
    if as_json:
        emit_json({"result": result})
    else:
        click.echo(json.dumps(result))
