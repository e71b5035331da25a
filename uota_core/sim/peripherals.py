"""What a test rig reaches on a virtual board besides its console: the flash image, GPIO
levels and ADC inputs, and the serial line's faults and counters."""

from __future__ import annotations

import os
from pathlib import Path

from uota_core.errors import BoardError
from uota_core.sim.flash import FlashImage
from uota_core.sim.state import GPIO_SLOTS, BoardState, flash_of
from uota_core.sim.uart import Faults, LineStats, UartLine


class BoardPeripherals:
    """Mixed into VirtualBoard, which provides these attributes."""

    state_dir: Path
    flash: FlashImage | None
    _state: BoardState
    _uart: UartLine | None

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def _flash(self) -> FlashImage:
        return self.flash or flash_of(self.state_dir)

    def read_file(self, path: str) -> bytes:
        """A file from the flash. While running this reads the last committed state."""
        return self._flash().read_file(path)

    def write_file(self, path: str, data: bytes | str) -> None:
        """Write a file into the flash; only while powered off (the VM owns a running flash)."""
        if self.running:
            raise BoardError("the virtual board is running: power_cut() it before writing its flash from the host")
        self._flash().write_file(path, data.encode() if isinstance(data, str) else data)

    def listdir(self, path: str = "/") -> list[str]:
        return self._flash().listdir(path)

    def _gpio(self, slot: int, value: int | None = None) -> int:
        if not 0 <= slot < GPIO_SLOTS:
            raise BoardError(f"GPIO slot {slot} out of range")
        with open(self._state.gpio_path, "r+b", buffering=0) as f:
            if value is not None:
                os.pwrite(f.fileno(), int(value).to_bytes(4, "little", signed=True), slot * 4)
                return value
            return int.from_bytes(os.pread(f.fileno(), 4, slot * 4), "little", signed=True)

    def set_pin(self, pin: int, level: int) -> None:
        """Drive an input pin's level, as a test fixture would on a real rig."""
        self._gpio(pin, 1 if level else 0)

    def get_pin(self, pin: int) -> int:
        """The level the board drives (or was last driven to) on a pin."""
        return self._gpio(pin)

    def set_adc(self, pin: int, raw: int) -> None:
        """The raw 12-bit value `ADC(Pin(pin)).read()` returns on the board."""
        self._gpio(64 + pin, max(0, min(4095, raw)))

    def set_faults(self, drop: float = 0.0, corrupt: float = 0.0, cut: bool = False,
                   seed: int | None = None, direction: str = "both") -> None:
        """Damage the serial line: per-byte drop/corrupt rates, or cut it entirely.

        `direction` limits drops and corruption to "to_board" or "to_host" bytes.
        Call with no arguments to repair the line.
        """
        if not (0 <= drop <= 1 and 0 <= corrupt <= 1):
            raise BoardError("fault rates are fractions between 0 and 1")
        if direction not in ("both", "to_board", "to_host"):
            raise BoardError(f"fault direction {direction!r} is not both, to_board or to_host")
        if not self._uart:
            raise BoardError("the virtual board is not started")
        self._uart.set_faults(Faults(drop=drop, corrupt=corrupt, cut=cut, seed=seed, direction=direction))

    @property
    def line_stats(self) -> LineStats:
        if not self._uart:
            raise BoardError("the virtual board is not started")
        return self._uart.stats
