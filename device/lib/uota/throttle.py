# Online password guessing, slowed per source address and shared by the OTA and RemoteIO
# ports (docs/protocol.md "Authentication"). Each wrong guess from a source doubles the time
# before that source's next guess is checked (300 ms up to CAP_MS); quiet time forgets
# failures again. Other sources are not slowed, and a right guess from a slowed source is
# checked once the pause ends, so the owner waits at most CAP_MS. The table is small and
# bounded: the source that failed longest ago makes room.
import time

BASE_MS = 300
CAP_MS = 5000
FORGET_MS = 10000  # one failure forgotten per this much time without a failure
SOURCES = 8

_table = {}  # source -> [failures, ticks_ms of the last failure]


def _delay(fails):
    return min(BASE_MS << min(fails - 1, 8), CAP_MS) if fails > 0 else 0


def wait_ms(src):
    """How long before a guess from `src` may be checked (0: now)."""
    e = _table.get(src)
    if e is None:
        return 0
    since = time.ticks_diff(time.ticks_ms(), e[1])
    left = _delay(e[0]) - since
    return left if since >= 0 and left > 0 else 0  # since < 0: ticks wrapped, long ago


def record(src):
    """A wrong guess from `src`; returns the pause before its next guess (ms)."""
    now = time.ticks_ms()
    e = _table.get(src)
    if e is None:
        if len(_table) >= SOURCES:
            oldest = None
            for k in _table:
                if oldest is None or time.ticks_diff(_table[k][1], _table[oldest][1]) < 0:
                    oldest = k
            del _table[oldest]
        e = _table[src] = [0, now]
    quiet = time.ticks_diff(now, e[1])
    e[0] = max(e[0] - quiet // FORGET_MS, 0) if quiet >= 0 else 0
    e[0] += 1
    e[1] = now
    return _delay(e[0])


def failed(raw):
    """The "auth failed" site of a session over `raw`: a stream that names its source
    (`peer`) is held back by its transport until wait_ms() allows; any other link (the
    UART: one physical host) waits here."""
    src = getattr(raw, "peer", None)
    ms = record(src)
    if src is None:
        time.sleep_ms(ms)
