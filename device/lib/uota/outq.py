# The output queue of one RemoteIO client: a ring in one buffer allocated up front, so a
# client's queued replies never grow a block by reallocation (on a heap an allocating app
# keeps fragmented, a contiguous 4 KB block was not there: MemoryError in the event loop).
# A frame bigger than the free space waits whole in `big` and moves in as the client reads;
# the client's further calls wait behind it (back-pressure: its input stays unread).


class OutQ:
    def __init__(self, size):
        self.buf = bytearray(size)
        self.head = 0  # next byte to send
        self.n = 0  # bytes queued in the ring
        self.big = None  # a frame (memoryview) not yet moved in, from offset `bo`
        self.bo = 0

    def pending(self):
        """Bytes queued, in the ring and waiting outside it."""
        return self.n + (len(self.big) - self.bo if self.big is not None else 0)

    def full(self, limit):
        return self.big is not None or self.n >= limit

    def room(self, k):
        """True if `k` more bytes fit in the ring now (and nothing waits outside it)."""
        return self.big is None and self.n + k <= len(self.buf)

    def put(self, data):
        """Queue `data` (bytes) after everything queued; what doesn't fit waits in `big`."""
        if self.big is not None:  # rare: keep the order, at the cost of one copy
            data = bytes(self.big[self.bo :]) + data
            self.big = None
        mv = memoryview(data)
        k = self._copy(mv)
        if k < len(mv):
            self.big, self.bo = mv, k

    def _copy(self, mv):
        size = len(self.buf)
        done = 0
        while done < len(mv) and self.n < size:
            tail = (self.head + self.n) % size
            k = min(len(mv) - done, size - self.n, size - tail)
            self.buf[tail : tail + k] = mv[done : done + k]
            self.n += k
            done += k
        return done

    def peek(self, most):
        """The next up-to-`most` queued bytes that lie contiguous in the ring."""
        k = min(most, self.n, len(self.buf) - self.head)
        return memoryview(self.buf)[self.head : self.head + k]

    def take(self, k):
        """`k` bytes of peek() went out: free them, and move waiting bytes in."""
        self.n -= k
        self.head = 0 if not self.n else (self.head + k) % len(self.buf)
        if self.big is not None:
            self.bo += self._copy(self.big[self.bo :])
            if self.bo >= len(self.big):
                self.big = None

    def grow(self, size):
        """A bigger ring (a client that just authenticated), the queued bytes kept in order."""
        buf = bytearray(size)
        k = 0
        while self.n:
            mv = self.peek(self.n)
            buf[k : k + len(mv)] = mv
            k += len(mv)
            self.n -= len(mv)
            self.head = (self.head + len(mv)) % len(self.buf)
        self.buf, self.head, self.n = buf, 0, k
        self.take(0)  # what waited outside the old ring moves in
