"""The pytest plugin, registered through the `pytest11` entry point.

It holds no protocol logic: every fixture wraps `uota_core`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from uota_core.sim import VirtualBoard


@pytest.fixture
def virtual_board(tmp_path: Path) -> Iterator[VirtualBoard]:
    """A fresh virtual board for tests that cut power or inject serial-line faults."""
    with VirtualBoard(tmp_path / "virtual-board", name="pytest-board", mdns=False) as board:
        yield board
