"""The virtual board: real device code in a real MicroPython VM, reachable like an ESP32.

See docs/virtual-board.md for what it emulates and the supervisor/firmware contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uota_core.sim.board import VirtualBoard
    from uota_core.sim.uart import Faults, LineStats

__all__ = ["VirtualBoard", "Faults", "LineStats"]

_HOMES = {"VirtualBoard": "uota_core.sim.board", "Faults": "uota_core.sim.uart", "LineStats": "uota_core.sim.uart"}


def __getattr__(name: str) -> Any:
    # loaded on first use: `uota sim run --help` needs uota_core.sim.defaults, not the VM supervisor
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
