"""The virtual board's USB-UART: a pty on the host side, pipes to the VM, a wire in between.

One thread moves bytes both ways at the configured baud rate (10 bits per byte), applies
injected faults, and plays the UART's RX interrupt: the interrupt char becomes a callback
(SIGINT for the VM) instead of data. It also reads the VM's control pipe, so control
messages and serial bytes are handled in the order they were produced; the pipe's end
(every writer gone) is how the board learns that its VM has exited.
"""

from __future__ import annotations

import array
import fcntl
import os
import random
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Callable

F_SETPIPE_SZ = 1031
RX_BUFFER = 4096  # the VM's UART RX buffer; bytes beyond it are lost, as on a board
TX_PIPE = 4096  # the VM's output pipe: its print() blocks once this much waits for the line
TX_BACKLOG = 512  # bytes queued for the wire before the VM's print() blocks
RX_BACKLOG = 64 * 1024  # host bytes queued before the host's write() blocks
IDLE_POLL_MS = 50  # how often to look whether a client has opened the port

_SPEEDS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000,
                 921600, 1000000, 1152000, 1500000, 2000000, 3000000)
    if hasattr(termios, f"B{rate}")
}


@dataclass
class Faults:
    """Damage done to bytes on the wire. Rates are per byte, 0.0 to 1.0."""

    drop: float = 0.0
    corrupt: float = 0.0
    cut: bool = False
    seed: int | None = None
    direction: str = "both"  # "both", "to_board" or "to_host"


@dataclass
class LineStats:
    to_board: int = 0
    to_host: int = 0
    dropped: int = 0
    corrupted: int = 0
    lost_while_cut: int = 0
    rx_overflow: int = 0  # board's RX buffer was full
    host_not_listening: int = 0  # nobody had the port open
    garbled_baud: int = 0  # host opened the port at another baud rate
    interrupts: int = 0


@dataclass
class _Direction:
    pending: bytearray = field(default_factory=bytearray)
    ready_at: float = 0.0


