"""Shared fixtures for the project's own tests: fresh virtual boards in temp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from uota_core.sim import VirtualBoard


@pytest.fixture
def board(tmp_path: Path) -> Iterator[VirtualBoard]:
    """A freshly erased virtual board at 115200 baud, without mDNS (faster to start)."""
    with VirtualBoard(tmp_path / "board", name="testboard", mdns=False) as b:
        yield b


@pytest.fixture
def fast_board(tmp_path: Path) -> Iterator[VirtualBoard]:
    """A virtual board with an unthrottled serial line, for tests about behaviour, not speed."""
    with VirtualBoard(tmp_path / "fastboard", name="fastboard", baud=None, mdns=False) as b:
        yield b
