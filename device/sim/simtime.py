# `time` as on the ESP32 port, where ticks_ms()/ticks_us() count from the chip's
# reset (a soft reboot keeps counting: the supervisor passes the reset's
# CLOCK_MONOTONIC microseconds) and every ticks value wraps at 2**30, the
# period of a 32-bit port's small ints (the unix port's is 2**62). ticks_cpu()
# counts CPU cycles at the default 160 MHz. The rest is the VM's own time,
# less clock() (not on the ESP32).
import os
import time as _t

for _k in dir(_t):
    if _k[:2] != "__" and _k != "clock":
        globals()[_k] = getattr(_t, _k)

_PERIOD = 1 << 30
_MASK = _PERIOD - 1
_HALF = _PERIOD >> 1
_base = int(os.getenv("UOTA_SIM_TICKS_BASE") or 0)
_us = _t.ticks_us  # CLOCK_MONOTONIC in the unix port, the supervisor's clock too


def ticks_us():
    return (_us() - _base) & _MASK


def ticks_ms():
    return ((_us() - _base) // 1000) & _MASK


def ticks_cpu():
    return ((_us() - _base) * 160) & _MASK


def ticks_add(ticks, delta):
    # extmod/modtime.c: the result must stay within what ticks_diff can tell
    if not -_HALF < delta < _HALF:
        raise OverflowError("ticks interval overflow")
    return (ticks + delta) & _MASK


def ticks_diff(end, start):
    return ((end - start + _HALF) & _MASK) - _HALF


__name__ = "time"
del _k, __file__
