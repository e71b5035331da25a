# USB serial transport (docs/protocol.md "Serial transport"). The host enters the raw REPL
# and calls serve(): the normal OTA session (or RemoteIO calls) then runs over CRC-checked,
# acknowledged frames on the REPL UART. Bytes outside frames are app print() output, so an
# app thread that keeps printing can't corrupt the protocol.
#
# Self-contained on purpose: on a board without the uota lib the host sends this source and
# uart_inject.py through the raw REPL, then the session modules over the framed link.
# Kept small: its bytecode shares the heap with the app and the session.
import sys
import time
import select
from binascii import crc32

VERSION = 1
DATA, ACK, NAK, POLL, CLOSE = 1, 2, 3, 4, 5
# frame: a5 5a type seq ack len payload crc32(type..payload, LE). 118 bytes of payload make
# 128-byte frames, and the host keeps at most two in flight: a 256-byte UART buffer can't overflow
MAXP = 118
QSIZE = 256  # received payload buffered: the host never has more than 2 frames unacknowledged
WIN = 3  # our frames in flight towards the host (each one is kept here until acknowledged)
IDLE_MS = 10000  # no frame from the host for this long: it is gone, end the session


def read_line(t):
    # one line from `t` (this framed stream, or records over it), without its newline
    out = b""
    while not out.endswith(b"\n"):
        c = t.recv(1)
        if not c:
            raise OSError(104)
        out += c
    return out[:-1]


