"""Rough edges a new user met in the first hour: a board unplugged mid serial push, and a
misspelt key in ota.json."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from attack_helpers import make_project, random_bytes, secured_board, serial_tap, wait_until
from uota_core.cli import cli
from uota_core.sim import VirtualBoard

pytest_plugins = ["pytester"]


@pytest.mark.timeout(120)
def test_a_board_unplugged_mid_serial_push_is_one_line_naming_the_port(tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path / "proj")
    # 40 KB sent plain: over 3 s at 115200 baud, so the cable comes out mid-file
    (project / "app" / "blob.py").write_text("# " + random_bytes(20000, 7).hex() + "\n")
    with secured_board(tmp_path / "board", project, name="unplugged", app_up=None, baud=115200) as board:
        port = board.serial_port
        monkeypatch.chdir(project)
        failed: list[BaseException] = []

        def unplug() -> None:
            try:
                with serial_tap(board) as (to_board, _):
                    wait_until(lambda: len(to_board) > 12_000, 60, "the push to be under way")
                board.stop()  # the port disappears, as /dev/ttyUSB0 does when the cable comes out
            except BaseException as e:  # reported by the test thread
                failed.append(e)

        cable = threading.Thread(target=unplug, daemon=True)
        cable.start()
        result = CliRunner().invoke(cli, ["fast", "--port", port, "--no-compress"], catch_exceptions=False)
        cable.join(30)
        assert not failed, failed
        assert result.exit_code == 1, result.output
        assert result.stderr == (f"error: serial port {port} went away (SerialException): was the board unplugged? "
                                 "Plug it back in and run the command again (a push resumes from the files "
                                 "already staged)\n")
        assert "Traceback" not in result.output


@pytest.mark.timeout(120)
def test_a_misspelt_key_in_ota_json_warns_with_the_closest_known_key(ota_board: VirtualBoard, ota_project: Path,
                                                                     monkeypatch) -> None:
    cfg_path = ota_project / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["helthyAfter"] = 1  # meant healthyAfter: silently ignored until now
    cfg_path.write_text(json.dumps(cfg, indent=2))
    monkeypatch.chdir(ota_project)
    result = CliRunner().invoke(cli, ["fast", "--no-wait"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == ("warning: config/ota.json: unknown key 'helthyAfter' is ignored: "
                                             "did you mean 'healthyAfter'?")
    assert "pushed version 1.0.0" in result.stdout


@pytest.mark.timeout(60)
def test_the_plugin_header_shows_the_misspelt_key(pytester: pytest.Pytester) -> None:
    from plugin_helpers import make_project as plugin_project

    plugin_project(pytester, ["wifi_tcp"], hostnmae="board.local")
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["uota: warning: config/ota.json: unknown key 'hostnmae' is ignored: "
                                 "did you mean 'hostname'?"])
