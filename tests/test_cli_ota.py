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

PW1, PW2, WRONG_PW = "Pw-one-x7Kq93LmZt", "Pw-two-R4vN82bWsy", "Not-it-J6hT51cXpa"
KEY1 = "9f0c3a58e1b24d7699a1c0e5f3b8d2476e1a9c04b7f5d3e28a6c1b9d0e4f7a35"
KEY2 = "4e8b1d7a2c9f06e3b5a8d1c4f7e2a9b0c6d3e8f1a4b7c0d9e2f5a8b1c4d7e0f3"


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
    assert (project / "app" / "main.py").exists() and not (project / "main.py").exists()
    assert uota("init", "--dir", str(project), ok=False).exit_code == 1  # refuses to overwrite
    with VirtualBoard(tmp_path / "b", name="clib", baud=None, mdns=False) as board, show_console_on_failure(board):
        set_config(project, hostname=board.host)
        write_secrets(project, {"otaPassword": PW1, "signingKey": KEY1})
        monkeypatch.chdir(project / "app")  # commands find the project from a subdirectory
        out = uota("bootstrap", "--port", board.serial_port).output
        assert "lib/uota/session.mpy" in out  # the board loads mpy-cross's bytecode: the default
        wait_reachable(board.host, 2018)
        from uota_core.auth import derive_key
        secrets = json.loads(board.read_file("/config/.ota.secrets.json"))
        assert secrets == {"otaKey": derive_key(PW1, secrets["otaSalt"], secrets["otaIter"]).hex(),
                           "otaSalt": secrets["otaSalt"], "otaIter": secrets["otaIter"], "signingKey": KEY1}
        assert len(secrets["otaSalt"]) == 32 and secrets["otaIter"] >= 100_000

        first = last_json(pushed(board, "fast", "--json"))
        assert set(first) == {"sent", "skipped", "deleted", "bytes", "wire_bytes", "seconds", "as_mpy", "warnings", "app",
                              "traceback"}
        assert first["app"] == "healthy"
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
        write_secrets(project, {"signingKey": KEY2})
        app.write_text(app.read_text() + "\n# unsigned change\n")
        bad = uota("fast", ok=False)
        assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "signature" in bad.stderr
        write_secrets(project, {"signingKey": KEY1})

        # a wrong password
        write_secrets(project, {"otaPassword": WRONG_PW})
        bad = uota("version", ok=False)
        assert bad.exit_code == 1 and "wrong OTA password" in bad.stderr and bad.stderr.count("\n") == 1
        write_secrets(project, {"otaPassword": PW1})

        # passwd: device first, then the local secrets
        uota("passwd", "--new-password", PW2)
        assert json.loads((project / "config" / ".ota.secrets.json").read_text())["otaPassword"] == PW2
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
    # lib/** is in the default mpyFiles: the helper goes as bytecode
    assert {"lib/helper.mpy", "app/app.py", "app/main.py", "config/ota.json"} <= set(result["sent"])
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


def test_init_writes_strong_private_secrets_and_weak_ones_are_refused(tmp_path: Path, monkeypatch) -> None:
    from uota_core.keys import password_problem, signing_key_problem

    project = tmp_path / "proj"
    uota("init", "--dir", str(project))
    path = project / "config" / ".ota.secrets.json"
    secrets = json.loads(path.read_text())
    assert path.stat().st_mode & 0o077 == 0
    assert len(secrets["signingKey"]) == 64 and bytes.fromhex(secrets["signingKey"])
    assert signing_key_problem(secrets["signingKey"]) is None and password_problem(secrets["otaPassword"]) is None
    gitignore = (project / ".gitignore").read_text().splitlines()
    assert {"config/.ota.secrets.json", ".ota.secrets.json*", "*.key", "*.pem"} <= set(gitignore)
    uota("init", "--dir", str(project), "--force")
    assert json.loads(path.read_text()) == secrets  # --force never replaces keys

    fresh = json.loads(uota("keygen").stdout)
    assert fresh.keys() == secrets.keys() and fresh != secrets
    assert signing_key_problem(fresh["signingKey"]) is None and password_problem(fresh["otaPassword"]) is None

    monkeypatch.chdir(project)
    bad = uota("passwd", "--local", "--new-password", "hunter2", ok=False)
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1
    assert "otaPassword is too weak: it has 7 characters; use at least 12" in bad.stderr
    assert json.loads(path.read_text()) == secrets
    path.write_text(json.dumps({**secrets, "signingKey": "my-hmac-secret"}))
    bad = uota("version", ok=False)
    assert bad.exit_code == 1 and bad.stderr.startswith(
        "error: config/.ota.secrets.json: signingKey is too weak: it holds only 10 bytes")
    assert "`uota keygen`" in bad.stderr


def test_secret_copies_are_never_pushed_and_excluded_files_stay(ota_board: VirtualBoard, ota_project: Path,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    keys = (ota_project / "config" / ".ota.secrets.json").read_text()
    leaks = ["config/.ota.secrets.json.bak", "config/.ota.secrets.json~", "config/secrets.json", "app/app.py.orig"]
    for rel in leaks:  # the copies an outside attack got pushed (issue 11)
        (ota_project / rel).write_text(keys)
    (ota_project / "app" / "cal.dat").write_text("calibration")
    first = last_json(pushed(ota_board, "fast", "--json"))
    assert not set(leaks) & set(first["sent"]) and "app/cal.dat" in first["sent"]

    # cal.dat is now excluded: `full` neither pushes nor deletes it; -v says what was left out
    set_config(ota_project, excludedFiles=json.loads((ota_project / "config" / "ota.json").read_text())
               ["excludedFiles"] + ["app/cal.dat"])
    full = pushed(ota_board, "full", "-v", "--json")
    assert last_json(full)["deleted"] == [] and "config/ota.json" in last_json(full)["sent"]
    assert not set(leaks) & set(last_json(full)["sent"])
    assert "  excluded config/secrets.json  by *secret* (built-in secrets list:1)\n" in full.stdout
    assert "  excluded app/app.py.orig  by *.orig (built-in backup list:7)\n" in full.stdout
    assert ", 4 excluded, in " in full.stdout
    assert "(4 left out by the secrets/backup lists or .uotaignore: -v lists them)" in uota("fast").stdout
    ota_board.power_cut()
    assert ota_board.read_file("/app/cal.dat") == b"calibration"
    for rel in leaks:
        with pytest.raises(Exception):
            ota_board.read_file("/" + rel)
