"""The framed, acknowledged byte stream over a board's UART (docs/protocol.md "Serial transport").

The host half of `device/lib/uota/transports/uart.py`: CRC32-checked frames, go-back-N
retransmission, and at most two 128-byte frames in flight towards the board (its UART
receive buffer is 256 bytes). Bytes outside frames are the board's print() output.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import serial

from uota_core.link import DEFAULT_TIMEOUT, BufferedLink, LinkClosed, LinkError, LinkTimeout

SYNC = b"\xa5\x5a"
DATA, ACK, NAK, POLL, CLOSE = 1, 2, 3, 4, 5
MAXP = 118  # payload bytes per frame: 10 bytes of framing make 128-byte frames
WINDOW = 2  # frames in flight towards the board: 2 x 128 = its 256-byte receive buffer
RTO = 0.15  # no answer for this long: ask the board where it is (POLL), backing off to RTO_MAX
RTO_MAX = 2.0
CLOSE_RESEND = 0.5  # an unanswered CLOSE goes again after this long

PrintSink = Callable[[bytes], None]


def frame(t: int, seq: int, ack: int, payload: bytes = b"", key: int = 0) -> bytes:
    """One frame; its CRC32 starts from the session `key` (0 reaches any session: CLOSE only)."""
    head = bytes((t, seq, ack, len(payload))) + payload
    return SYNC + head + zlib.crc32(head, key).to_bytes(4, "little")


REPL_KEYS = frozenset(b"\x01\x02\x03\x04")  # Ctrl-A to Ctrl-D: they act in the raw REPL


def close_frame(ack: int, key: int = 0) -> bytes:
    """A CLOSE without Ctrl-A to Ctrl-D in it. A CLOSE can reach a board that has already
    left the session (a resend, or one to end a session it may not run): there its bytes
    are typed into the raw REPL, where Ctrl-D would run them. Seq means nothing in a CLOSE
    and the board drops nothing it needs on its ack while closing, so both may vary."""
    for seq in range(256):
        for a in (ack, *range(256)):
            f = frame(CLOSE, seq, a, key=key)
            if not REPL_KEYS.intersection(f):
                return f
    raise AssertionError("unreachable: most (seq, ack) pairs give a clean frame")


def _ahead(a: int, b: int) -> int:
    """How far sequence number `a` is past `b`, modulo 256."""
    return (a - b) & 255


class FrameParser:
    """Splits received bytes into valid frames and everything else (print output)."""

    def __init__(self, key: int = 0) -> None:
        self.key = key
        self.buf = bytearray()
        self.damaged = 0  # frames that failed their CRC

    def feed(self, data: bytes) -> tuple[list[tuple[int, int, int, bytes]], bytes]:
        self.buf += data
        frames: list[tuple[int, int, int, bytes]] = []
        other = bytearray()
        b = self.buf
        while True:
            i = b.find(SYNC)
            if i < 0:
                keep = 1 if b.endswith(SYNC[:1]) else 0  # maybe the first half of a sync
                other += b[: len(b) - keep]
                del b[: len(b) - keep]
                break
            other += b[:i]
            del b[:i]
            if len(b) < 6:
                break
            n = b[5]
            if n > MAXP:
                other += b[:1]
                del b[:1]
                continue
            if len(b) < 10 + n:
                break
            if zlib.crc32(b[2:6 + n], self.key) == int.from_bytes(b[6 + n:10 + n], "little"):
                frames.append((b[2], b[3], b[4], bytes(b[6:6 + n])))
                del b[:10 + n]
            else:
                other += b[:1]  # damaged frame (or print text that looked like one): resync
                del b[:1]
                self.damaged += 1
        return frames, bytes(other)


    def stale(self) -> tuple[list[tuple[int, int, int, bytes]], bytes]:
        """Give up on a half-received frame: the board writes a frame at once, so one that
        stays incomplete had a damaged length byte. Resynchronise on the bytes after its start."""
        if not self.buf:
            return [], b""
        first = bytes(self.buf[:1])
        rest = bytes(self.buf[1:])
        self.buf.clear()
        frames, other = self.feed(rest)
        return frames, first + other


def port_gone(port: str, e: BaseException) -> str:
    """The one line for a serial port that failed under us (the board unplugged)."""
    return (f"serial port {port} went away ({e.__class__.__name__}): was the board unplugged? "
            "Plug it back in and run the command again (a push resumes from the files already staged)")


class SerialLink(BufferedLink):
    """A `Link` over the board's UART once the device side (`serve()`) is running."""

    slow = True

    def __init__(self, ser: serial.Serial, name: str, timeout: float = DEFAULT_TIMEOUT,
                 on_print: PrintSink | None = None, pending: bytes = b"", key: int = 0) -> None:
        super().__init__(name, timeout)
        self.ser = ser
        self.on_print = on_print
        self.key = key
        self.parser = FrameParser(key)
        self.inq = bytearray()  # payload received in order, not read yet
        self.tseq = 0
        self.rseq = 0
        self.unacked: list[tuple[int, bytes]] = []
        self.nak_sent = False
        self.peer_closed = False
        self.peer_resets = False
        self.dead = False
        self.gone = ""  # why the port itself failed (unplugged): it is not touched again
        self.closing = False  # our CLOSE is out: send nothing else but CLOSE again (see _write)
        self.heard = False  # any valid frame from the board yet
        self._damaged_seen = 0
        self.retransmits = 0
        self.recent_output = bytearray()  # last print output, quoted in errors
        self._rto = RTO
        self._poll_at = time.monotonic() + RTO
        if pending:  # what the raw REPL client read past its "OK"
            self._feed(pending)

    # -- receiving --------------------------------------------------------------------

    def _feed(self, data: bytes, stale: bool = False) -> None:
        frames, other = self.parser.stale() if stale else self.parser.feed(data)
        if other:
            self.recent_output += other
            del self.recent_output[:-400]
            if self.on_print:
                self.on_print(other)
        for t, seq, ack, payload in frames:
            self._on_frame(t, seq, ack, payload)
        if self.parser.damaged != self._damaged_seen:
            # a frame of the board's was damaged: POLL at once, it resends what we lack
            self._damaged_seen = self.parser.damaged
            self._poll_at = min(self._poll_at, time.monotonic() + 0.02)

    def wait_ready(self, timeout: float) -> None:
        """Wait for the board's first frame: until then its UART may still take a 0x03
        byte in our frames as Ctrl-C (it disables that as its first step)."""
        deadline = time.monotonic() + timeout
        while not self.heard:
            if time.monotonic() >= deadline:
                raise self._silence("the board did not start the serial session")
            self._pump(deadline)

    def _on_frame(self, t: int, seq: int, ack: int, payload: bytes) -> None:
        self.heard = True
        before = len(self.unacked)
        while self.unacked and 0 < _ahead(ack, self.unacked[0][0]) <= 128:
            self.unacked.pop(0)
        if len(self.unacked) < before:
            self._progress()
        if t == DATA:
            d = _ahead(seq, self.rseq)
            if d == 0:
                self.inq += payload
                self.rseq = (seq + 1) & 255
                self.nak_sent = False
                self._progress()
                self._write(frame(ACK, 0, self.rseq, key=self.key))
            elif d < 128:
                if not self.nak_sent:  # a gap: ask once for a resend
                    self.nak_sent = True
                    self._write(frame(NAK, 0, self.rseq, key=self.key))
            else:
                self._write(frame(ACK, 0, self.rseq, key=self.key))  # a duplicate: our ack got lost
        elif t == NAK:
            self._resend()
        elif t == CLOSE:
            self.peer_closed = True
            self.peer_resets = payload == b"R"

    def _progress(self) -> None:
        self._rto = RTO
        self._poll_at = time.monotonic() + RTO

    def _resend(self) -> None:
        for _, f in self.unacked:
            self.retransmits += 1
            self._write(f)

    def _port_failed(self, e: BaseException) -> LinkError:
        """The port itself failed (the board unplugged, the adapter reset): one line that
        names it; the link is dead and nothing, not even the abort, touches the port again."""
        self.dead = True
        self.gone = port_gone(getattr(self.ser, "port", None) or self.name, e)
        return LinkError(self.gone)

    def _pump(self, deadline: float) -> None:
        """Read what arrives until `deadline` (at most until the next poll) and handle it."""
        if self.gone:
            raise LinkError(self.gone)
        if self.dead:
            raise LinkTimeout(f"{self.name}: the link already timed out")
        now = time.monotonic()
        if now >= self._poll_at:
            # nothing heard for a while: a frame or an ack was lost, or the board is busy
            # (hashing, committing); POLL makes it resend and tell us what it is missing
            # the zeros first complete a frame the board may be stuck half-reading (a
            # dropped byte leaves it waiting for bytes that never come)
            self._write(bytes(MAXP + 10) + frame(POLL, 0, self.rseq, key=self.key))
            self._feed(b"", stale=True)
            self._rto = min(self._rto * 2, RTO_MAX)
            self._poll_at = now + self._rto
        try:
            self.ser.timeout = max(0.0, min(deadline, self._poll_at) - now)  # reconfigures the port
            data = self.ser.read(max(1, self.ser.in_waiting))
        except (serial.SerialException, OSError) as e:
            raise self._port_failed(e) from None
        if data:
            self._feed(data)

    def _write(self, data: bytes, close: bool = False) -> None:
        if self.closing and not close:
            # our CLOSE is out and the board may leave the session at any byte: whatever we
            # send then reaches its raw REPL, where an ACK is Ctrl-B, a POLL Ctrl-D and a
            # resent DATA frame text to run, so only CLOSE goes again
            return
        if self.gone:
            raise LinkError(self.gone)
        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as e:
            raise self._port_failed(e) from None

    def _said(self) -> str:
        said = bytes(self.recent_output).decode(errors="replace").strip()
        return f"; the board printed: {said[-200:]!r}" if said else ""

    def _ended(self) -> str:
        hint = " (out of memory: retry; if it persists, free heap in the app)" if b"MemoryError" in \
            self.recent_output else ""
        return f"{self.name}: the board ended the session{hint}{self._said()}"

    def _silence(self, what: str) -> LinkTimeout:
        self.dead = True  # later calls fail at once instead of waiting out their own deadlines
        return LinkTimeout(f"{self.name}: {what}{self._said()}: check the cable, then retry (a push resumes "
                           "from the files already staged)")

    # -- BufferedLink -----------------------------------------------------------------

    def _recv(self, max_bytes: int, deadline: float) -> bytes:
        # the caller's deadline allows for a busy board (hashing, committing); but one that
        # doesn't even take our data for `timeout` seconds is gone, not busy
        stalled = time.monotonic() + self.timeout
        sent = self.tseq, len(self.unacked)
        while not self.inq:
            if self.peer_closed:
                if self.peer_resets:
                    return b""  # the normal end after end_ota/reset
                raise LinkClosed(self._ended())
            now = time.monotonic()
            if (self.tseq, len(self.unacked)) != sent:
                sent, stalled = (self.tseq, len(self.unacked)), now + self.timeout
            if now >= deadline or (self.unacked and now >= stalled):
                raise self._silence("the board did not answer in time")
            self._pump(min(deadline, stalled) if self.unacked else deadline)
        data = bytes(self.inq[:max_bytes])
        del self.inq[:max_bytes]
        return data

    def _send(self, data: bytes) -> None:
        if self.gone:
            raise LinkError(self.gone)
        if self.dead:
            # nothing more goes out on a failed link: a late `abort` reaching the board
            # once the line recovers would throw away what it staged (resume needs it)
            raise LinkTimeout(f"{self.name}: the link already timed out")
        view = memoryview(data)
        while view:
            deadline = time.monotonic() + self.timeout  # per frame: as long as acks keep coming
            while len(self.unacked) >= WINDOW:
                if self.peer_closed:
                    raise LinkClosed(self._ended())
                if time.monotonic() >= deadline:
                    raise self._silence(f"the board stopped acknowledging data for {self.timeout:.0f}s")
                self._pump(deadline)
            f = frame(DATA, self.tseq, self.rseq, bytes(view[:MAXP]), key=self.key)
            self.unacked.append((self.tseq, f))
            self.tseq = (self.tseq + 1) & 255
            self._write(f)
            view = view[MAXP:]

    def finish(self, timeout: float = 2.0) -> bool:
        """End the device session; True once the board said goodbye (within `timeout`)."""
        if self.gone:
            return False  # nobody to say goodbye to
        deadline = time.monotonic() + timeout
        self.closing = True
        try:
            while not self.peer_closed and time.monotonic() < deadline:
                # one CLOSE at a time, again only when unanswered: a spare one reaching a board
                # that has left the session is typed into its REPL, and a frame's bytes can be
                # Ctrl-B or Ctrl-D there (the app would then not be started again)
                self._write(close_frame(self.rseq, self.key), close=True)
                if self.dead:
                    return False
                resend_at = min(deadline, time.monotonic() + CLOSE_RESEND)
                while not self.peer_closed and time.monotonic() < resend_at:
                    self._pump(resend_at)
        except LinkError:
            return False
        return self.peer_closed

    def close(self) -> None:
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass
