"""`VirtualBoard`: an ESP32 stand-in that tests and users reach like the real thing."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from uota_core.errors import BoardError
from uota_core.sim.console import Console
from uota_core.sim.flash import FlashImage
from uota_core.sim.network import AddressLease, MdnsAnnouncer
from uota_core.sim.peripherals import BoardPeripherals
from uota_core.sim.registry import register, unregister
from uota_core.sim.rom import Panic, panic_of, reset_banner, signal_name
from uota_core.sim.state import BoardState
from uota_core.sim.defaults import DEFAULT_BAUD, DEFAULT_HEAP  # re-exported
from uota_core.sim.uart import UartLine
from uota_core.sim.vm import (
    HARD_RESET,
    PWRON_RESET,
    SOFT_RESET,
    CONTROL_PREFIX,
    BootConfig,
    ControlParser,
    VmProcess,
    find_micropython,
    parse_heap,
    process_stat,
)

BOOT_TIMEOUT = 15.0
# A VM that crashes this often before boot.py is broken, not crashing: stop rebooting it.
PANICS_BEFORE_BOOT = 3


class VirtualBoard(BoardPeripherals):
    """A virtual ESP32: MicroPython VM, LittleFS flash, serial pty, loopback address, mDNS name.

    Use as a context manager; the board is powered on when the block starts and the
    supervisor shuts down cleanly at its end. The state directory keeps the flash and
    the board's identity between runs.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        name: str | None = None,
        baud: int | None = DEFAULT_BAUD,
        heap: int | str = DEFAULT_HEAP,
        flash_size: int | None = None,
        addr: str | None = None,
        erase: bool = False,
        mdns: bool = True,
        micropython: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self._requested_name = name
        self.baud = baud
        self.heap = parse_heap(heap)
        self._flash_size = flash_size
        self._explicit_addr = addr
        self._erase = erase
        self._mdns_enabled = mdns
        self._micropython_path = micropython
        self._console = Console()
        self._lock = threading.RLock()
        self._vm: VmProcess | None = None
        self._booted = threading.Event()
        self._repl = threading.Condition()
        self.repl_mode: str | None = None  # 'friendly'/'raw' while the REPL waits for input
        self._reset_cause = PWRON_RESET
        self._chip_reset_us = 0  # CLOCK_MONOTONIC at the last chip reset: ticks_ms() counts from it
        self._panics: list[Panic] = []
        self._panic_cond = threading.Condition()
        self._panics_before_boot = 0
        self._exit_note = ""  # why the VM is not running, if it stopped by itself
        self._uart: UartLine | None = None
        self._lease: AddressLease | None = None
        self._mdns: MdnsAnnouncer | None = None
        self._state = BoardState(self.state_dir)
        self.flash: FlashImage | None = None
        self._started = False
        self._registered: Path | None = None  # our entry in sim.registry

    # ---- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> "VirtualBoard":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, power_on: bool = True) -> "VirtualBoard":
        """Prepare the state dir, claim an address, open the serial port, power on."""
        if self._started:
            return self
        try:
            self._micropython = find_micropython(self._micropython_path)
            self.flash = self._state.open(self._requested_name, self._flash_size, self._erase)
            self._console.open_log(self.state_dir / "console.log")
            self._lease = AddressLease(self._explicit_addr, preferred=str(self._identity.get("addr", "")))
            self._identity["addr"] = self._lease.addr
            self._state.save()
            self._uart = UartLine(self.baud, self._console.append, self._interrupt_vm)
            self._link_serial()
            if self._mdns_enabled:
                self._mdns = MdnsAnnouncer(str(self._identity["hostname"]), self.host, {"id": self.uid, "board": "virtual"})
            self._registered = register(self.uid, str(self._identity["hostname"]), self._uart.port, self.host,
                                        self.state_dir)
            self._started = True
            if power_on:
                self.power_on()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Power off and release everything (address, port, state dir lock)."""
        with self._lock:
            if self._vm:
                self._vm.kill()
                self._vm = None
        if self._registered:
            unregister(self._registered)
            self._registered = None
        if self._mdns:
            self._mdns.close()
            self._mdns = None
        if self._uart:
            self._uart.close()
            self._uart = None
        link = self.state_dir / "serial"
        if link.is_symlink():
            link.unlink()
        if self._lease:
            self._lease.release()
            self._lease = None
        self._console.close()
        self._state.close()
        self._started = False

    close = stop

    def _link_serial(self) -> None:
        assert self._uart
        link = self.state_dir / "serial"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self._uart.port)

    @property
    def _identity(self) -> dict[str, object]:
        return self._state.identity

    # ---- identity -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._identity.get("name", ""))

    @property
    def hostname(self) -> str:
        """The board's mDNS name, `<name>.local`."""
        return f"{self._identity.get('hostname', '')}.local"

    @property
    def host(self) -> str:
        """The board's own IPv4 address (127.0.0.N)."""
        return str(self._identity.get("addr", ""))

    @property
    def uid(self) -> str:
        return str(self._identity.get("uid", ""))

    @property
    def serial_port(self) -> str:
        """The board's USB serial port (a pty); `<state>/serial` links to it."""
        if not self._uart:
            raise BoardError("the virtual board is not started")
        return self._uart.port

    @property
    def mdns_registered(self) -> threading.Event:
        if not self._mdns:
            raise BoardError("mDNS is disabled for this board")
        return self._mdns.registered

    def describe(self) -> str:
        """The supervisor's view, for a failure report: is the VM alive and in what state,
        what the REPL waits for, which char interrupts, and what crossed the serial line."""
        vm, uart = self._vm, self._uart
        parts = [f"repl={self.repl_mode}"]
        if vm is None:
            parts.append("vm=none")
        else:
            stat = process_stat(vm.pid)
            state = stat[1] if stat else "gone"
            parts.append(f"vm={vm.pid} alive={vm.alive()} state={state}")
        parts.append(f"reset_cause={self._reset_cause} panics={len(self._panics)}")
        if self._exit_note:
            parts.append(f"exit={self._exit_note!r}")
        if uart is not None:
            parts.append(f"intr={uart.interrupt_char} line={uart.stats}")
        return " ".join(parts)

    # ---- console ------------------------------------------------------------------------

    @property
    def console(self) -> str:
        """Everything the board printed on its serial port (ROM banners, REPL, app output)."""
        return self._console.text()

    def console_mark(self) -> int:
        """An offset for `expect(since=...)`: only output after this point counts."""
        return self._console.mark()

    def expect(self, pattern: str | bytes, timeout: float = 5.0, since: int = 0) -> "re.Match[bytes]":
        """Wait for a regex on the console; a timeout shows the output seen so far."""
        return self._console.expect(pattern, timeout, since)

    # ---- power --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        vm = self._vm
        return vm is not None and vm.alive()

    def power_on(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Boot from power-on; returns once boot.py has started."""
        with self._lock:
            if self.running:
                return
            self._boot(PWRON_RESET, "friendly")
        self._wait_booted(timeout)

    def power_cut(self) -> None:
        """Cut the power at this instant: SIGKILL, nothing flushed, unread serial input lost."""
        with self._lock:
            self._halt()

    def reset(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Press the reset (EN) button; returns once boot.py has started."""
        with self._lock:
            self._halt()
            self._boot(HARD_RESET, "friendly")
        self._wait_booted(timeout)

    def _halt(self) -> None:
        if self._vm:
            self._vm.kill()
            self._vm = None
        if self._uart:
            self._uart.discard_board_input()
            self._uart.interrupt_char = -1
        self._set_repl(None)

    def _boot(self, cause: int, repl_mode: str, rom_banner: bool = True) -> None:
        assert self._uart
        self._booted.clear()
        self._set_repl(None)
        self._exit_note = ""
        self._uart.interrupt_char = -1
        self._reset_cause = cause  # a soft reboot passes the previous cause on unchanged
        if rom_banner:  # a chip reset, not a soft reboot
            self._chip_reset_us = time.monotonic_ns() // 1000
            self._uart.inject_board_output(reset_banner(cause))
        parser = ControlParser()
        holder: list[VmProcess] = []
        ctl_w = self._uart.new_control_pipe(lambda data: self._on_control(holder, parser, data))
        assert self.flash
        boot = BootConfig(
            flash=self.flash.path,
            flash_blocks=self.flash.block_count,
            gpio=self._state.gpio_path,
            addr=self.host,
            hostname=str(self._identity["hostname"]),
            uid=self.uid,
            reset_cause=cause,
            repl_mode=repl_mode,
            ticks_base_us=self._chip_reset_us,
        )
        try:
            vm = VmProcess(self._micropython, self.heap, boot, self._uart.vm_stdin, self._uart.vm_stdout, ctl_w)
        finally:
            os.close(ctl_w)
        holder.append(vm)
        self._vm = vm

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._booted.wait(0.05):
            # A VM that exits is rebooted (a panic) or noted as stopped by the IO thread,
            # after it has collected the VM's last words.
            if self._vm is None or self._exit_note:
                raise BoardError(f"the virtual board did not boot: {self._console.tail(400).strip() or 'VM exited'}")
            if time.monotonic() > deadline:
                raise BoardError(f"the virtual board did not reach boot.py within {timeout:.0f} s")

    # ---- control messages (IO thread) ---------------------------------------------------

    def _on_control(self, holder: list[VmProcess], parser: ControlParser, data: bytes) -> None:
        if not data:
            self._vm_exited(holder)
            return
        for kind, payload in parser.feed(data):
            if kind == "text":
                self._console.append(payload)
                continue
            with self._lock:
                if not holder or holder[0] is not self._vm:
                    return  # a message from a VM that has since been killed
                # The VM printed what precedes this message first: record it first, so a
                # caller woken by the message finds that output on the console.
                if self._uart:
                    self._uart.collect_board_output()
                self._handle(payload.decode(errors="replace").split())

    def _handle(self, words: list[str]) -> None:
        assert self._uart
        if not words:
            return
        if words[0] == "boot":
            self._panics_before_boot = 0
            self._booted.set()
        elif words[0] == "repl" and len(words) > 1:
            self._set_repl(words[1])
        elif words[0] == "intr" and len(words) > 1:
            self._uart.interrupt_char = int(words[1])
        elif words[0] == "sigint":  # a Ctrl-C the VM caught where it can't raise it: again
            if self._vm:
                self._vm.interrupt(self._interrupt_armed)
        elif words[0] == "reset" and len(words) > 1:
            if self._vm:
                self._vm.kill()
            if words[1] == "soft":
                mode = words[2] if len(words) > 2 else "friendly"
                self._boot(self._reset_cause, mode, rom_banner=False)
            else:
                self._boot(SOFT_RESET, "friendly")

    def _vm_exited(self, holder: list[VmProcess]) -> None:
        """The VM's control pipe closed: it has exited. Unless the supervisor killed it
        (power cut, reset), it crashed: panic and reboot as an ESP32 does, or say why not."""
        with self._lock:
            if not holder or holder[0] is not self._vm or not self._uart:
                return
            vm = holder[0]
            self._uart.collect_board_output()  # its last words come before the report
            try:
                code = vm.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # closed its fd 2 yet runs on: stop it as a dead board
                vm.kill()
                code = vm.proc.returncode
            self._set_repl(None)
            panic = panic_of(code, vm.pid, self._console.mark())
            if panic is None:
                how = f"exited with status {code}" if code >= 0 else f"was killed by {signal_name(-code)} from outside"
                self._stopped(f"the VM (pid {vm.pid}) {how}")
                return
            self._uart.inject_board_output(panic.report())
            with self._panic_cond:
                self._panics.append(panic)
                self._panic_cond.notify_all()
            self._panics_before_boot += 1
            if self._panics_before_boot >= PANICS_BEFORE_BOOT:
                self._stopped(f"the VM crashed {self._panics_before_boot} times before reaching boot.py; "
                              "not rebooting it again")
                return
            self._boot(SOFT_RESET, "friendly")  # ESP-IDF restarts after a panic: a software reset

    def _stopped(self, why: str) -> None:
        self._exit_note = why
        self._console.append(f"\r\nuota-sim: {why}; the board is off until power_on() or reset()\r\n".encode())

    @property
    def panics(self) -> list[Panic]:
        """Every crash of this board's VM since start(), oldest first."""
        with self._panic_cond:
            return list(self._panics)

    def wait_panic(self, count: int = 1, timeout: float = 10.0) -> Panic:
        """Wait until the board has panicked `count` times in all; returns the last panic."""
        with self._panic_cond:
            if not self._panic_cond.wait_for(lambda: len(self._panics) >= count, timeout):
                raise BoardError(f"the board did not panic {count} time(s) within {timeout} s "
                                 f"({len(self._panics)} so far)")
            return self._panics[-1]

    @property
    def reset_cause(self) -> int:
        """What `machine.reset_cause()` says on the board's current boot."""
        return self._reset_cause

    def _set_repl(self, mode: str | None) -> None:
        with self._repl:
            self.repl_mode = mode
            self._repl.notify_all()

    def _interrupt_vm(self) -> bool:
        """The UART's RX interrupt for the interrupt char: False if the VM turned it off
        meanwhile (the char is then data, as the ISR of a board would see it)."""
        vm = self._vm
        if not self._interrupt_armed():
            return False
        if vm:
            vm.interrupt(self._interrupt_armed)
        return True

    def _interrupt_armed(self) -> bool:
        """Whether Ctrl-C interrupts the VM, by its latest `intr` word, read ahead on the
        control pipe (the VM is stopped: nothing changes meanwhile)."""
        assert self._uart
        words = re.findall(re.escape(CONTROL_PREFIX) + rb"intr (-?\d+)\n", self._uart.control_ahead())
        return int(words[-1] if words else self._uart.interrupt_char) == 3

    def wait_repl(self, mode: str | None = None, timeout: float = 10.0) -> str:
        """Wait until the REPL waits for input (in `mode`, if given); returns the mode."""
        with self._repl:
            ok = self._repl.wait_for(
                lambda: self.repl_mode is not None and (mode is None or self.repl_mode == mode), timeout
            )
            if not ok:
                raise BoardError(f"the board's REPL was not ready within {timeout} s (mode now {self.repl_mode})")
            return str(self.repl_mode)
