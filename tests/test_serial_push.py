"""OTA over the USB serial transport against virtual boards: installed lib, fresh board,
noisy and cut lines, resume, and the board running its app afterwards."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

from uota_core.config import load_config
from uota_core.connect import open_session
from uota_core.link import LinkError
from uota_core.push import push
from uota_core.session import Session
from uota_core.serial_transport import open_serial_link
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)


def serial_push(project: Path, board: VirtualBoard, mode: str = "fast", **kw):
    cfg = load_config(project)
    with open_session(cfg, "serial", port=board.serial_port) as s:
        return push(s, cfg, mode, **kw)


def serial_version(project: Path, board: VirtualBoard) -> str:
    with open_session(load_config(project), "serial", port=board.serial_port) as s:
        return s.version()


def serial_installed(project: Path, board: VirtualBoard):
    with open_session(load_config(project), "serial", port=board.serial_port) as s:
        return s.installed()


def add_files(project: Path, count: int, size: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        rel = f"app/data{i}.bin"  # not .py: a push refuses a .py that doesn't compile
        data = (f"# {i}\n".encode() + bytes(range(256)) * (size // 256 + 1))[:size]
        (project / rel).write_bytes(data)
        files[rel] = data
    return files


def test_push_over_serial_to_a_board_with_the_stack(ota_board: VirtualBoard, ota_project: Path) -> None:
    first = serial_push(ota_project, ota_board)
    assert first.committed and "app/app.py" in first.sent
    ota_board.expect("app started", timeout=15, since=0)
    assert serial_version(ota_project, ota_board) == "1.0.0"
    app = ota_project / "app" / "app.py"
    app.write_text(app.read_text() + "\n# edited over serial\n")
    mark = ota_board.console_mark()
    second = serial_push(ota_project, ota_board, version="1.0.1")
    assert second.sent == ["app/app.py"]
    assert ota_board.read_file("/app/app.py") == app.read_bytes()
    ota_board.expect("app started", timeout=15, since=mark)  # reset after the commit: the app runs again
    third = serial_push(ota_project, ota_board, version="1.0.1")
    assert not third.committed and third.bytes == 0
    # no commit: the host left the raw REPL and soft-reset the board, so the app runs again
    ota_board.expect("MPY: soft reboot", timeout=10, since=mark)
    ota_board.expect("app started", timeout=15, since=ota_board.console.rfind("MPY: soft reboot"))


def test_fresh_micropython_board_gets_the_session_code_injected(board: VirtualBoard, ota_project: Path) -> None:
    # an app that doesn't use uota: the board has plain MicroPython, no OTA stack, and its
    # own main.py (uota's launcher isn't there to start app/main.py)
    board.power_cut()
    board.write_file("/main.py", "import app.main\n")
    board.power_on()
    board.wait_repl(timeout=10)
    assert "lib" not in board.listdir("/")
    (ota_project / "app" / "app.py").write_text("def run():\n    print('app started')\n")
    # CPython source cut mid-line: as .txt, since a push refuses a .py that doesn't compile
    (ota_project / "app" / "big.txt").write_bytes(inspect.getsource(inspect).encode()[:20000])
    result = serial_push(ota_project, board)
    assert result.committed and "app/main.py" in result.sent and "main.py" not in result.sent
    assert result.wire_bytes < result.bytes / 2  # over serial, source crosses the line deflated
    for rel in result.sent:
        assert board.read_file("/" + rel) == (ota_project / rel).read_bytes()
    assert "lib" not in board.listdir("/")  # nothing of uota was left on the flash
    board.expect("app started", timeout=15, since=0)  # its main.py runs the app after the reset
    assert serial_version(ota_project, board) == "1.0.0"


def test_noisy_line_push_completes_with_every_file_verified(ota_board: VirtualBoard, ota_project: Path) -> None:
    files = add_files(ota_project, 6, 3000)
    cfg = load_config(ota_project)
    link = open_serial_link(ota_board.serial_port)
    # faults from here on: the raw REPL before (no checksums) has its own test below
    ota_board.set_faults(drop=0.001, corrupt=0.001, seed=7)
    with Session(link) as s:
        s.open()
        result = push(s, cfg, "fast")
    assert result.committed and set(files) <= set(result.sent)
    stats = ota_board.line_stats
    assert stats.dropped + stats.corrupted > 0  # the faults really hit the line
    assert link.retransmits > 0  # and were repaired by resending, not by luck
    ota_board.set_faults()
    for rel, data in files.items():
        assert ota_board.read_file("/" + rel) == data


def test_cut_line_fails_clearly_keeps_old_files_and_a_retry_resumes(ota_board: VirtualBoard, ota_project: Path) -> None:
    mark = ota_board.console_mark()
    serial_push(ota_project, ota_board)
    ota_board.expect("app started", timeout=15, since=mark)  # booted: the app's imports are done
    before = serial_installed(ota_project, ota_board)
    files = add_files(ota_project, 8, 2000)
    cfg = load_config(ota_project)
    sent: list[str] = []

    def cut_after_three(path: str, n: int) -> None:
        if path not in sent:
            sent.append(path)
        if len(sent) == 4:
            ota_board.set_faults(cut=True)

    link = open_serial_link(ota_board.serial_port, timeout=3.0)
    with pytest.raises(LinkError, match="check the cable"):
        with Session(link) as s:
            s.open()
            # plain bodies: files then stage in order (a board short of heap for the deflate
            # window has a file resent plain at the end, which would reorder them)
            push(s, cfg, "fast", on_chunk=cut_after_three, compress=False)
    ota_board.set_faults()
    # nothing was applied: the installed set is the old one and the new files are not in place;
    # and the board is reachable again (the stale session ends on the host's CLOSE)
    assert serial_installed(ota_project, ota_board) == before
    for rel in files:
        assert rel.split("/")[-1] not in ota_board.listdir("/app")
    # the retry sends only what wasn't staged yet
    retry = serial_push(ota_project, ota_board, compress=False)
    assert retry.committed and set(files) <= set(retry.sent) | set(retry.skipped)
    staged_before = sent[:3]
    assert not set(staged_before) & set(retry.sent), (staged_before, retry.sent)
    for rel, data in files.items():
        assert ota_board.read_file("/" + rel) == data


def test_app_printing_during_the_session_does_not_disturb_it(ota_board: VirtualBoard, ota_project: Path) -> None:
    (ota_project / "app" / "app.py").write_text(
        "import time\n\ndef run():\n    print('app started')\n    n = 0\n    while True:\n"
        "        print('tick \\xa5\\x5a', n)\n        n += 1\n        time.sleep(0.01)\n")
    mark = ota_board.console_mark()
    serial_push(ota_project, ota_board)
    ota_board.expect("tick", timeout=15, since=mark)  # rebooted into the new app
    files = add_files(ota_project, 3, 4000)
    printed = bytearray()
    cfg = load_config(ota_project)
    with Session(open_serial_link(ota_board.serial_port, on_print=printed.extend)) as s:
        s.open()
        assert push(s, cfg, "fast").committed
    assert b"tick" in printed  # the app's output arrived as print output, between frames
    for rel, data in files.items():
        assert ota_board.read_file("/" + rel) == data


def test_a_no_change_push_is_quick(ota_board: VirtualBoard, ota_project: Path) -> None:
    serial_push(ota_project, ota_board)
    t0 = time.monotonic()
    result = serial_push(ota_project, ota_board)
    assert not result.committed
    assert time.monotonic() - t0 < 2.0
