"""The virtual board: real device code in a real MicroPython VM, reachable like an ESP32.

See docs/virtual-board.md for what it emulates and the supervisor/firmware contract.
"""

from uota_core.sim.board import VirtualBoard
from uota_core.sim.uart import Faults, LineStats

__all__ = ["VirtualBoard", "Faults", "LineStats"]
