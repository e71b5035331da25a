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


TRACE = ('Traceback (most recent call last):\r\n  File "main.py", line 3, in <module>\r\n'
         '  File "app/app.py", line 3, in <module>\r\nRuntimeError: broken build\r\n')


@pytest.mark.timeout(10)
def test_the_console_verdict_waits_for_the_whole_traceback() -> None:
    boot = "uota: listening on 127.0.0.2:2018\r\nuota: the app crashed:\r\n"
    cut = TRACE.index("RuntimeError")
    assert judge(console_report(boot + TRACE[:cut], 7), 7, "2.0.0") is None  # still arriving
    verdict = judge(console_report(boot + TRACE + "uota: unclean boot 1; resetting\r\n", 7), 7, "2.0.0")
    assert verdict is not None and verdict.app == "crashed"
    assert verdict.traceback == TRACE.replace("\r\n", "\n")
    healthy = judge(console_report("app started\r\nuota: boot marked healthy\r\n", 7), 7, "2.0.0")
    assert healthy is not None and healthy.app == "healthy"
    rolled = judge(console_report(boot + TRACE + "uota: 3 unclean boots, restoring the previous app set\r\n"
                                  "uota: rolling back to version 1.0.0\r\n", 7), 7, "2.0.0")
    assert rolled is not None and rolled.app == "rolled_back" and rolled.version == "1.0.0"
    assert "RuntimeError: broken build" in rolled.traceback


@pytest.mark.timeout(10)
def test_a_report_about_another_release_is_no_verdict() -> None:
    old_boot = {"version": "1.0.0", "release": 6, "app": "running", "healthy": True, "trace": "", "last": None}
    assert judge(old_boot, 7, "2.0.0") is None  # the old boot answering before its reset
    seen_earlier = {"version": "2.0.0", "release": 7, "app": "running", "healthy": False, "trace": "",
                    "last": {"release": 7, "version": "2.0.0", "trace": "RuntimeError: x\n"}}
    verdict = judge(seen_earlier, 7, "2.0.0")  # a crash in a boot the host didn't see
    assert verdict is not None and verdict.app == "crashed" and verdict.traceback == "RuntimeError: x\n"
    older_crash = dict(seen_earlier, healthy=True, last={"release": 5, "trace": "RuntimeError: x\n"})
    verdict = judge(older_crash, 7, "2.0.0")
    assert verdict is not None and verdict.app == "healthy"
