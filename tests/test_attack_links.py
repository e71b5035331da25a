"""Broken links: a TCP connection cut mid-file, a flipped byte on TCP, a serial line that
drops or corrupts 0.1 % of its bytes. A push completes correctly after retry/resume or
fails cleanly; a corrupt file is never applied."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from attack_helpers import TapProxy, flash_hashes, make_project, secured_board
from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.errors import UotaError
from uota_core.manifest import local_manifest
from uota_core.push import push
from uota_core.session import Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(1800)


def app_set(board: VirtualBoard) -> dict[str, str]:
    return {p: h for p, h in flash_hashes(board).items() if p.startswith(("/app/", "/config/ota.json"))}


def new_release(project: Path, tag: str, files: int = 4, size: int = 6000) -> dict[str, str]:
    rng = random.Random(tag)
    for i in range(files):
        (project / "app" / f"blob{i}.bin").write_bytes(rng.randbytes(size))
    (project / "app" / "tag.py").write_text(f"TAG = {tag!r}\n")
    return {"/" + p: f.sha256 for p, f in local_manifest(load_config(project), "fast").items()}


@pytest.fixture
def linked(tmp_path: Path):
    project = make_project(tmp_path / "proj")
    with secured_board(tmp_path / "board", project, name="linkboard") as board:
        board.expect(r"app started[\s\S]*boot marked healthy", timeout=30)  # the pushed app's boot
        yield board, project


def proxied_push(board: VirtualBoard, project: Path, tap: TapProxy, version: str) -> bool:
    cfg = load_config(project)
    mark = board.console_mark()
    try:
        with Session(TcpLink(*tap.addr, timeout=5), cfg.password, cfg.signing_key) as s:
            s.open()
            push(s, cfg, "fast", version=version, compress=False)
    except (UotaError, OSError):
        return False
    board.expect("boot marked healthy", timeout=30, since=mark)
    return True


@pytest.mark.parametrize("n", [pytest.param(3, id="sample"), pytest.param(30, id="soak", marks=pytest.mark.soak)])
def test_tcp_cut_mid_file_then_a_retry_resumes(linked: tuple[VirtualBoard, Path], n: int) -> None:
    board, project = linked
    rng = random.Random(n)
    for i in range(n):
        old = app_set(board)
        new = new_release(project, f"cut-{i}")
        cut = rng.randrange(2000, 24000)  # somewhere in the 4 x 6 KB of file bodies
        with TapProxy((board.host, 2018), cut_after=cut) as tap:
            done = proxied_push(board, project, tap, f"cut-{i}")
        assert not done and tap.cut.is_set()
        wait_reachable(board.host, 2018)
        assert app_set(board) == old  # nothing of the cut push was applied
        cfg = load_config(project)
        mark = board.console_mark()
        with open_session(cfg) as s:
            retry = push(s, cfg, "fast", version=f"cut-{i}")
        board.expect("boot marked healthy", timeout=30, since=mark)
        assert retry.committed and app_set(board) == new
        if cut > 8000:  # at least one whole file went through before the cut: not sent again
            assert retry.skipped, (cut, retry.sent)
        wait_reachable(board.host, 2018)


@pytest.mark.parametrize("n", [pytest.param(4, id="sample"), pytest.param(40, id="soak", marks=pytest.mark.soak)])
def test_a_flipped_byte_on_tcp_is_never_applied(linked: tuple[VirtualBoard, Path], n: int) -> None:
    board, project = linked
    rng = random.Random(n + 1)
    for i in range(n):
        old = app_set(board)
        new = new_release(project, f"flip-{i}")
        with TapProxy((board.host, 2018), flip_at=rng.randrange(300, 24000)) as tap:
            done = proxied_push(board, project, tap, f"flip-{i}")
        wait_reachable(board.host, 2018)
        # either the damage was caught (nothing applied) or it hit nothing that matters
        assert app_set(board) == (new if done else old), f"flip {i}: a damaged push left a wrong set"
        if not done:
            cfg = load_config(project)
            mark = board.console_mark()
            with open_session(cfg) as s:
                assert push(s, cfg, "fast", version=f"flip-{i}").committed
            board.expect("boot marked healthy", timeout=30, since=mark)
            assert app_set(board) == new
            wait_reachable(board.host, 2018)


@pytest.mark.parametrize("n", [pytest.param(2, id="sample"), pytest.param(20, id="soak", marks=pytest.mark.soak)])
def test_a_noisy_serial_line_push_completes_or_fails_cleanly(linked: tuple[VirtualBoard, Path], n: int) -> None:
    board, project = linked
    failures = 0
    for i in range(n):
        old = app_set(board)
        new = new_release(project, f"noise-{i}", files=3, size=3000)
        # 0.1 % of bytes dropped or corrupted, both ways, from the first byte (raw REPL too)
        board.set_faults(drop=0.0005, corrupt=0.0005, seed=1000 + i)
        try:
            done = False
            for attempt in range(4):
                cfg = load_config(project)
                try:
                    with open_session(cfg, "serial", port=board.serial_port) as s:
                        done = push(s, cfg, "fast", version=f"noise-{i}").committed
                    break
                except UotaError:
                    failures += 1
                    assert app_set(board) in (old, new)  # a failed attempt applied nothing partial
        finally:
            board.set_faults()
        assert done, f"push {i} did not complete in 4 attempts"
        board.expect("boot marked healthy", timeout=30, since=board.console.rfind("rst:"))
        assert app_set(board) == new
    stats = board.line_stats
    assert stats.dropped + stats.corrupted > 0
    print(f"noisy serial: {n} pushes, {failures} failed attempts retried, "
          f"{stats.dropped} bytes dropped, {stats.corrupted} corrupted")


def test_a_file_with_a_non_ascii_name_pushes(linked: tuple[VirtualBoard, Path]) -> None:
    # regression: the device sized `need` and manifest lines in characters, not bytes
    board, project = linked
    (project / "app" / "donn\u00e9es_\u65e5\u672c.py").write_text("X = 1\n")
    cfg = load_config(project)
    mark = board.console_mark()
    with open_session(cfg) as s:
        result = push(s, cfg, "fast", version="utf8-names")
    assert result.committed and "app/donn\u00e9es_\u65e5\u672c.py" in result.sent
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    with open_session(cfg) as s:
        assert s.version() == "utf8-names"
        assert "app/donn\u00e9es_\u65e5\u672c.py" in s.installed().files
