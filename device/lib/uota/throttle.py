# Online password guessing, slowed per source address and shared by the OTA and RemoteIO
# ports (docs/protocol.md "Authentication"). Each wrong guess from a source doubles the time
# before that source's next guess is checked (300 ms up to CAP_MS); quiet time forgets
# failures again. The table is small and bounded (SOURCES entries); a source that fails
# while it is full, and every source not in it, shares one overflow entry: more addresses
# than the table holds are slowed together, not forgotten. An address that never failed
# waits at most on the overflow's pause, and a right guess from a slowed source is checked
# once the pause ends, so the owner waits at most CAP_MS per handshake line.
import time

BASE_MS = 300
CAP_MS = 5000
FORGET_MS = 10000  # one failure forgotten per this much time without a failure
SOURCES = 8

_table = {}  # source -> [failures, ticks_ms of the last failure]
_overflow = [0, 0]  # every source not in _table


def _delay(fails):
    return min(BASE_MS << min(fails - 1, 8), CAP_MS) if fails > 0 else 0


def _entry(src):
    return _table.get(src, _overflow)


def wait_ms(src):
    """How long before a guess from `src` may be checked (0: now)."""
    e = _entry(src)
    if not e[0]:
        return 0
    since = time.ticks_diff(time.ticks_ms(), e[1])
    left = _delay(e[0]) - since
    return left if since >= 0 and left > 0 else 0  # since < 0: ticks wrapped, long ago


def _decayed(e, now):
    quiet = time.ticks_diff(now, e[1])
    return max(e[0] - quiet // FORGET_MS, 0) if quiet >= 0 else 0


def record(src):
    """A wrong guess from `src`; returns the pause before its next guess (ms)."""
    now = time.ticks_ms()
    e = _table.get(src)
    if e is None:
        if len(_table) >= SOURCES:
            # a source whose failures are all forgotten makes room; none: the overflow pays
            for k in list(_table):
                if not _decayed(_table[k], now):
                    del _table[k]
        if len(_table) < SOURCES:
            e = _table[src] = [0, now]
        else:
            e = _overflow
    e[0] = _decayed(e, now) + 1
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
