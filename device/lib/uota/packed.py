# Compressed file bodies (`zfile`, docs/protocol.md): raw deflate with a window of
# 2**WBITS bytes, inflated as it arrives so the file is never whole in RAM. The output is
# bounded by the size the header declares, so a small body can't inflate without limit.
import io

try:
    import deflate

    WBITS = 12  # a 4 KB window: most of deflate's gain on source files, little heap
except ImportError:  # a firmware built without the deflate module: the host sends plain `file`
    deflate = None
    WBITS = 0


class Body(io.IOBase):
    """The `n` body bytes of one command, read from the channel: the inflater's input.
    The inflater asks for one byte at a time, so this refills from its own buffer."""

    def __init__(self, ch, n, buf):
        self.ch = ch
        self.left = n
        self.buf = buf
        self.mv = memoryview(buf)
        self.i = self.end = 0

    def readinto(self, b):
        if self.i == self.end:
            if not self.left:
                return 0
            self.i = 0
            self.end = self.ch.readinto(self.mv[: min(self.left, len(self.buf))])
            self.left -= self.end
        if len(b) == 1:
            b[0] = self.buf[self.i]
            self.i += 1
            return 1
        n = min(len(b), self.end - self.i)
        b[:n] = self.mv[self.i : self.i + n]
        self.i += n
        return n

    def drain(self):
        # what the inflater didn't consume (a corrupt or padded body): keep the stream in sync
        self.i = self.end = 0
        while self.left:
            self.left -= self.ch.readinto(self.mv[: min(self.left, len(self.buf))])


def inflater(body):
    return deflate.DeflateIO(body, deflate.RAW, WBITS)
