"""Many files must never make a board un-updatable or unbootable (issue 11, break 5): every
directory walk on the board (commit, rollback, boot replay, wipe, prune) runs in bounded
memory whatever the file count. A signed, password-protected virtual board with the default
128 KB heap pushes N small files, drops them, pushes them again (cut in its commit, so the
boot replays the journal), reboots and pushes again."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from attack_helpers import PASSWORD, SIGNING_KEY, healthy_board, wait_until
from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.errors import UotaError
from uota_core.push import push
from uota_core.sim import VirtualBoard

MANY = "app/many"


PER_DIR = {300: 300, 2000: 100}  # files per directory, by sample size


def many(i: int, n: int) -> str:
    return f"{MANY}/d{i // PER_DIR[n]:02d}/f{i:04d}.txt"


def write_many(project: Path, n: int, tag: str) -> None:
    shutil.rmtree(project / MANY, ignore_errors=True)
    for i in range(n):
        f = project / many(i, n)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"{tag} {i}\n")


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


def push_cut_in_commit(board: VirtualBoard, project: Path, version: str) -> float:
    """A push whose power is cut once its commit journal is on flash: the next boot must
    replay the commit (moving every staged file in) within the default heap."""
    cfg = load_config(project)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with open_session(cfg) as s:
                push(s, cfg, "fast", version=version)
        except (UotaError, OSError) as e:
            failed.append(e)  # the cut: the host never hears the commit's reply

    def journal_or_done() -> bool:
        try:
            return "ota_journal.json" in board.listdir("/") or not pusher.is_alive()
        except Exception:  # the image read in the middle of a write: look again
            return False

    started = time.monotonic()
    pusher = threading.Thread(target=run, daemon=True)
    pusher.start()
    wait_until(journal_or_done, 600, "the commit's journal on flash", every=0.05)
    board.power_cut()
    pusher.join(30)
    assert failed, "the commit finished before its journal could be seen: no replay tested"
    mark = board.console_mark()
    board.power_on()
    board.expect("boot guard: committed", timeout=120, since=mark)
    board.expect("boot marked healthy", timeout=120, since=mark)
    wait_reachable(board.host, 2018, timeout=30)
    with open_session(cfg) as s:
        assert s.version() == version
    return time.monotonic() - started


def on_flash(board: VirtualBoard) -> int:
    return sum(1 for p in board.flash.walk() if p.startswith("/" + MANY + "/"))


# 300 files in one directory broke the board before; the soak's 2,000 go in directories of
# 100 (LittleFS, and more so the virtual board's Python block device, gets slower per file
# as one directory grows: 2,000 in directories of 500, on 2 busy cores, took over the host's
# 120 s for end_ota)
@pytest.mark.parametrize("n", [pytest.param(300, id="sample", marks=pytest.mark.timeout(600)),
                               pytest.param(2000, id="soak", marks=[pytest.mark.soak, pytest.mark.timeout(3000)])])
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
        # clears that /ota_prev/, and loses power in its commit: the boot replays the journal
        times["re-push, cut, replay"] = push_cut_in_commit(board, project, "many-3")
        assert on_flash(board) == n
        assert board.read_file("/" + many(n - 1, n)) == f"two {n - 1}\n".encode()
        mark = board.console_mark()
        board.reset()
        board.expect("boot marked healthy", timeout=120, since=mark)
        wait_reachable(board.host, 2018, timeout=30)
        (project / many(0, n)).write_text("three\n")
        times["push again"] = push_and_wait(board, project, "many-4", expect_sent=1)
        assert board.read_file("/" + many(0, n)) == b"three\n"
        assert "MemoryError" not in board.console[start:] and "Traceback" not in board.console[start:]
        print(f"{n} files:", ", ".join(f"{k} {v:.1f}s" for k, v in times.items()))
