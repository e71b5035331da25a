# Buffered line/binary reader over any byte stream with
#   recv(n)      -> 1..n bytes that have arrived (b'' at EOF)
#   readinto(mv) -> fills mv completely (MicroPython streams never read short) unless EOF
#   write(data)
# raising OSError on timeout. The OTA session only talks to a Channel, so TCP, UART and
# BLE all run the same session code.


class Closed(Exception):
    pass


class Channel:
    def __init__(self, raw, bufsize=512):
        self.raw = raw
        self.buf = bytearray(bufsize)
        self.mv = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self.last_len = 0
        self.body = None  # bytes of the current command's body not yet consumed (None: no body)

    def _fill(self):
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            # compact so the free space is at the end
            n = self.end - self.start
            self.buf[:n] = self.buf[self.start : self.end]
            self.start, self.end = 0, n
        # timeouts and resets are OSErrors from the transport; the session must not
        # mistake them for filesystem errors, so they all become Closed
        try:
            data = self.raw.recv(len(self.buf) - self.end)
        except OSError:
            raise Closed()
        if not data:
            raise Closed()
        n = len(data)
        self.buf[self.end : self.end + n] = data
        self.end += n

    def readline(self):
        """One line without its line ending; raises ValueError past the buffer size or
        if it isn't UTF-8 (either way where the stream goes on is unknown)."""
        scanned = self.start
        while True:
            i = self.buf.find(b"\n", scanned, self.end)
            if i >= 0:
                line = bytes(self.mv[self.start : i])
                self.last_len = i + 1 - self.start  # bytes consumed, with the line ending
                if self.body is not None:
                    self.body -= self.last_len
                self.start = i + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                try:
                    return line.decode()
                except UnicodeError:
                    raise ValueError("line is not UTF-8")
            if self.start == 0 and self.end == len(self.buf):
                raise ValueError("line too long")
            seen = self.end - self.start  # _fill() may move the buffered bytes
            self._fill()
            scanned = self.start + seen

    def peek(self):
        """The next byte, without consuming it."""
        if self.start == self.end:
            self._fill()
        return self.buf[self.start]

    def readinto(self, mv):
        """Up to len(mv) bytes, at least one; never more than the caller still expects."""
        if self.start == self.end:
            # nothing buffered: read straight into the caller's buffer (no copy)
            try:
                n = self.raw.readinto(mv)
            except OSError:
                raise Closed()
            if not n:
                raise Closed()
        else:
            n = min(len(mv), self.end - self.start)
            mv[:n] = self.mv[self.start : self.start + n]
            self.start += n
        if self.body is not None:
            self.body -= n
        return n

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.raw.write(data)
        except OSError:
            raise Closed()

    def reply(self, line):
        self.write(line + "\n")
