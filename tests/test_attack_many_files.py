"""Many files must never make a board un-updatable or unbootable (issue 11, break 5): every
directory walk on the board (commit, rollback, boot replay, wipe, prune) runs in bounded
memory whatever the file count. A signed, password-protected virtual board with the default
128 KB heap pushes N small files, drops them, pushes them again, reboots and pushes again."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from attack_helpers import PASSWORD, SIGNING_KEY, count, healthy_board, wait_until
from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.push import push
from uota_core.sim import VirtualBoard

MANY = "app/many"


def write_many(project: Path, n: int, tag: str) -> None:
    d = project / MANY
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for i in range(n):
        (d / f"f{i:04d}.txt").write_text(f"{tag} {i}\n")


def push_and_wait(board: VirtualBoard, project: Path, version: str, expect_sent: int | None = None) -> float:
    """A signed fast push that must commit and come back healthy; its seconds."""
    cfg = load_config(project)
    mark = board.console_mark()
    started = time.monotonic()
    with open_session(cfg) as s:
        result = push(s, cfg, "fast", version=version)
    assert result.committed, result.summary()
    if expect_sent is not None:
        assert len(result.sent) == expect_sent, result.summary()
    board.expect("boot marked healthy", timeout=120, since=mark)
    wait_reachable(board.host, 2018, timeout=30)
    with open_session(cfg) as s:
        assert s.version() == version
    return time.monotonic() - started


def on_flash(board: VirtualBoard) -> int:
    return sum(1 for p in board.flash.walk() if p.startswith("/" + MANY + "/"))


@pytest.mark.parametrize("n", [pytest.param(300, id="sample"),
                               pytest.param(2000, id="soak", marks=[pytest.mark.soak, pytest.mark.timeout(3000)])])
@pytest.mark.timeout(600)
def test_push_drop_repush_reboot_push_many_files(tmp_path: Path, n: int) -> None:
    with healthy_board(tmp_path, "manyboard", password=PASSWORD, signing_key=SIGNING_KEY) as (board, project):
        times = {}
        start = board.console_mark()
        write_many(project, n, "one")
        times["push"] = push_and_wait(board, project, "many-1", expect_sent=n)
        assert on_flash(board) == n
        shutil.rmtree(project / MANY)
        times["drop"] = push_and_wait(board, project, "many-2")  # the n files go to /ota_prev/
        assert on_flash(board) == 0
        write_many(project, n, "two")
        times["re-push"] = push_and_wait(board, project, "many-3", expect_sent=n)  # clears that /ota_prev/
        assert on_flash(board) == n
        mark = board.console_mark()
        board.reset()
        board.expect("boot marked healthy", timeout=120, since=mark)
        wait_reachable(board.host, 2018, timeout=30)
        (project / MANY / "f0000.txt").write_text("three\n")
        times["push again"] = push_and_wait(board, project, "many-4", expect_sent=1)
        assert board.read_file(f"/{MANY}/f0000.txt") == b"three\n"
        assert "MemoryError" not in board.console[start:] and "Traceback" not in board.console[start:]
        print(f"{n} files:", ", ".join(f"{k} {v:.1f}s" for k, v in times.items()))
