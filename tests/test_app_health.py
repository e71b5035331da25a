"""After the commit, `uota fast`/`full` wait for the app and say how it fared (healthy,
crashed with its traceback, rolled back), with documented exit codes (README "Exit codes")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from uota_core.cli import cli
from uota_core.health import console_report, judge
from uota_core.sim import VirtualBoard

CRASH_AT_IMPORT = "import uota\n\nraise RuntimeError('broken build')\n"
RESET_AT_IMPORT = "import machine\nprint('resetting from the app')\nmachine.reset()\n"


def uota(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


NEVER_MARKS = "import time\n\ndef run():\n    print('quiet app up')\n    while True:\n        time.sleep(1)\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("app", [None, NEVER_MARKS], ids=["mark_healthy", "healthyAfter"])
def test_a_healthy_push_exits_0_once_the_app_is_healthy(ota_board: VirtualBoard, ota_project: Path,
                                                       monkeypatch, app: str | None) -> None:
    monkeypatch.chdir(ota_project)
    if app is not None:  # healthy only once healthyAfter (2 s here) has passed
        (ota_project / "app" / "app.py").write_text(app)
    result = uota("fast", "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result)
    assert out["app"] == "healthy" and out["traceback"] is None and "app/app.py" in out["sent"]
    assert "app healthy: version 1.0.0 is up" in result.stdout
    assert "boot marked healthy" in ota_board.console  # the board's own word for it


@pytest.mark.timeout(120)
def test_an_app_that_raises_at_import_exits_3_with_its_traceback(ota_board: VirtualBoard, ota_project: Path,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    (ota_project / "app" / "app.py").write_text(CRASH_AT_IMPORT)
    result = uota("fast", "--json", "--version", "2.0.0")
    assert result.exit_code == 3, result.output
    out = last_json(result)
    assert out["app"] == "crashed"
    assert "RuntimeError: broken build" in out["traceback"] and 'app/app.py", line 3' in out["traceback"]
    assert "the app crashed: version 2.0.0" in result.stderr and "RuntimeError: broken build" in result.stderr


@pytest.mark.timeout(180)
def test_an_app_that_resets_the_board_before_it_is_healthy_exits_4_rolled_back(
        ota_board: VirtualBoard, ota_project: Path, monkeypatch) -> None:
    """No traceback to catch (a watchdog or a brownout looks the same): the boot guard counts
    3 unclean boots and restores the previous set, and the push says which version."""
    monkeypatch.chdir(ota_project)
    assert uota("fast").exit_code == 0
    (ota_project / "app" / "app.py").write_text(RESET_AT_IMPORT)
    result = uota("fast", "--json", "--version", "2.0.0")
    assert result.exit_code == 4, result.output
    out = last_json(result)
    assert out["app"] == "rolled_back" and out["rolled_back_to"] == "1.0.0"
    assert "rolled back: version 2.0.0 did not come up, the board restored version 1.0.0" in result.stderr
    assert ota_board.console.count("resetting from the app") == 3


@pytest.mark.timeout(120)
def test_over_serial_the_console_tells_crashed_and_healthy(ota_board: VirtualBoard, ota_project: Path,
                                                           monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    good = (ota_project / "app" / "app.py").read_text()
    (ota_project / "app" / "app.py").write_text(CRASH_AT_IMPORT)
    result = uota("fast", "--port", ota_board.serial_port, "--json", "--version", "2.0.0")
    assert result.exit_code == 3, result.output
    assert "RuntimeError: broken build" in last_json(result)["traceback"]
    (ota_project / "app" / "app.py").write_text(good)
    result = uota("fast", "--port", ota_board.serial_port, "--json", "--version", "2.0.1")
    assert result.exit_code == 0, result.output
    assert last_json(result)["app"] == "healthy"
