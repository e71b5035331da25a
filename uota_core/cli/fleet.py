"""`uota list`, and the `--all` of `uota fast` / `uota full`: find boards, push to all of them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from uota_core.cli.common import F, emit_json, project_config, reports_errors

# the engine and rich load when a command runs, not for `uota --help` (tests/test_cli_startup.py)
if TYPE_CHECKING:
    from uota_core.fleet.discover import Board
    from uota_core.fleet.push import BoardPush

DEFAULT_TIMEOUT = 3.0


def discovery_options(fn: F, only: str = "") -> F:
    fn = click.option("--match", "match", metavar="GLOB",
                      help=f"Only boards whose name, id, address or serial port matches this pattern, "
                           f"e.g. 'kitchen-*'{only}.")(fn)
    fn = click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
                      help=f"Seconds to listen for mDNS answers and wait for each board's hello{only}.")(fn)
    fn = click.option("--subnet", metavar="CIDR",
                      help=f"Subnet whose OTA port (2018) to probe, at most a /16 (default: this host's /24){only}.")(fn)
    return fn


def find_boards(transport: str, subnet: str | None, timeout: float, match: str | None) -> list[Board]:
    """The boards discovery finds, filtered by --match; an error if there are none."""
    from fnmatch import fnmatchcase

    from uota_core.fleet.discover import DiscoveryError, discover, parse_subnet

    problems: list[str] = []
    boards = discover(transport, subnet, timeout, problems)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if match:
        boards = [b for b in boards if any(fnmatchcase(v, match) for v in (b.name, b.id, *b.addresses, b.port) if v)]
    if not boards:
        which = f" matching {match!r}" if match else ""
        if transport == "serial":
            raise DiscoveryError(f"no boards{which} found on USB serial ports (ESP32 USB ids) or running as virtual "
                                 "boards: plug the board in and check the cable, or look over WiFi with "
                                 "--transport wifi_tcp")
        ways = f"mDNS{',' if transport == 'all' else ' and'} a scan of {parse_subnet(subnet)}" + (
            " and USB serial ports" if transport == "all" else "")
        raise DiscoveryError(f"no boards{which} found by {ways} within {timeout:g}s: check that they are on and "
                             "running the uota stack (`uota bootstrap`), or give --subnet / a longer --timeout")
    return boards


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


@click.command("list")
@click.option("--transport", type=click.Choice(["wifi_tcp", "serial", "all"]), default="all", show_default=True,
              help="How to look: wifi_tcp (mDNS + subnet probe), serial (USB ports, running virtual boards), or all.")
@discovery_options
@click.option("--health", is_flag=True,
              help="Also ask each board found over WiFi how its app fares (RemoteIO `uota_health`, "
                   "authenticated with this project's password).")
@click.option("--json", "as_json", is_flag=True, help="Print the boards as one JSON list on stdout.")
@reports_errors
def list_boards(transport: str, subnet: str | None, timeout: float, match: str | None, health: bool,
                as_json: bool) -> None:
    """Find boards: by mDNS (_uota._tcp), by asking every address of a subnet for the OTA
    `hello` (never authenticating), and by USB serial port (ESP32 USB ids). One row per board,
    merged by device id.

    Exit status 1 (and `[]` with --json) when no board is found.
    """
    from uota_core.fleet.discover import DiscoveryError

    try:
        boards = find_boards(transport, subnet, timeout, match)
    except DiscoveryError:
        if as_json:
            emit_json([])
        raise
    if health:
        from uota_core.fleet.health import add_health

        add_health(project_config(flags_suffice=True), boards, timeout)
    if as_json:
        emit_json([b.as_json() for b in boards])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(boards)} board{'s' if len(boards) != 1 else ''}")
    columns = ["name", "id", "address", "serial port", "version", "release", "auth", "signed", "found by"]
    for column in columns + (["health"] if health else []):
        table.add_column(column)
    for b in boards:
        name = b.name + (" (virtual)" if b.virtual else "")
        row = [name, b.id or "?", ", ".join(b.addresses) or "-", b.port or "-",
               "?" if b.version is None else (b.version or '""'), "?" if b.release is None else str(b.release),
               _yes_no(b.auth), _yes_no(b.signed), ", ".join(b.found_by)]
        table.add_row(*row, *([b.health or "?"] if health else []))
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def all_options(fn: F) -> F:
    """--all and the options that only it takes."""
    fn = discovery_options(fn, " (with --all)")
    fn = click.option("--jobs", type=click.IntRange(min=1), default=8, show_default=True,
                      help="Boards pushed at once (with --all).")(fn)
    fn = click.option("--all", "all_boards", is_flag=True,
                      help="Push to every board `uota list` finds (with --transport: found that way), several at "
                           "once; they share this project's password and signing key.")(fn)
    return fn


def push_fleet(mode: str, transport: str | None, subnet: str | None, timeout: float, match: str | None, jobs: int,
               version: str | None, wipe: bool, compress: bool | None, wait: bool, as_json: bool) -> None:
    """`uota fast/full --all`: one row per board; exit 0 only if every board took the push
    (and, with --wait, came up healthy), else the first failing board's exit status."""
    from uota_core.config import check_version
    from uota_core.fleet.push import push_all, target_of

    cfg = project_config()
    if version is not None:
        check_version(version)
    boards = find_boards(transport or "all", subnet, timeout, match)
    targets = [t for t in (target_of(b, transport) for b in boards) if t is not None]
    click.echo(f"pushing to {len(targets)} board{'s' if len(targets) != 1 else ''}, {min(jobs, len(targets))} at once",
               err=True)
    done = push_all(cfg, targets, mode, jobs=jobs, version=version, wipe=wipe, compress=compress, wait=wait,
                    on_done=lambda d: click.echo(_row(d)))
    failed = [d for d in done if d.exit_code]
    click.echo(f"{len(done) - len(failed)} of {len(done)} boards ok" + (
        f"; failed: {', '.join(d.target.board.label for d in failed)}" if failed else ""))
    if as_json:
        for d in done:
            emit_json(d.as_json())
    if failed:
        sys.exit(failed[0].exit_code)


def _row(d: BoardPush) -> str:
    """One board's line, as it finishes."""
    where = f"{d.target.board.label} ({d.target.where})" if d.target.board.label != d.target.where else d.target.where
    if d.error:
        return f"  FAILED {where}: {d.error}"
    result = d.result
    assert result is not None
    if not result.committed:
        return f"  ok     {where}: up to date ({d.seconds:.1f}s)"
    app = f", app {d.app}" if d.app else ""
    status = "ok    " if not d.exit_code else "FAILED"
    return f"  {status} {where}: sent {len(result.sent)} files, {result.bytes} bytes in {d.seconds:.1f}s{app}"
