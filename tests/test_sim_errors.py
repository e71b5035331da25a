"""Bad input to the virtual board: a clear error, and nothing lost."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from uota_core.errors import BoardError
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(60)


def test_directory_that_is_not_a_board_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my files")
    with pytest.raises(BoardError, match="not a virtual board state directory"):
        VirtualBoard(tmp_path, mdns=False).start()
    assert (tmp_path / "notes.txt").read_text() == "my files"


def test_corrupt_flash_is_never_silently_reformatted(tmp_path: Path) -> None:
    with VirtualBoard(tmp_path / "b", baud=None, mdns=False):
        pass
    image = tmp_path / "b" / "flash.bin"
    image.write_bytes(b"\x00" * image.stat().st_size)
    with pytest.raises(BoardError, match="--erase"):
        VirtualBoard(tmp_path / "b", baud=None, mdns=False).start()
    assert image.read_bytes() == b"\x00" * image.stat().st_size
    with VirtualBoard(tmp_path / "b", baud=None, mdns=False, erase=True) as board:
        assert "boot.py" in board.listdir("/")


def test_missing_micropython_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match=r"pytest-uota\[sim\]"):
        VirtualBoard(tmp_path / "b", mdns=False, micropython=tmp_path / "nope").start()


def test_address_in_use_is_reported(tmp_path: Path) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.77", 2018))
    squatter.listen(1)
    try:
        with pytest.raises(BoardError, match="127.0.0.77:2018 is already in use"):
            VirtualBoard(tmp_path / "b", mdns=False, addr="127.0.0.77").start()
    finally:
        squatter.close()


def test_state_dir_in_use_by_another_board(tmp_path: Path) -> None:
    with VirtualBoard(tmp_path / "b", baud=None, mdns=False):
        with pytest.raises(BoardError, match="in use by another running virtual board"):
            VirtualBoard(tmp_path / "b", baud=None, mdns=False).start()


def test_writing_flash_of_running_board_is_refused(fast_board: VirtualBoard) -> None:
    with pytest.raises(BoardError, match="power_cut"):
        fast_board.write_file("/x.py", "x = 1")


def test_bad_heap_size(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="heap size"):
        VirtualBoard(tmp_path / "b", heap="lots")
