"""Third-party clients work unmodified: mpremote from PyPI over the board's serial port."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from serial_helpers import mpremote
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(180)


def source_like_text(size: int, seed: int = 1) -> bytes:
    """Deterministic text shaped like Python source: what pushes mostly carry."""
    rng = random.Random(seed)
    words = ["def", "return", "self", "value", "import", "machine", "print", "for", "in", "range",
             "if", "else", "sensor", "0x3F", "(", ")", ":", "=", "+", "'ok'", "#", "led"]
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) + "\n").encode()
    return bytes(out[:size])


def test_exec_eval_run(fast_board: VirtualBoard, tmp_path: Path) -> None:
    assert mpremote(fast_board, "exec", "print('hi', 6 * 7)").strip() == "hi 42"
    assert mpremote(fast_board, "eval", "1 + 2").strip() == "3"
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint('ran on', sys.implementation.name)\n")
    assert mpremote(fast_board, "run", str(script)).strip() == "ran on micropython"


def test_fs_commands(fast_board: VirtualBoard, tmp_path: Path) -> None:
    local = tmp_path / "hello.txt"
    local.write_bytes(b"hello flash\n")
    mpremote(fast_board, "fs", "mkdir", ":stuff")
    mpremote(fast_board, "fs", "cp", str(local), ":stuff/hello.txt")
    listing = mpremote(fast_board, "fs", "ls", ":stuff")
    assert "hello.txt" in listing and "12" in listing
    assert mpremote(fast_board, "fs", "cat", ":stuff/hello.txt") == "hello flash\n"
    digest = mpremote(fast_board, "fs", "sha256sum", ":stuff/hello.txt")
    assert hashlib.sha256(b"hello flash\n").hexdigest() in digest
    mpremote(fast_board, "fs", "rm", ":stuff/hello.txt")
    assert "hello.txt" not in mpremote(fast_board, "fs", "ls", ":stuff")
    fast_board.power_cut()
    assert fast_board.listdir("/stuff") == []


def test_soft_reset_and_resume(fast_board: VirtualBoard) -> None:
    mpremote(fast_board, "exec", "marker = 'kept'")
    # `resume` skips mpremote's soft reset, so state from the last command survives...
    assert mpremote(fast_board, "resume", "eval", "marker").strip() == "kept"
    # ...and an explicit soft-reset clears it.
    mark = fast_board.console_mark()
    mpremote(fast_board, "soft-reset")
    fast_board.expect("MPY: soft reboot", 10, since=mark)
    out = mpremote(fast_board, "resume", "exec", "print('marker' in globals())")
    assert out.strip() == "False"


def test_50kb_file_copied_intact_at_115200(board: VirtualBoard, tmp_path: Path) -> None:
    data = source_like_text(50 * 1024)
    local = tmp_path / "big.py"
    local.write_bytes(data)
    mpremote(board, "fs", "cp", str(local), ":big.py", timeout=170)
    board.power_cut()
    assert board.read_file("/big.py") == data
