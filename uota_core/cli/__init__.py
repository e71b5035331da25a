"""The `uota` command line: a thin layer over the engine calls the pytest plugin uses.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from uota_core import __version__


# command name -> (module under uota_core.cli, attribute): a command's module is imported
# only when that command runs (or `uota --help` lists them all), so `uota fast` doesn't
# load the terminal's or the virtual board's command code (tests/test_cli_startup.py)
_COMMANDS = {
    "sim": ("sim", "sim"), "terminal": ("terminal", "terminal"), "init": ("project", "init"),
    "keygen": ("project", "keygen"), "bootstrap": ("project", "bootstrap"), "info": ("ota", "info"),
    "fast": ("ota", "fast"), "full": ("ota", "full"), "version": ("ota", "version"),
    "passwd": ("ota", "passwd"), "remoteio": ("remoteio", "remoteio"), "list": ("fleet", "list_boards"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            import importlib

            module, attr = _COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"uota_core.cli.{module}"), attr), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uota")
def cli() -> None:
    """uota: push code to MicroPython ESP32 boards, talk to them, and test them.

    Without hardware, `uota sim run` starts a virtual board that behaves like one.
    """


def main() -> None:
    cli()
