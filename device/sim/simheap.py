# `gc` with a 32-bit ESP32's numbers. The VM's heap is HEAP_SCALE x the board's
# nominal heap plus the emulation's own (uota_core/sim/vm.py); what it has free
# is reported divided by the scale, and what is allocated as the rest of the
# nominal heap, so free + alloc is the board's heap as on a board.
# micropython.mem_info() still prints the VM's raw 64-bit figures.
import os
import gc as _gc
from simgil import copy_module

_HEAP = int(os.getenv("UOTA_SIM_HEAP") or 0)
_PCT = int(os.getenv("UOTA_SIM_HEAP_SCALE_PCT") or 100)


def mem_free():
    f = _gc.mem_free() * 100 // _PCT
    return min(f, _HEAP) if _HEAP else f


def mem_alloc():
    return _HEAP - mem_free() if _HEAP else _gc.mem_alloc()


def threshold(amount=None):
    # bytes allocated between automatic collections, in board bytes
    if amount is None:
        t = _gc.threshold()
        return t if t < 0 else t * 100 // _PCT
    _gc.threshold(amount if amount < 0 else amount * _PCT // 100)


def install(mods):
    mods["gc"] = copy_module("gc", _gc, {"mem_free": mem_free, "mem_alloc": mem_alloc, "threshold": threshold})
    mods.pop("simheap", None)
