"""What an ESP32 prints on its UART outside MicroPython: the ROM's reset banner, and the
ESP-IDF panic handler's report when the firmware crashes."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from uota_core.sim.vm import HARD_RESET, PWRON_RESET, SOFT_RESET

_ROM_BANNER = "ets Jun  8 2016 00:22:57\r\n\r\nrst:{code} ({why}),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
_ROM_REASONS = {PWRON_RESET: ("0x1", "POWERON_RESET"), HARD_RESET: ("0x1", "POWERON_RESET"),
                SOFT_RESET: ("0xc", "SW_CPU_RESET")}

# A VM killed by one of these crashed, as a board's CPU takes an exception: the panic
# handler reports it and the chip reboots. The exception names are the Xtensa causes the
# same fault raises on an ESP32.
_PANIC_CAUSES = {
    signal.SIGSEGV: "LoadProhibited",
    signal.SIGBUS: "LoadStoreAlignment",
    signal.SIGILL: "IllegalInstruction",
    signal.SIGFPE: "IntegerDivideByZero",
    signal.SIGTRAP: "Unhandled debug exception",
    signal.SIGSYS: "IllegalInstruction",
}


def reset_banner(cause: int) -> bytes:
    """The ROM's first lines after a reset with this `machine.reset_cause()`."""
    code, why = _ROM_REASONS[cause]
    return _ROM_BANNER.format(code=code, why=why).encode()


@dataclass(frozen=True)
class Panic:
    """One crash of the board's VM, as the panic handler reported it."""

    signal: str  # e.g. "SIGSEGV"
    cause: str  # what an ESP32 names it: "LoadProhibited", "abort()", ...
    pid: int  # the VM process that crashed
    console_at: int  # console offset where the report starts

    def report(self) -> bytes:
        """The panic handler's text, up to its `Rebooting...` (the ROM banner follows)."""
        if self.cause == "abort()":
            head = "\r\nabort() was called at PC 0x400d0000 on core 0\r\n"
        else:
            head = f"Guru Meditation Error: Core  0 panic'ed ({self.cause}). Exception was unhandled.\r\n"
        return (f"{head}\r\n(virtual board: the MicroPython VM, pid {self.pid}, was killed by {self.signal})\r\n"
                f"\r\nRebooting...\r\n").encode()


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def panic_of(returncode: int, pid: int, console_at: int) -> Panic | None:
    """The panic a VM's exit status stands for, or None if it did not crash."""
    if returncode >= 0:
        return None
    try:
        sig = signal.Signals(-returncode)
    except ValueError:
        return None
    if sig == signal.SIGABRT:
        cause = "abort()"
    elif sig in _PANIC_CAUSES:
        cause = _PANIC_CAUSES[sig]
    else:
        return None  # SIGKILL, SIGTERM...: stopped from outside, not a crash
    return Panic(sig.name, cause, pid, console_at)
