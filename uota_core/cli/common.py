"""What the uota commands share: finding the project, one-line errors, --json, progress."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from uota_core.errors import UotaError

# rich, the config loader and the engine load where a command uses them: `uota --help`
# and `uota --version` stay fast (tests/test_cli_startup.py)
if TYPE_CHECKING:
    from rich.console import Console

    from uota_core.config import Config

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(fn: F) -> F:
    """A UotaError becomes one `error: ...` line on stderr and exit status 1 (or the
    error's own `exit_code`: 2 for a file that doesn't compile)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UotaError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(getattr(e, "exit_code", 1))

    return wrapper  # type: ignore[return-value]


def project_config(flags_suffice: bool = False) -> Config:
    """The project's config; with `flags_suffice` (the command line names the board), the
    defaults when run outside any project."""
    from uota_core.config import ConfigError, default_config, find_project, load_config

    try:
        root = find_project()
    except ConfigError:
        if not flags_suffice:
            raise
        return default_config(".")
    cfg = load_config(root)
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)
    return cfg


def names_board(host: str | None, port: int | str | None, transport: str | None) -> bool:
    """Whether the flags alone reach a board: a host, a serial port path, or serial with
    auto-detection."""
    return host is not None or isinstance(port, str) or transport == "serial"


class PortParam(click.ParamType):
    """--port: a TCP port number, or a serial device path (which implies --transport serial)."""

    name = "port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or str(value).isdigit():
            number = int(value)
            if not 1 <= number <= 65535:
                self.fail(f"TCP port {number} is not in 1..65535", param, ctx)
            return number
        return str(value)


def transport_options(fn: F) -> F:
    # only the transports the commands implement: ble and http_pull are config-only names
    fn = click.option("--transport", type=click.Choice(["wifi_tcp", "serial"]),
                      help="Transport (default: serial for a --port path, else the first in ota.json transports).")(fn)
    fn = click.option("--port", type=PortParam(),
                      help="TCP port (default: ota.json port), or with --transport serial the serial port, "
                           "e.g. /dev/ttyUSB0 (default: ota.json serialPort, else auto-detected).")(fn)
    fn = click.option("--host", help="Device IP or hostname (default: ota.json hostname).")(fn)
    return fn


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object as the last line of stdout.")(fn)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj))


def _live_stderr() -> Console | None:
    """A rich console on stderr if it gets live output, else None; without importing rich
    (about 60 ms) where it can't: not a terminal and nothing forcing one (rich's
    FORCE_COLOR / TTY_COMPATIBLE)."""
    if not sys.stderr.isatty() and "FORCE_COLOR" not in os.environ and "TTY_COMPATIBLE" not in os.environ:
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else None


@contextmanager
def status_line(first: str) -> Iterator[Callable[[str], None]]:
    """An on_status callback: a live status line on a terminal's stderr; elsewhere (scripts,
    CI) `first` once, so logs stay one line per wait."""
    console = _live_stderr()
    if console is None:
        click.echo(f"{first}...", err=True)
        yield lambda text: None
        return
    with console.status(first) as status:
        yield lambda text: status.update(text)


@contextmanager
def transfer_progress(enabled: bool = True) -> Iterator[tuple[Callable[[list[str], int], None],
                                                              Callable[[str, int], None]]]:
    """(on_plan, on_chunk) callbacks drawing a rich progress bar on stderr."""
    console = _live_stderr() if enabled else None
    if console is None:
        # only on a terminal: piped stderr (scripts, CI) stays free of bar remnants
        yield (lambda paths, total: None), (lambda path, n: None)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        console=console, transient=True)
    state: dict[str, Any] = {}

    def on_plan(paths: list[str], total: int) -> None:
        state["task"] = progress.add_task("pushing", total=total)

    def on_chunk(path: str, n: int) -> None:
        progress.update(state["task"], advance=n, description=path)

    with progress:
        yield on_plan, on_chunk
