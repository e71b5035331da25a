"""Attacks on the boot guard (DESIGN.md "Boot guard"): an app that crashes at import, one
that crashes soon after starting, and one that hangs before it is healthy are rolled back
within 3 boots to exactly the previous set; a healthy app is never rolled back."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from attack_helpers import first_push, flash_hashes, make_project, secured_board
from uota_core.config import load_config
from uota_core.errors import UotaError
from uota_core.connect import open_session, wait_reachable
from uota_core.push import push
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(240)

GOOD_APP = ("import time\nimport uota\n\ndef run():\n    print('good app up')\n    uota.mark_healthy()\n"
            "    while True:\n        time.sleep(1)\n")
CRASH_AT_IMPORT = "raise RuntimeError('broken build')\n"
CRASH_SOON = ("import time\n\ndef run():\n    print('bad app up')\n    time.sleep(0.3)\n"
              "    raise RuntimeError('broken build')\n")
HANG = "import time\nprint('bad app up')\nwhile True:\n    time.sleep(0.05)\n"  # never healthy


def app_files(board: VirtualBoard) -> dict[str, str]:
    """Hashes of the app set: everything but the OTA stack's own state and the boot counter."""
    return {p: h for p, h in flash_hashes(board).items()
            if not p.startswith(("/ota_", "/lib/uota/")) and p != "/config/.ota.secrets.json"}


def version(project: Path) -> str:
    with open_session(load_config(project)) as s:
        return s.version()


@pytest.fixture
def guarded(tmp_path: Path):
    # healthyAfter 60 s: within this test only uota.mark_healthy() makes a boot clean
    project = make_project(tmp_path / "proj", app=GOOD_APP, healthyAfter=60)
    with secured_board(tmp_path / "board", project, name="guardboard", app_up="good app up") as board:
        board.expect(r"good app up[\s\S]*boot marked healthy", timeout=20)  # the pushed app's boot
        yield board, project


def push_bad(board: VirtualBoard, project: Path, app: str) -> int:
    (project / "app" / "app.py").write_text(app)
    cfg = load_config(project)
    mark = board.console_mark()
    with open_session(cfg) as s:
        assert push(s, cfg, "fast", version="bad").committed
    return mark


@pytest.mark.parametrize("bad_app", [CRASH_AT_IMPORT, CRASH_SOON], ids=["crash-at-import", "crash-after-start"])
def test_a_crashing_app_is_rolled_back_within_3_boots(guarded: tuple[VirtualBoard, Path], bad_app: str) -> None:
    board, project = guarded
    good = app_files(board)
    mark = push_bad(board, project, bad_app)
    # nobody touches the board: the guard resets it after each crash, and restores
    board.expect(r"restoring the previous app set(.|\n)*good app up", timeout=90, since=mark)
    assert board.console[mark:].count("broken build") == 3
    board.expect("boot marked healthy", timeout=20, since=mark)
    wait_reachable(board.host, 2018)
    assert version(project) == "1.0.0"
    assert app_files(board) == good  # exactly the old set, file for file


def test_an_app_that_hangs_before_it_is_healthy_is_rolled_back_within_3_boots(
        guarded: tuple[VirtualBoard, Path]) -> None:
    board, project = guarded
    good = app_files(board)
    mark = push_bad(board, project, HANG)
    for boot in range(3):  # a watchdog (here: the reset button) ends each hung boot
        board.expect("bad app up", timeout=30, since=mark)
        mark = board.console_mark()
        board.reset()
    board.expect(r"restoring the previous app set(.|\n)*good app up", timeout=30, since=mark)
    board.expect("boot marked healthy", timeout=20, since=mark)
    wait_reachable(board.host, 2018)
    assert version(project) == "1.0.0"
    assert app_files(board) == good


SLOW_HEALTHY = ("import time\nimport uota\n\ndef run():\n    print('new app up')\n    time.sleep(1)\n"
                "    uota.mark_healthy()\n    while True:\n        time.sleep(1)\n")


def test_a_healthy_app_is_never_rolled_back(guarded: tuple[VirtualBoard, Path]) -> None:
    board, project = guarded
    (project / "app" / "app.py").write_text(SLOW_HEALTHY)
    first_push(project, board, "new app up", version="2.0.0")
    board.expect("boot marked healthy", timeout=20, since=board.console.rfind("new app up"))
    new = app_files(board)
    rng = random.Random(6)
    # 9 boots: runs of 2 cut before the app could call mark_healthy(), each followed by one
    # that got healthy and then lost power or was reset. 6 unclean boots in all, never 3 in
    # a row: the count must restart at every healthy boot, or this rolls back.
    mark = board.console.rfind("new app up")
    for kind in ["early", "early", "late"] * 3:
        board.expect("new app up", timeout=30, since=mark)
        if kind == "late":
            board.expect("boot marked healthy", timeout=20, since=mark)
        mark = board.console_mark()  # this boot prints nothing more before the cut
        (board.reset if kind == "late" and rng.random() < 0.5 else board.power_cut)()
        if not board.running:
            board.power_on()
    board.expect("new app up", timeout=30, since=mark)
    board.expect("boot marked healthy", timeout=20, since=mark)
    assert "restoring the previous app set" not in board.console
    assert board.console.count("new app up") >= 10
    wait_reachable(board.host, 2018)
    assert version(project) == "2.0.0"
    assert app_files(board) == new


