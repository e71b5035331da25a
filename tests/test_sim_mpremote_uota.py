"""mpremote (and so every raw-REPL tool) on a board with uota installed: it soft-resets into
the raw REPL, where MicroPython runs boot.py but skips main.py. uota's boot.py returns at once
and its OTA loop lives in main.py, so the tool gets its REPL; a normal reset brings OTA back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attack_helpers import first_push
from serial_helpers import mpremote, open_port
from uota_core.connect import wait_reachable
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(240)

LISTENING = "uota: listening on"
TOOL_WAIT = 40  # a hang shows as a failure after this, not as the test's timeout


def test_mpremote_ls_cp_exec_soft_reset_on_a_bootstrapped_board(
        ota_board: VirtualBoard, ota_project: Path, tmp_path: Path) -> None:
    first_push(ota_project, ota_board)
    # the pushed app's boot (the bootstrap's was healthy too); its loop printed LISTENING before
    ota_board.expect(r"app started[\s\S]*boot marked healthy", 30)
    loops_started = ota_board.console.count(LISTENING)

    listing = mpremote(ota_board, "fs", "ls", timeout=TOOL_WAIT)
    assert all(name in listing for name in ("boot.py", "main.py", "app/", "lib/")), listing

    local = tmp_path / "notes.txt"
    local.write_bytes(b"kept across resets\n")
    mpremote(ota_board, "fs", "cp", str(local), ":notes.txt", timeout=TOOL_WAIT)
    assert mpremote(ota_board, "fs", "cat", ":notes.txt", timeout=TOOL_WAIT) == "kept across resets\n"

    out = mpremote(ota_board, "exec", "import os; print(sorted(os.listdir('app')))", timeout=TOOL_WAIT)
    assert "'main.py'" in out and "'app.py'" in out

    mark = ota_board.console_mark()
    mpremote(ota_board, "soft-reset", timeout=TOOL_WAIT)
    ota_board.expect("MPY: soft reboot", 10, since=mark)
    assert "notes.txt" in mpremote(ota_board, "fs", "ls", timeout=TOOL_WAIT)

    # each command soft-reset the board into the raw REPL: boot.py ran, the launcher did not
    assert ota_board.console.count(LISTENING) == loops_started
    # and those boots did not count against the app: a tool can't roll a good app back
    state = json.loads(mpremote(ota_board, "fs", "cat", ":ota_boot.json", timeout=TOOL_WAIT))
    assert state == {"unclean": 0}

    # mpremote left the board at the friendly prompt: Ctrl-D there boots OTA and the app again
    ota_board.wait_repl("friendly")
    mark = ota_board.console_mark()
    with open_port(ota_board) as port:
        port.write(b"\x04")
        ota_board.expect(LISTENING, 30, since=mark)
    ota_board.expect("app started", 30, since=mark)


def test_after_mpremote_a_reset_brings_ota_back_and_a_push_works(
        ota_board: VirtualBoard, ota_project: Path) -> None:
    first_push(ota_project, ota_board)
    assert "app/" in mpremote(ota_board, "fs", "ls", timeout=TOOL_WAIT)
    assert mpremote(ota_board, "eval", "1 + 1", timeout=TOOL_WAIT).strip() == "2"
    ota_board.wait_repl("friendly")  # mpremote left the board at the prompt: no OTA loop now

    mark = ota_board.console_mark()
    ota_board.reset()
    ota_board.expect(LISTENING, 30, since=mark)
    ota_board.expect("app started", 30, since=mark)
    wait_reachable(ota_board.host, 2018)

    app = ota_project / "app" / "app.py"
    app.write_text(app.read_text().replace('print("app started")', 'print("app v2 started")'))
    first_push(ota_project, ota_board, app_up="app v2 started", version="v2")
