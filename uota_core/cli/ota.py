"""`uota fast`, `uota full`, `uota version`, `uota info`, `uota passwd`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from uota_core.cli.common import (
    emit_json,
    json_option,
    names_board,
    project_config,
    reports_errors,
    status_line,
    transfer_progress,
    transport_options,
)
from uota_core.cli.fleet import all_options, push_fleet

# the engine loads when a command runs, not for `uota --help` (tests/test_cli_startup.py)
if TYPE_CHECKING:
    from uota_core.config import Config
    from uota_core.health import AppHealth
    from uota_core.push import PushResult
    from uota_core.session import Session


compress_option = click.option(
    "--compress/--no-compress", default=None,
    help="Send files that shrink by 10 % or more as deflate (source does ~4x), which the board "
         "inflates (default: over serial, where the line is the bottleneck; not over WiFi).")


verbose_option = click.option("-v", "--verbose", is_flag=True,
                              help="Also list the files left out by the secrets/backup lists or .uotaignore.")

wait_option = click.option(
    "--wait/--no-wait", default=True,
    help="After the commit, wait for the board to come back and report whether the app is healthy "
         "(exit 3: it crashed, 4: rolled back, 5: no verdict in time). --no-wait returns at the commit.")


def _push(mode: str, host: str | None, port: int | str | None, transport: str | None, version: str | None,
          wipe: bool, compress: bool | None, as_json: bool, verbose: bool = False, wait: bool = True) -> None:
    from uota_core.config import check_version
    from uota_core.push import PlanAhead, push

    cfg = project_config()
    if version is not None:
        check_version(version)  # before connecting: the device would refuse it
    planned = PlanAhead(cfg, mode)  # scan and compile while the session opens
    from uota_core.connect import open_session  # after: its imports overlap the compile

    with open_session(cfg, transport, host, port) as session, transfer_progress() as (on_plan, on_chunk):
        result = push(session, cfg, mode, version=version, wipe=wipe, on_plan=on_plan, on_chunk=on_chunk,
                      compress=compress, planned=planned)
    if wait and result.committed and result.release:
        _report(result, False, verbose)  # what was sent, before the wait
        health = _wait_for_app(cfg, transport, host, port, result)
        click.echo(health.describe(), err=health.exit_code != 0)
        if as_json:
            emit_json({**_push_json(result), **health.as_json()})
        sys.exit(health.exit_code)
    _report(result, as_json, verbose)


def _wait_for_app(cfg: Config, transport: str | None, host: str | None, port: int | str | None,
                  result: PushResult) -> AppHealth:
    """Ask the board how the app fares (connect.app_query)."""
    from uota_core.connect import app_query
    from uota_core.health import wait_for_app

    query = app_query(cfg, transport, host, port, result.release)
    healthy_after = float(cfg["healthyAfter"])
    try:
        with status_line(f"waiting for the app (healthyAfter {healthy_after:g}s)") as on_status:
            return wait_for_app(query, result.release, result.version, healthy_after, on_status)
    finally:
        query.close()


def _push_json(result: PushResult) -> dict[str, object]:
    data = {k: v for k, v in result.as_json().items() if k in ("sent", "skipped", "deleted", "bytes", "wire_bytes", "seconds")}
    # which mpyFiles went as bytecode, and why any didn't (e.g. a board mpy-cross can't write for)
    return {**data, "as_mpy": result.as_mpy, "warnings": result.warnings}


def _report(result: PushResult, as_json: bool, verbose: bool = False) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if verbose:
        for path, rule in result.excluded.items():
            click.echo(f"  excluded {path}  by {rule}")
    for path in result.sent:
        click.echo(f"  sent     {path}")
    for path in result.deleted:
        click.echo(f"  deleted  {path}")
    click.echo(result.summary())
    if result.excluded and not verbose:
        click.echo(f"({len(result.excluded)} left out by the secrets/backup lists or .uotaignore: -v lists them)")
    if as_json:
        emit_json(_push_json(result))



@click.command()
@transport_options
@click.option("--version", "version", help="Version string to record (default: ota.json version).")
@compress_option
@wait_option
@json_option
@verbose_option
@all_options
@reports_errors
def fast(host: str | None, port: int | None, transport: str | None, version: str | None, compress: bool | None,
         wait: bool, as_json: bool, verbose: bool, all_boards: bool, jobs: int, subnet: str | None, timeout: float,
         match: str | None) -> None:
    """Push the fastOtaFiles (app/ and config/ by default) that changed, then wait for the app.

    With --all: to every board `uota list` finds, --jobs at once, one line per board; exit
    status 0 only if all of them took it (and came up healthy)."""
    if all_boards:
        _only_all(host, port)
        push_fleet("fast", transport, subnet, timeout, match, jobs, version, False, compress, wait, as_json)
        return
    _push("fast", host, port, transport, version, False, compress, as_json, verbose, wait)


@click.command()
@transport_options
@click.option("--version", "version", help="Version string to record (default: ota.json version).")
@click.option("--wipe", is_flag=True, help="Resend everything and delete every other file (except lib/uota, data/, secrets).")
@compress_option
@wait_option
@json_option
@verbose_option
@all_options
@reports_errors
def full(host: str | None, port: int | None, transport: str | None, version: str | None, wipe: bool,
         compress: bool | None, wait: bool, as_json: bool, verbose: bool, all_boards: bool, jobs: int,
         subnet: str | None, timeout: float, match: str | None) -> None:
    """Push every managed file (fastOtaFiles + fullOtaFiles) that changed; delete dropped ones;
    then wait for the app. --all: to every board found, as for `uota fast --all`."""
    if all_boards:
        _only_all(host, port)
        push_fleet("full", transport, subnet, timeout, match, jobs, version, wipe, compress, wait, as_json)
        return
    _push("full", host, port, transport, version, wipe, compress, as_json, verbose, wait)


def _only_all(host: str | None, port: int | str | None) -> None:
    from uota_core.errors import UotaError

    if host is not None or port is not None:
        raise UotaError("--all pushes to every board found: drop --host/--port (or drop --all to push to one board; "
                        "--match GLOB picks boards by name, id or address)")


@click.command()
@transport_options
@json_option
@reports_errors
def version(host: str | None, port: int | None, transport: str | None, as_json: bool) -> None:
    """Read the version installed on the device (outside a project: give --host or --port)."""
    from uota_core.connect import open_session

    cfg = project_config(names_board(host, port, transport))
    with open_session(cfg, transport, host, port) as session:
        installed = session.version()
    click.echo(json.dumps({"version": installed}) if as_json else installed)


@click.command()
@transport_options
@json_option
@reports_errors
def info(host: str | None, port: int | None, transport: str | None, as_json: bool) -> None:
    """Show the device's id, version, release, free heap and security settings (outside a
    project: give --host or --port)."""
    from uota_core.connect import open_session

    cfg = project_config(names_board(host, port, transport))
    with open_session(cfg, transport, host, port) as session:
        dev = session.info
        installed = session.installed() if dev is not None else None
    if dev is None:
        data = {"proto": 1}
    else:
        data = {"id": dev.id, "version": dev.version, "release": dev.release, "free_mem": dev.free,
                "micropython": dev.firmware, "mpy": dev.mpy, "deflate": dev.deflate,
                "auth": dev.auth, "signed": dev.signed, "files": len(installed.files) if installed else 0,
                "proto": dev.proto}
    width = max(map(len, data))
    for key, value in data.items():
        click.echo(f"{key:>{width}}: {value}")
    if as_json:
        emit_json(data)


@click.command()
@transport_options
@click.option("--local", is_flag=True, help="Only update config/.ota.secrets.json (provision with uota bootstrap).")
@click.option("--new-password", help="The new password (prompted for, twice, if omitted).")
@reports_errors
def passwd(host: str | None, port: int | None, transport: str | None, local: bool, new_password: str | None) -> None:
    """Change the OTA password on the device, then in config/.ota.secrets.json.

    The device gets only a masked hash, authenticated with the current password. A board
    with no password yet gets its first one from `uota bootstrap` over USB.
    """
    from uota_core.config import check_secret, write_secrets
    from uota_core.connect import open_session

    cfg = project_config()
    if new_password is not None:
        check_secret("otaPassword", new_password, "password not changed")  # before the board has it
    if local:
        new_password = _new_password(new_password)
    else:
        if new_password is None:
            # asked before the prompt (typing a password twice to be told this wastes the user's
            # time), in a session of its own: the board ends one idle for 15 s, as a prompt can be
            with open_session(cfg, transport, host, port) as session:
                _check_has_password(session)
            new_password = _new_password(None)
        with open_session(cfg, transport, host, port) as session:
            _check_has_password(session)
            session.passwd(new_password)
    path = write_secrets(cfg.root, {"otaPassword": new_password})
    click.echo(f"password updated{' on the device and' if not local else ''} in {path.relative_to(cfg.root)}")


def _check_has_password(session: Session) -> None:
    from uota_core.errors import UotaError

    if session.info is None or not session.info.auth:
        raise UotaError(f"{session.link.name} has no OTA password: `uota passwd` can only change one; set "
                        "otaPassword in config/.ota.secrets.json and give the board its first password over "
                        "USB with `uota bootstrap`")


def _new_password(given: str | None) -> str:
    from uota_core.config import check_secret

    if given is None:
        given = click.prompt("New OTA password", hide_input=True, confirmation_prompt=True)
        check_secret("otaPassword", given, "password not changed")
    return given
