"""`uota sim`: run a virtual board and reach into its flash."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from uota_core.errors import UotaError
from uota_core.sim.defaults import DEFAULT_BAUD, DEFAULT_HEAP

# the VM supervisor, LittleFS and the pty load when a sim command runs: every other
# command (and `uota --help`) starts without them (tests/test_cli_startup.py)
if TYPE_CHECKING:
    from uota_core.sim.flash import FlashImage

STATE_HELP = "Board state directory (flash image, identity, serial symlink). Created if missing."
# ls/cat/put/rm reach into a board that exists: they never create one
EXISTING_STATE_HELP = "State directory of a board created by `uota sim run --state DIR`."


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group()
def sim() -> None:
    """Virtual boards: the real device code in a MicroPython VM, with flash, serial and network."""


@sim.command()
@click.option("--state", "state", required=True, type=click.Path(file_okay=False, path_type=Path), help=STATE_HELP)
@click.option("--name", help="Board name; its hostname is <name>.local. Default: the state dir's name.")
@click.option("--baud", default=DEFAULT_BAUD, show_default=True, type=click.IntRange(min=0),
              help="Serial line rate both ways (10 bits per byte); 0 for unthrottled.")
@click.option("--heap", default=DEFAULT_HEAP, show_default=True, help="MicroPython heap, e.g. 128K (ESP32 without PSRAM) or 2M.")
@click.option("--flash-size", type=click.IntRange(min=65536), default=None,
              help="Flash size in bytes for a new board (default 2 MB).")
@click.option("--addr", help="Loopback address to use (default: a free 127.0.0.N).")
@click.option("--erase", is_flag=True, help="Erase and reformat the flash before booting.")
@click.option("--no-mdns", is_flag=True, help="Don't announce <name>.local over mDNS.")
def run(state: Path, name: str | None, baud: int, heap: str, flash_size: int | None, addr: str | None,
        erase: bool, no_mdns: bool) -> None:
    """Run one virtual board in the foreground until Ctrl-C or SIGTERM.

    Prints one ready line once boot.py has started:
    serial=<port> host=<addr> hostname=<name>.local state=<dir>
    """
    from uota_core.sim import VirtualBoard

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        board = VirtualBoard(state, name=name, baud=baud or None, heap=heap, flash_size=flash_size,
                             addr=addr, erase=erase, mdns=not no_mdns)
        board.start()
    except UotaError as exc:
        _fail(exc)
    try:
        click.echo(f"serial={board.serial_port} host={board.host} hostname={board.hostname} state={board.state_dir}")
        sys.stdout.flush()
        stop.wait()
    finally:
        board.stop()


def _reports_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """One clear `error:` line and exit status 1 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            fn(*args, **kwargs)
        except (UotaError, FileNotFoundError) as exc:
            _fail(exc)

    return wrapper


def _writable_flash(state: Path) -> FlashImage:
    from uota_core.sim.state import flash_of, is_running

    if is_running(state):
        raise UotaError(f"the board in {state} is running: stop it before writing its flash")
    return flash_of(state)


STATE_OPTION = click.option("--state", required=True, type=click.Path(file_okay=False, path_type=Path),
                            help=EXISTING_STATE_HELP)


@sim.command("ls")
@STATE_OPTION
@click.argument("path", default="/")
@_reports_errors
def ls_cmd(state: Path, path: str) -> None:
    """List a directory on the board's flash (board stopped or running)."""
    from uota_core.sim.state import flash_of

    for name in flash_of(state).listdir(path):
        click.echo(name)


@sim.command("cat")
@STATE_OPTION
@click.argument("path")
@_reports_errors
def cat_cmd(state: Path, path: str) -> None:
    """Print a file from the board's flash."""
    from uota_core.sim.state import flash_of

    sys.stdout.buffer.write(flash_of(state).read_file(path))


@sim.command("put")
@STATE_OPTION
@click.argument("local", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("path")
@_reports_errors
def put_cmd(state: Path, local: Path, path: str) -> None:
    """Copy a local file onto a stopped board's flash."""
    _writable_flash(state).write_file(path, local.read_bytes())


@sim.command("rm")
@STATE_OPTION
@click.argument("path")
@_reports_errors
def rm_cmd(state: Path, path: str) -> None:
    """Delete a file from a stopped board's flash."""
    _writable_flash(state).remove(path)