def test_serial_sessions_that_stop_the_boot_never_roll_back_a_healthy_app(guarded: tuple[VirtualBoard, Path]) -> None:
    """Each serial session stops the boot with Ctrl-C and soft-resets the board after it.
    Four in a row, each before the app could call mark_healthy(): once counted as four
    unclean boots, which rolled the good app back."""
    from uota_core.serial_transport import open_serial_link
    from uota_core.session import Session

    board, project = guarded
    (project / "app" / "app.py").write_text(SLOW_HEALTHY.replace("time.sleep(1)\n    uota", "time.sleep(4)\n    uota"))
    first_push(project, board, "new app up", version="2.0.0")
    board.expect("boot marked healthy", timeout=20, since=board.console.rfind("new app up"))
    new = app_files(board)
    for _ in range(4):
        mark = board.console_mark()
        s = Session(open_serial_link(board.serial_port, timeout=10))
        try:
            assert s.version() == "2.0.0"
        finally:
            s.close()
        board.expect(r"new app up|good app up", timeout=20, since=mark)  # the soft reset's boot (good: rolled back)
    mark = board.console.rfind("new app up")
    board.expect("boot marked healthy", timeout=20, since=mark)
    assert "restoring the previous app set" not in board.console
    assert board.console.count("new app up") >= 5
    board.power_cut()
    assert app_files(board) == new


NOT_YET_HEALTHY = ("import time\nimport uota\n\ndef run():\n    print('new app up')\n    time.sleep(45)\n"
                   "    uota.mark_healthy()\n    while True:\n        time.sleep(1)\n")


def test_resets_a_host_asks_for_never_roll_back(guarded: tuple[VirtualBoard, Path]) -> None:
    """Issue 11: with the password alone, 3 `reset`s before the new app was healthy counted
    as 3 unclean boots, and the guard restored the older set. A reset a host asks for says
    nothing about the app: 5 in a row, each before mark_healthy(), change nothing."""
    board, project = guarded
    (project / "app" / "app.py").write_text(NOT_YET_HEALTHY)
    first_push(project, board, "new app up", version="2.0.0")
    new = app_files(board)
    cfg = load_config(project)
    start = board.console.rfind("new app up")
    for _ in range(5):
        mark = board.console_mark()
        with open_session(cfg) as s:
            s.reset()
        board.expect("new app up", timeout=30, since=mark)
        wait_reachable(board.host, 2018)
    assert "boot marked healthy" not in board.console[start:]  # never healthy meanwhile
    assert "restoring the previous app set" not in board.console
    assert version(project) == "2.0.0"
    assert json.loads(board.read_file("/ota_boot.json")) == {"unclean": 1}  # this boot only
    assert app_files(board) == new


def test_a_crash_still_counts_when_a_host_resets_after_it(guarded: tuple[VirtualBoard, Path]) -> None:
    """The other side: a boot in which the app crashed stays unclean even if a host then
    asks for the reset, so 3 crashes still roll back however the boards get reset."""
    board, project = guarded
    good = app_files(board)
    mark = first = push_bad(board, project, CRASH_AT_IMPORT)
    cfg = load_config(project)
    host_resets = 0
    for n in range(1, 4):  # the host resets each crashed boot before the guard's grace ends
        board.expect("broken build", timeout=30, since=mark)
        mark = board.console_mark()
        try:
            with open_session(cfg) as s:
                s.reset()
            host_resets += 1
        except (UotaError, OSError):
            pass  # the guard's own reset got there first: the boot counted either way
        if n < 3:
            wait_reachable(board.host, 2018)
    board.expect(r"restoring the previous app set(.|\n)*good app up", timeout=60, since=mark)
    assert board.console[first:].count("broken build") == 3  # no more: every crashed boot counted
    assert host_resets >= 1  # the case under test happened at least once
    board.expect("boot marked healthy", timeout=20, since=mark)
    wait_reachable(board.host, 2018)
    assert version(project) == "1.0.0"
    assert app_files(board) == good