class UartLine:
    """A pty for the host, two pipes for the VM, and the paced, fault-injecting wire."""

    def __init__(
        self,
        baud: int | None,
        on_board_output: Callable[[bytes], None],
        on_interrupt: Callable[[], bool],
    ) -> None:
        self.baud = baud
        self._byte_time = 10.0 / baud if baud else 0.0
        self._on_board_output = on_board_output
        # (fd, callback) of the current VM's control pipe; each VM gets its own pipe so a
        # message from a killed VM can never act on its successor.
        self._control: tuple[int, Callable[[bytes], None]] | None = None
        self._control_fds: list[int] = []
        self._control_ahead = bytearray()  # control bytes read by control_ahead(), not yet handled
        self._on_interrupt = on_interrupt
        self.interrupt_char = -1
        self.faults = Faults()
        self._rng = random.Random()
        self.stats = LineStats()
        self._rx = _Direction()
        self._tx = _Direction()
        self._lock = threading.Lock()

        self._master, slave = os.openpty()
        tty.setraw(slave)
        if baud and baud in _SPEEDS.values():
            attrs = termios.tcgetattr(slave)
            code = next(c for c, r in _SPEEDS.items() if r == baud)
            attrs[4] = attrs[5] = code
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.port = os.ttyname(slave)
        # Hold no slave fd: POLLHUP on the master then tells us nobody has the port open.
        os.close(slave)
        os.set_blocking(self._master, False)

        # The RX pipe keeps its default size (16 pages): its fill, not its size, plays the
        # RX buffer (_write_board). A one-page pipe refuses a write that does not fit in
        # what is left of its page even when it holds only a few unread bytes: it lost whole
        # chunks of a raw paste that honoured the flow control (docs/reliability.md).
        self.vm_stdin, self._rx_w = os.pipe()
        self._tx_r, self.vm_stdout = os.pipe()
        for fd in (self._rx_w, self._tx_r):
            os.set_blocking(fd, False)
        try:
            fcntl.fcntl(self._tx_r, F_SETPIPE_SZ, TX_PIPE)
        except OSError:
            pass
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"uart {self.port}", daemon=True)
        self._thread.start()

    # ---- control from other threads ------------------------------------------------------

    def new_control_pipe(self, callback: Callable[[bytes], None]) -> int:
        """A fresh control pipe for the next VM; returns the write end for its fd 2."""
        r, w = os.pipe()
        os.set_blocking(r, False)
        with self._lock:
            self._control = (r, callback)
            self._control_fds.append(r)
        self._wake()
        return w

    def control_ahead(self) -> bytes:
        """What the current VM has written to its control pipe and the line has not handled
        yet (read now, handled by the line's thread next): a stopped VM's latest word on
        whether Ctrl-C interrupts it. Only for the line's own thread (its interrupt callback)."""
        control = self._control
        if control:
            data = _read_or_eof(control[0])
            if data:
                self._control_ahead += data
        return bytes(self._control_ahead)

    def _drop_control(self, fd: int) -> None:
        with self._lock:
            if self._control and self._control[0] == fd:
                self._control = None  # the next loop closes it with the stale ones

    def inject_board_output(self, data: bytes) -> None:
        """Bytes the board's ROM prints before the VM exists (reset banners)."""
        with self._lock:
            self._queue(self._tx, data)
        self._on_board_output(data)
        self._wake()

    def collect_board_output(self) -> None:
        """Pull everything the VM has written so far into the wire queue (before a reset)."""
        while True:
            data = _read(self._tx_r)
            if not data:
                return
            with self._lock:
                self._queue(self._tx, data)
            self._on_board_output(data)

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            if faults.seed is not None:
                self._rng.seed(faults.seed)
        self._wake()

    def discard_board_input(self) -> None:
        """Power cut: bytes the board had not read yet are gone."""
        with self._lock:
            self._rx.pending.clear()
            # Only called while no VM runs, so flipping the shared fd to non-blocking is safe.
            os.set_blocking(self.vm_stdin, False)
            _drain(self.vm_stdin)
            os.set_blocking(self.vm_stdin, True)

    def close(self) -> None:
        self._stop = True
        self._wake()
        self._thread.join(timeout=5)
        for fd in (self._master, self.vm_stdin, self._rx_w, self._tx_r, self.vm_stdout,
                   self._wake_r, self._wake_w, *self._control_fds):
            try:
                os.close(fd)
            except OSError:
                pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # ---- the wire ------------------------------------------------------------------------

    def _host_baud_matches(self) -> bool:
        if not self.baud:
            return True
        try:
            speed = termios.tcgetattr(self._master)[4]
        except termios.error:
            return True
        rate = _SPEEDS.get(speed)
        return rate is None or rate == self.baud

    def _damage(self, data: bytes, direction: str) -> bytes:
        if not data:
            return data
        faults = self.faults
        if faults.cut:
            self.stats.lost_while_cut += len(data)
            return b""
        if not self._host_baud_matches():
            # Wrong baud: the receiver samples garbage, on both sides.
            self.stats.garbled_baud += len(data)
            return bytes(self._rng.randrange(256) for _ in data)
        if not (faults.drop or faults.corrupt) or faults.direction not in ("both", direction):
            return data
        out = bytearray()
        for b in data:
            r = self._rng.random()
            if r < faults.drop:
                self.stats.dropped += 1
                continue
            if r < faults.drop + faults.corrupt:
                self.stats.corrupted += 1
                b ^= 1 << self._rng.randrange(8)
            out.append(b)
        return bytes(out)

    def _take(self, d: _Direction, now: float) -> bytes:
        """The bytes that have crossed the wire by `now`."""
        if not d.pending or now < d.ready_at:
            return b""
        if self._byte_time:
            n = min(len(d.pending), 64, int((now - d.ready_at) / self._byte_time) + 1)
            d.ready_at += n * self._byte_time
        else:
            n = len(d.pending)
        chunk = bytes(d.pending[:n])
        del d.pending[:n]
        return chunk

    def _deliver_to_board(self, data: bytes) -> None:
        start = 0
        for i, b in enumerate(data):
            # on_interrupt() says whether the char still interrupts: the VM may have turned
            # that off in a control word this line has not handled yet; then it is data
            if b == self.interrupt_char and self._on_interrupt():
                self._write_board(data[start:i])
                start = i + 1
                self.stats.interrupts += 1
        self._write_board(data[start:])

    def _write_board(self, data: bytes) -> None:
        if not data:
            return
        # Room in the RX buffer: RX_BUFFER less what the VM has not read yet (the VM only
        # reads meanwhile, so this is never too much).
        room = RX_BUFFER - _unread(self.vm_stdin)
        try:
            n = os.write(self._rx_w, data[:max(0, room)]) if room > 0 else 0
        except BlockingIOError:
            n = 0
        self.stats.to_board += n
        self.stats.rx_overflow += len(data) - n

    def _write_host(self, data: bytes, connected: bool) -> None:
        if not data:
            return
        if not connected:
            self.stats.host_not_listening += len(data)
            return
        try:
            n = os.write(self._master, data)
        except (BlockingIOError, OSError):
            n = 0
        self.stats.to_host += n
        self.stats.host_not_listening += len(data) - n

    def _run(self) -> None:
        while not self._stop:
            connected = not _hung_up(self._master)
            now = time.monotonic()
            timeout_ms = 1000.0 if connected else IDLE_POLL_MS
            for d in (self._rx, self._tx):
                if d.pending:
                    timeout_ms = min(timeout_ms, max(0.0, (d.ready_at - now) * 1000))
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            with self._lock:
                control = self._control
                stale = [fd for fd in self._control_fds if control is None or fd != control[0]]
                self._control_fds = [control[0]] if control else []
            for fd in stale:
                os.close(fd)
            if control and self._control_ahead:
                ahead = bytes(self._control_ahead)
                self._control_ahead.clear()
                control[1](ahead)
            if control:
                poller.register(control[0], select.POLLIN)
            if len(self._tx.pending) < TX_BACKLOG:
                poller.register(self._tx_r, select.POLLIN)
            if connected and len(self._rx.pending) < RX_BACKLOG:
                poller.register(self._master, select.POLLIN)
            if not connected and len(self._rx.pending) < RX_BACKLOG:
                # The host closed the port: what it wrote just before (mpremote's closing
                # Ctrl-B) still goes down the wire, as a USB-UART bridge sends its buffer.
                # Linux keeps it readable on the master after the hang-up, until EIO.
                data = _read(self._master)
                if data:
                    self._queue(self._rx, data)
            for fd, _ev in poller.poll(timeout_ms):
                if fd == self._wake_r:
                    _drain(self._wake_r)
                elif control and fd == control[0]:
                    data = _read_or_eof(fd)
                    if data is None:
                        # Every writer is gone: the VM has exited. Stop watching the pipe
                        # (a hung-up fd polls ready at once, so keeping it spins a core),
                        # then tell the board, which knows whether it killed that VM.
                        self._drop_control(fd)
                        control[1](b"")
                    elif data:
                        control[1](data)
                elif fd == self._tx_r:
                    data = _read(self._tx_r, TX_BACKLOG)
                    if data:
                        self._queue(self._tx, data)
                        self._on_board_output(data)
                elif fd == self._master:
                    data = _read(self._master)
                    if data:
                        self._queue(self._rx, data)
            now = time.monotonic()
            with self._lock:
                self._deliver_to_board(self._damage(self._take(self._rx, now), "to_board"))
                self._write_host(self._damage(self._take(self._tx, now), "to_host"), connected)

    @staticmethod
    def _queue(d: _Direction, data: bytes) -> None:
        if not d.pending:
            # An idle line earns no credit: the first byte starts now.
            d.ready_at = max(d.ready_at, time.monotonic())
        d.pending += data


def _read(fd: int, limit: int = 65536) -> bytes:
    try:
        return os.read(fd, limit)
    except (BlockingIOError, OSError):
        return b""


def _read_or_eof(fd: int) -> bytes | None:
    """What a pipe holds; None once every writer has closed it."""
    try:
        return os.read(fd, 65536) or None
    except BlockingIOError:
        return b""
    except OSError:
        return None


def _unread(fd: int) -> int:
    """Bytes waiting in a pipe, by its read end."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass


def _hung_up(fd: int) -> bool:
    p = select.poll()
    p.register(fd, 0)
    return any(ev & select.POLLHUP for _, ev in p.poll(0))

