"""Where the user's entry point lives: app/main.py (the board's main.py is uota's launcher).
`uota init` writes that layout; `uota bootstrap` moves an older project's main.py there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from attack_helpers import first_push
from uota_core.cli import cli
from uota_core.config import load_config, write_secrets
from uota_core.connect import wait_reachable
from uota_core.manifest import scan_project
from uota_core.project import init_project, migrate_entry
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)

OLD_MAIN = "from app import app\napp.run()\n"


def old_layout(root: Path) -> Path:
    """A project as `uota init` wrote it before: the entry point in main.py, listed in fastOtaFiles."""
    init_project(root)
    (root / "app" / "main.py").unlink()
    (root / "main.py").write_text(OLD_MAIN)
    cfg_path = root / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(fastOtaFiles=["app/**", "main.py", "config/**"], healthyAfter=2)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    write_secrets(root, {"otaPassword": "", "signingKey": ""})
    return root


@pytest.mark.timeout(30)
def test_init_puts_the_entry_point_in_app_and_main_py_is_never_pushed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    init_project(root)
    assert (root / "app" / "main.py").is_file() and not (root / "main.py").exists()
    (root / "main.py").write_text("print('would replace the launcher')\n")
    for mode in ("fast", "full"):
        files = scan_project(load_config(root), mode).files
        assert "app/main.py" in files and "app/app.py" in files and "main.py" not in files


@pytest.mark.timeout(30)
def test_migrate_entry_moves_an_old_main_py_once(tmp_path: Path) -> None:
    root = old_layout(tmp_path / "proj")
    note = migrate_entry(root)
    assert note is not None and "moved main.py to app/main.py" in note
    assert (root / "app" / "main.py").read_text() == OLD_MAIN and not (root / "main.py").exists()
    assert migrate_entry(root) is None
    (root / "main.py").write_text("stale\n")  # both: nothing moves, the user is told what to do
    note = migrate_entry(root)
    assert note is not None and "delete main.py" in note
    assert (root / "app" / "main.py").read_text() == OLD_MAIN


def test_bootstrap_migrates_an_old_project_and_its_app_runs(tmp_path: Path, monkeypatch) -> None:
    root = old_layout(tmp_path / "proj")
    with VirtualBoard(tmp_path / "b", name="oldproj", baud=None, mdns=False) as board:
        cfg_path = root / "config" / "ota.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["hostname"] = board.host
        cfg_path.write_text(json.dumps(cfg, indent=2))
        monkeypatch.chdir(root)
        res = CliRunner().invoke(cli, ["bootstrap", "--port", board.serial_port], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert "moved main.py to app/main.py" in res.output
        board.expect("uota: no app yet", 30)  # bootstrap leaves a board that boots cleanly
        wait_reachable(board.host, 2018)
        first_push(root, board)
        board.expect(r"app started[\s\S]*boot marked healthy", 30)  # the pushed app's boot
        assert board.read_file("/main.py") == (Path(__file__).parents[1] / "device" / "main.py").read_bytes()


def test_an_entry_point_that_raises_is_rolled_back_and_ota_stays_up(ota_board: VirtualBoard, ota_project: Path) -> None:
    first_push(ota_project, ota_board)
    ota_board.expect(r"app started[\s\S]*boot marked healthy", 30)  # the pushed app's boot
    entry = ota_project / "app" / "main.py"
    good = entry.read_text()
    entry.write_text("raise ValueError('entry broke')\n")
    mark = ota_board.console_mark()
    first_push(ota_project, ota_board, app_up="ValueError: entry broke", version="bad")
    # the launcher, not the entry point, owns the board: the crash is reported, the boot
    # guard rolls the set back, and the good app runs again
    ota_board.expect("uota: boot guard: rolled_back", 60, since=mark)
    ota_board.expect("app started", 30, since=mark)
    wait_reachable(ota_board.host, 2018)
    assert ota_board.read_file("/app/main.py").decode() == good
    entry.write_text(good.replace("app.run()", "print('entry v2')\napp.run()"))
    first_push(ota_project, ota_board, app_up="entry v2", version="v2")
