"""`uota init` and `uota bootstrap`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from uota_core.cli.common import project_config, reports_errors

# the engine loads when a command runs, not for `uota --help` (tests/test_cli_startup.py)


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Project directory (created if missing).")
@click.option("--force", is_flag=True, help="Overwrite existing project files (never the secrets).")
@reports_errors
def init(directory: Path, force: bool) -> None:
    """Create config/ota.json, config/.ota.secrets.json, app/app.py and app/main.py."""
    from uota_core.config import SECRETS_FILE
    from uota_core.project import init_project

    for rel in init_project(directory, force):
        click.echo(f"  created  {rel}")
    click.echo(f"A random otaPassword and signingKey are in {SECRETS_FILE} (gitignored, never pushed).")
    click.echo("Next: set ssid, password and hostname in config/ota.json, then `uota bootstrap`.")


@click.command()
def keygen() -> None:
    """Print a fresh random otaPassword and 32-byte signingKey (as JSON)."""
    from uota_core.config import SECRETS_FILE
    from uota_core.project import fresh_secrets

    click.echo(json.dumps(fresh_secrets(), indent=2))
    click.echo(f"Put them in {SECRETS_FILE}, then `uota bootstrap` provisions them on the board "
               "(`uota passwd` changes only the password, over the air).", err=True)


@click.command()
@click.option("--port", "serial_port", envvar="UOTA_PORT",
              help="Serial port of the board, e.g. /dev/ttyUSB0 (default: $UOTA_PORT, else ota.json "
                   "serialPort, else the one ESP32 USB-UART attached).")
@click.option("--baud", type=click.IntRange(min=1200), help="Serial baud rate (default: ota.json serialBaud, else 115200).")
@click.option("--mpy/--source", default=None,
              help="Install the OTA stack as .mpy bytecode or as source. Default: bytecode when the "
                   "board's MicroPython loads the .mpy version mpy-cross writes (it needs far less heap "
                   "to import), else source.")
@reports_errors
def bootstrap(serial_port: str | None, baud: int | None, mpy: bool | None) -> None:
    """Install the OTA stack over USB, provision the password hash and signing key, reset."""
    from uota_core.bootstrap import bootstrap as run_bootstrap
    from uota_core.project import migrate_entry
    from uota_core.connect import serial_port as find_serial_port

    cfg = project_config()
    serial_port = find_serial_port(cfg, serial_port)
    baud = baud or int(cfg.get("serialBaud", 115200))
    note = migrate_entry(cfg.root)
    if note:
        click.echo(f"note: {note}")
    total = 0

    def on_file(rel: str, size: int) -> None:
        nonlocal total
        total += size
        click.echo(f"  uploaded {rel} ({size} bytes)")

    files = run_bootstrap(serial_port, cfg, baud=baud, mpy=mpy, on_file=on_file)
    click.echo(f"bootstrapped {serial_port}: {len(files)} files, {total} bytes; the board is resetting")
