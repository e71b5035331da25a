# The CPU time of the VM's threads, read from /proc without allocating (the main thread
# may wait for the GIL with the heap locked): simgil's starvation limit counts the time the
# GIL's holder actually ran, not the wall clock a loaded machine stretches.
# USER_HZ: /proc counts CPU time in 10 ms ticks, and the others' time is a difference of
# two counts, so it is off by up to a tick or two: "more than simgil.STARVE_MS" is 3 ticks counted
TICK_MS = 10


def _open_stat(path):
    # now, while the host's filesystem is still mounted (firmware.py mounts the flash
    # over it later); a procfs file reads afresh from offset 0
    try:
        return open(path, "rb")
    except Exception:
        return None


_stat_all = _open_stat("/proc/self/stat")  # the whole process
_stat_main = _open_stat("/proc/thread-self/stat")  # this thread: the main one
_sbuf = bytearray(1024)


def _cpu(f):
    # utime + stime (fields 14 and 15) in ticks; -1 if unknown. No allocation: the main
    # thread may wait for G with the heap locked.
    if f is None:
        return -1
    try:
        f.seek(0)
        n = f.readinto(_sbuf)
    except Exception:
        return -1
    i = n - 1
    while i > 0 and _sbuf[i] != 41:  # the ")" that ends the command name (field 2)
        i -= 1
    field = 2
    v = 0
    total = 0
    while i + 1 < n:
        i += 1
        c = _sbuf[i]
        if c == 32:
            if field == 14:
                total = v
            elif field == 15:
                return total + v
            field += 1
            v = 0
        elif 48 <= c <= 57:
            v = v * 10 + c - 48
    return -1


def others():
    # CPU ticks used by the threads other than the main one (G's holder among them)
    a = _cpu(_stat_all)
    m = _cpu(_stat_main)
    return -1 if a < 0 or m < 0 else a - m
