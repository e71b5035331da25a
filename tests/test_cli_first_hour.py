"""The `uota` commands' first-hour rough edges (issue 13): the secrets flow, what a fresh
project pushes and runs, commands run outside a project, what --help offers, --json."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from attack_helpers import PASSWORD, SIGNING_KEY, make_project, secured_board
from uota_core.cli import cli
from uota_core.config import load_config, write_secrets
from uota_core.connect import wait_reachable
from uota_core.manifest import scan_project
from uota_core.sim import VirtualBoard

README = Path(__file__).resolve().parent.parent / "README.md"
OTHER_PW = "Pw-two-R4vN82bWsy"


def uota(*args: str, ok: bool = True, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def one_error(result) -> str:
    """The single `error: ...` line a failing command prints, without its prefix."""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr[7:]


# -- no board ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_help_offers_only_what_works(tmp_path: Path, monkeypatch) -> None:
    for command in (["fast"], ["full"], ["version"], ["info"], ["passwd"]):
        text = uota(*command, "--help").stdout
        assert "[wifi_tcp|serial]" in text and "ble" not in text and "http_pull" not in text, command
    bad = uota("fast", "--transport", "ble", ok=False)
    assert bad.exit_code == 2 and "'ble' is not one of 'wifi_tcp', 'serial'" in bad.stderr
    assert "[required]" not in uota("bootstrap", "--help").stdout  # --port falls back to ota.json serialPort
    for command in ("ls", "cat", "put", "rm"):
        assert "Created if missing" not in uota("sim", command, "--help").stdout
    monkeypatch.chdir(tmp_path)
    missing = one_error(uota("sim", "ls", "--state", "nowhere", ok=False))
    assert missing.startswith("nowhere is not a virtual board state directory") and \
        missing.endswith("create one with `uota sim run --state nowhere`\n")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.timeout(60)
def test_the_readme_documents_every_option_of_the_push_and_shell_commands() -> None:
    readme = README.read_text()
    for command in (["passwd"], ["remoteio", "call"], ["remoteio", "listen"], ["terminal"], ["bootstrap"]):
        options = re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", uota(*command, "--help").stdout, re.M)
        assert options, command
        for option in set(options) - {"--help"}:
            assert re.search(rf"(?<![\w-]){option}(?![\w-])", readme), (command, option)


@pytest.mark.timeout(60)
def test_init_writes_a_gitignore_that_no_push_carries(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    uota("init", "--dir", str(project))
    (project / "app" / ".gitignore").write_text("*.log\n")
    assert (project / ".gitignore").is_file()
    files = set(scan_project(load_config(project), "full").files)
    assert "app/app.py" in files and "config/ota.json" in files
    assert not {".gitignore", "app/.gitignore"} & files


@pytest.mark.timeout(60)
def test_commands_that_need_a_project_still_say_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["fast"], ["version"], ["bootstrap"], ["passwd", "--local"]):
        assert "run `uota init` first" in one_error(uota(*command, ok=False)), command


# -- against a virtual board ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_the_readme_remoteio_example_works_on_a_fresh_project(ota_board: VirtualBoard, ota_project: Path,
                                                              monkeypatch) -> None:
    block = README.read_text().split("## Push code to a board", 1)[1]
    line = next(ln for ln in block.splitlines() if ln.startswith("uota remoteio call"))
    args = shlex.split(line.split("#", 1)[0])[1:]
    monkeypatch.chdir(ota_project)
    mark = ota_board.console_mark()
    uota("fast")  # the app init wrote, unchanged
    ota_board.expect("app started", timeout=30, since=mark)
    wait_reachable(ota_board.host, 2019)
    mark = ota_board.console_mark()
    assert json.loads(uota(*args).stdout) == "ok"
    ota_board.expect("led on", timeout=10, since=mark)  # the pytest example's expect() too


@pytest.mark.timeout(120)
def test_passwd_on_a_board_without_one_says_bootstrap_before_prompting(ota_board: VirtualBoard, ota_project: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    result = uota("passwd", ok=False, input=f"{OTHER_PW}\n{OTHER_PW}\n")
    assert "New OTA password" not in result.output
    message = one_error(result)
    assert "has no OTA password" in message and "`uota bootstrap`" in message
    assert json.loads((ota_project / "config" / ".ota.secrets.json").read_text())["otaPassword"] == ""


@pytest.mark.timeout(120)
def test_a_signing_key_the_board_lacks_is_refused_before_sending(ota_board: VirtualBoard, ota_project: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    before = last_json(uota("info", "--json"))
    assert before["signed"] is False
    write_secrets(ota_project, {"signingKey": SIGNING_KEY})
    message = one_error(uota("fast", ok=False))
    assert "signingKey" in message and "nothing was sent" in message and "`uota bootstrap`" in message
    after = last_json(uota("info", "--json"))
    assert (after["files"], after["release"]) == (before["files"], before["release"])


@pytest.mark.timeout(180)
def test_a_wrong_password_points_to_what_fixes_it_and_passwd_prompts_twice(tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path / "proj", password=PASSWORD, signing_key=SIGNING_KEY)
    with secured_board(tmp_path / "board", project, name="pwboard"):
        monkeypatch.chdir(project)
        write_secrets(project, {"otaPassword": OTHER_PW})
        for command in (["version"], ["passwd", "--new-password", PASSWORD]):
            message = one_error(uota(*command, ok=False))
            assert "wrong OTA password" in message and "config/.ota.secrets.json" in message
            assert "`uota bootstrap`" in message and "uota passwd" not in message  # no advice in a circle
        write_secrets(project, {"otaPassword": PASSWORD})
        result = uota("passwd", input=f"{OTHER_PW}\n{OTHER_PW}\n")
        assert result.output.count("New OTA password") == 1 and "Repeat for confirmation" in result.output
        assert json.loads((project / "config" / ".ota.secrets.json").read_text())["otaPassword"] == OTHER_PW
        assert uota("version").stdout.strip() == "1.0.0"  # the board took the new password


@pytest.mark.timeout(120)
def test_version_info_and_remoteio_run_outside_a_project_from_flags(ota_board: VirtualBoard, ota_project: Path,
                                                                   tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    mark = ota_board.console_mark()
    uota("fast", "--no-wait")
    ota_board.expect("app started", timeout=30, since=mark)
    wait_reachable(ota_board.host, 2018)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert uota("version", "--host", ota_board.host).stdout.strip() == "1.0.0"
    info = uota("info", "--host", ota_board.host).stdout.splitlines()
    assert len({line.index(": ") for line in info}) == 1, info  # the labels line up
    assert any(line.strip().startswith("micropython: 1.") for line in info), info
    assert json.loads(uota("remoteio", "call", "ping", "--host", ota_board.host).stdout) == "pong"


@pytest.mark.timeout(180)
def test_bootstrap_uses_serial_port_from_ota_json_and_leaves_a_board_that_boots_cleanly(
        tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path / "proj")
    (project / "lib").mkdir()
    (project / "lib" / "helper.py").write_text("H = 1\n")
    (project / "app" / "app.py").write_text((project / "app" / "app.py").read_text().replace(
        "import time\n", "import time\nimport helper\n", 1))
    with VirtualBoard(tmp_path / "b", name="bootclean", baud=None, mdns=False) as board:
        cfg_path = project / "config" / "ota.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.update(hostname=board.host, serialPort=board.serial_port)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        monkeypatch.chdir(project)
        monkeypatch.delenv("UOTA_PORT", raising=False)
        mark = board.console_mark()
        out = uota("bootstrap").stdout
        assert f"bootstrapped {board.serial_port}" in out
        board.expect("uota: listening on", timeout=30, since=mark)
        board.expect(r"uota: no app yet \(app/main\.py\): push one with `uota fast`", timeout=30, since=mark)
        booted = board.console[mark:]
        assert "Traceback" not in booted and "Error" not in booted, booted

        mark = board.console_mark()
        data = last_json(uota("full", "--json"))
        board.expect("app started", timeout=30, since=mark)
        assert data["app"] == "healthy", data
        # lib/** is in the default mpyFiles: the helper went as bytecode, and --json says so
        assert "lib/helper.mpy" in data["sent"] and data["as_mpy"] == ["lib/helper.py"]
        assert data["warnings"] == [] and ".gitignore" not in data["sent"]
        wait_reachable(board.host, 2018)
        app = project / "app" / "app.py"
        app.write_text(app.read_text() + "# edited\n")
        mark = board.console_mark()
        fast = uota("fast", "--json", "--no-wait")
        assert "sent 1 file (" in fast.stdout
        assert last_json(fast)["sent"] == ["app/app.py"] and last_json(fast)["as_mpy"] == []
        board.expect("app started", timeout=30, since=mark)