class UartStream:
    """recv/readinto/write over the framed UART, as uota.channel.Channel expects."""

    def __init__(self, key=0, idle_ms=IDLE_MS):
        # the CRC starts from a per-session key, so frames of an earlier session (still in
        # flight after a reset or a cut) fail the check instead of being taken as ours
        self.key = key
        self.rx = sys.stdin.buffer
        self.tx = sys.stdout.buffer
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.buf = bytearray(MAXP + 10)  # bytes of the frame being parsed
        self.mv = memoryview(self.buf)
        self.n = 0
        # payload received in order, not consumed yet: a fixed buffer, because growing
        # bytes objects fragment a small heap until the session can't allocate
        self.q = bytearray(QSIZE)
        self.qs = self.qe = 0
        self.rseq = 0  # next sequence number expected from the host
        self.tseq = 0  # sequence number of our next DATA frame
        self.unacked = []  # [(seq, frame)] sent, not acknowledged yet
        self.nak = False
        self.closed = False
        self.idle_ms = idle_ms
        self.heard = time.ticks_ms()  # when the host last sent anything

    # -- frames ---------------------------------------------------------------------

    def _fill(self, want):
        # wait for data before every read: a UART stdin may be non-blocking (a short read,
        # or None when empty), and a host that vanished mid-frame must still end the session
        while self.n < want:
            if not self.poll.poll(self.idle_ms):
                # an empty poll may also be a signal (the unix port's GC signals threads)
                if time.ticks_diff(time.ticks_ms(), self.heard) > self.idle_ms:
                    raise OSError(110)
                continue
            self.heard = time.ticks_ms()
            try:
                k = self.rx.readinto(self.mv[self.n : want])
            except OSError as e:
                if e.args[0] not in (4, 11):  # EINTR (a signal), EAGAIN: just wait again
                    raise
                k = 0
            if k:
                self.n += k

    def _shift(self, k):
        # drop k bytes and everything before the next possible sync byte (resynchronise)
        i = self.buf.find(b"\xa5", k, self.n)
        if i < 0:
            i = self.n
        self.buf[: self.n - i] = self.buf[i : self.n]
        self.n -= i

    def _next(self):
        """Read up to the next valid frame; its payload length (the frame is at buf[0:])."""
        b = self.buf
        while True:
            self._fill(2)
            if b[0] != 0xA5 or b[1] != 0x5A:
                self._shift(1)
                continue
            self._fill(6)
            ln = b[5]
            if ln > MAXP:
                self._shift(1)
                continue
            self._fill(10 + ln)
            crc = int.from_bytes(b[6 + ln : 10 + ln], "little")
            if crc32(self.mv[2 : 6 + ln], self.key) & 0xFFFFFFFF == crc:
                return ln
            # a CLOSE with key 0: a new host ending a session it doesn't know (see the host)
            if b[2] == CLOSE and crc32(self.mv[2 : 6 + ln]) & 0xFFFFFFFF == crc:
                return ln
            # damaged: ask for a resend now rather than when the host's timer fires
            if not self.nak:
                self.nak = True
                self._send(NAK)
            self._shift(1)

    def _send(self, t, seq=0, payload=b""):
        h = bytes((t, seq, self.rseq, len(payload))) + payload
        f = b"\xa5\x5a" + h + (crc32(h, self.key) & 0xFFFFFFFF).to_bytes(4, "little")
        self.tx.write(f)
        return f

    def _handle(self):
        ln = self._next()
        b = self.buf
        t, seq, ack = b[2], b[3], b[4]
        if t == DATA and (seq - self.rseq) & 255 == 0 and self._room(ln):
            self.q[self.qe : self.qe + ln] = self.mv[6 : 6 + ln]
            self.qe += ln
            self.rseq = (seq + 1) & 255
            self.nak = False
            t = ACK + 100  # taken: acknowledge below
        self._shift(10 + ln)
        # the host's ack: drop our frames it has (seq before ack, modulo 256)
        while self.unacked and 0 < (ack - self.unacked[0][0]) & 255 <= 128:
            self.unacked.pop(0)
        if t == ACK + 100:
            self._send(ACK)  # credit goes back as soon as the frame is out of the UART buffer
        elif t == DATA:
            d = (seq - self.rseq) & 255
            if d == 0:
                pass  # no room yet: the host resends it after a POLL
            elif d < 128:
                if not self.nak:  # a gap: ask once for a resend from rseq
                    self.nak = True
                    self._send(NAK)
            else:
                self._send(ACK)  # a duplicate: our ack got lost
        elif t == POLL or t == NAK:
            for _, f in self.unacked:  # go back N: resend everything not acknowledged
                self.tx.write(f)
            if t == POLL:
                self._send(NAK)  # tells the host where we are, so it resends what we lack
        elif t == CLOSE:
            self.closed = True

    # -- the stream the session reads -----------------------------------------------

    def _room(self, ln):
        if self.qe + ln > QSIZE:
            n = self.qe - self.qs
            self.q[:n] = self.q[self.qs : self.qe]
            self.qs, self.qe = 0, n
        return self.qe + ln <= QSIZE

    def readinto(self, mv):
        while self.qs == self.qe:
            if self.closed:
                return 0
            self._handle()
        n = min(len(mv), self.qe - self.qs)
        mv[:n] = self.q[self.qs : self.qs + n]
        self.qs += n
        if self.qs == self.qe:
            self.qs = self.qe = 0
        return n

    def recv(self, n):
        b = bytearray(min(n, QSIZE))
        return bytes(b[: self.readinto(b)])

    def write(self, data):
        mv = memoryview(data)
        while mv:
            while len(self.unacked) >= WIN:
                self._handle()
                if self.closed:
                    raise OSError(104)
            f = self._send(DATA, self.tseq, bytes(mv[:MAXP]))
            self.unacked.append((self.tseq, f))
            self.tseq = (self.tseq + 1) & 255
            mv = mv[MAXP:]

    def line(self):
        """One line from the host, without its newline."""
        return read_line(self).decode()

    def close(self, reset=False):
        # let the host acknowledge what we sent (bounded by the idle timeout), then say
        # goodbye; "R" tells it the board resets itself (no soft reset needed)
        try:
            while self.unacked and not self.closed:
                self._handle()
        except OSError:
            pass
        if not self.closed:
            self._drain()
        for _ in range(3):  # redundant: a lost CLOSE would leave the host waiting
            self._send(CLOSE, 0, b"R" if reset else b"")

    def _drain(self, quiet_ms=30, max_ms=1000):
        # The board ends the session (bad input, a reset): frames the host already sent
        # would reach the REPL after us and run there as code, so swallow the line's bytes
        # until it has been quiet a while. (Not after our CLOSE: the host then sends the
        # REPL its Ctrl-B / Ctrl-D.)
        end = time.ticks_add(time.ticks_ms(), max_ms)
        while time.ticks_diff(end, time.ticks_ms()) > 0 and self.poll.poll(quiet_ms):
            try:
                self.rx.readinto(self.mv[:1])
            except OSError:
                pass


def serve(key=0, inject=None):
    """Run one host session on the UART; called by the host through the raw REPL (with
    `inject` from uart_inject.py on a board without the uota lib)."""
    import micropython
    import gc

    micropython.kbd_intr(-1)  # 0x03 is data now, not a KeyboardInterrupt
    s = UartStream(key)
    s._send(ACK)  # "ready": 0x03 is data from now on, so the host may start sending frames
    guard = sys.modules.get("uota.boot_guard")  # absent on a board without the uota lib
    if guard:
        guard.host_stopped_boot()
    reset = False
    try:
        cmd, _, mode = s.line().partition(" ")
        if cmd == "mod":  # a board without the uota lib: the host sends the session modules
            mode = inject(s, mode)
        gc.collect()
        if mode == "ota":
            from uota.session import Session


            reset = Session(s).run()
        elif mode == "rio":
            from uota.transports.uart_rio import run

            run(s)
    except OSError:
        pass  # the host went away or closed the session
    finally:
        s.close(reset)
        if not reset:
            micropython.kbd_intr(3)
    if reset:
        import machine
        import time

        # Ctrl-C stays data until the reset: a host that starts its next session at once
        # must not stop this board short of rebooting into what it just committed
        time.sleep_ms(50)
        machine.reset()
