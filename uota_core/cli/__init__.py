"""The `uota` command line: a thin layer over the engine calls the pytest plugin uses.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from uota_core import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uota")
def cli() -> None:
    """uota: push code to MicroPython ESP32 boards, talk to them, and test them.

    Without hardware, `uota sim run` starts a virtual board that behaves like one.
    """


def _register() -> None:
    from uota_core.cli import fleet, ota, project, remoteio, sim, terminal

    cli.add_command(sim.sim)
    cli.add_command(terminal.terminal)
    cli.add_command(fleet.list_boards)
    for command in (project.init, project.keygen, project.bootstrap, ota.info, ota.fast, ota.full, ota.version, ota.passwd,
                    remoteio.remoteio):
        cli.add_command(command)


_register()


def main() -> None:
    cli()
