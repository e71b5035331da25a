# `os` as on ESP32: the unix port's os without its host-only functions, plus
# uname() and sync().
import os as _os
import sys
from simio import term as _term

for _k in dir(_os):
    if _k[:2] != "__" and _k not in ("system", "getenv", "putenv", "unsetenv", "VfsPosix"):
        globals()[_k] = getattr(_os, _k)

_v = sys.implementation.version
_un = (
    "esp32",
    "esp32",
    "%d.%d.%d" % _v[:3],
    "v%d.%d.%d on %s" % (_v[0], _v[1], _v[2], sys.version.split(" on ")[-1]),
    "Generic ESP32 module with ESP32",
)


_U = []


def uname():
    # the result type is made on first use: no RAM spent if nobody asks
    if not _U:

        class uname_result(tuple):
            sysname = property(lambda s: s[0])
            nodename = property(lambda s: s[1])
            release = property(lambda s: s[2])
            version = property(lambda s: s[3])
            machine = property(lambda s: s[4])

            def __repr__(self):
                return "(sysname=%r, nodename=%r, release=%r, version=%r, machine=%r)" % tuple(self)

            __str__ = __repr__

        _U.append(uname_result(_un))
    return _U[0]


def sync():
    pass


def dupterm(stream, index=0):
    # Mirror the REPL's output to `stream` and read its input too; returns the
    # stream it replaces. The ESP32 port has one slot.
    if index != 0:
        raise ValueError("invalid dupterm index")
    if stream is not None and not (hasattr(stream, "write") and hasattr(stream, "readinto")):
        raise OSError("stream operation not supported")
    old = _term[0]
    _term[0] = stream
    return old


__name__ = "os"
del _k, _v, __file__
