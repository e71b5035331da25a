# Threads as under the ESP32 port's GIL (MICROPY_PY_THREAD_GIL). The unix VM
# has none: two threads mutating one list, or one changing sys.path while the
# other imports, crash it. Here every thread runs Python code only while it
# holds one lock, G; every blocking call the emulation provides (time.sleep*,
# select/poll, socket waits, UART reads and writes, _thread lock waits,
# machine.idle/lightsleep) releases it while it waits, as the port's C code
# does with MP_THREAD_GIL_EXIT/ENTER. The port also hands the GIL over every
# 32 bytecode jumps; Python can't hook bytecode, so a ticker thread schedules
# a callback on the main thread every 10 ms (a FreeRTOS tick) while another
# thread waits, and the callback hands G over. Other threads switch only at
# blocking calls: see docs/virtual-board.md for what that leaves different.
#
# A KeyboardInterrupt (SIGINT from the supervisor, to the main thread only) is
# raised by the unix port's signal handler itself: at any instruction, out of
# any wait (lock waits included), even inside a C call. So the main thread's
# enter() is written to hold G whenever it returns or raises; a Ctrl-C between
# taking or freeing G and recording it leaves G held by nobody, which the main
# thread's next wait for G finds and takes back (_acq_main).
import io
import time as _time
import select as _select
import _thread as _th
import micropython as _upy
import simcpu  # first: it opens /proc before the flash is mounted over the host's files
import simio
import simrepl

_G = _th.allocate_lock()  # the GIL
_M = _th.allocate_lock()  # guards _n between non-main threads
_T = _th.allocate_lock()  # a waiter that got G after a hand-over releases it
_T.acquire()
# Held while firmware code that is C on a board runs (VFS, GPIO file): a hand-over
# inside it would let another thread into LittleFS, or into the C import
# that walks sys.path, in the middle of the operation.
C = _th.allocate_lock()
_ident = _th.get_ident
MAIN = _ident()
_own = [0]  # ident of the thread holding G
_n = [0]  # non-main threads waiting for G
_want = [0]  # the main thread waits on _T for a hand-over
_mw = [0]  # the main thread waits for G
_ticker = []


def _noop():
    pass


STARVE_MS = 20  # the main thread waits until G's holder has run this long, then runs without it
STARVE_WALL_MS = 2000  # or this long in all (the CPU time can't be read)
_TICK_MS = simcpu.TICK_MS
_others_cpu = simcpu.others


_MINE = ([0], _own)  # indexed by whether G was got: where MAIN is written


def _acq_main():
    # The port hands the GIL over every 32 bytecode jumps; here a thread that spins
    # in pure Python (an app's busy loop) never gives G up. Rather than let it stop
    # the OTA loop and the REPL for good, the main thread then runs beside it
    # without G, as the VM did before the emulation: that case keeps the old risk
    # (docs/virtual-board.md), every other one is safe. A lock wait has no timeout
    # in this port, hence the polling.
    if _own[0] != MAIN:
        _mw[0] = 1
        waited = 0
        # taking G and recording it as ours in one statement keeps the window for a Ctrl-C
        # between the two small; what still lands there is healed below
        _MINE[_G.acquire(0)][0] = MAIN
        orphan = 1
        # Counted in the holder's CPU time, not the wall clock's: on a loaded machine a
        # holder that does not spin (an app importing at boot) can go unscheduled for
        # 20 ms, and two threads then ran without a GIL (docs/reliability.md). Read only
        # once G is found taken: every blocking call comes here, each UART byte read too.
        cpu0 = -2
        while _own[0] != MAIN:
            if cpu0 == -2:
                cpu0 = _others_cpu()
            orphan &= _own[0] == 0
            if waited >= STARVE_MS and (orphan or cpu0 < 0 or waited >= STARVE_WALL_MS
                                        or (_others_cpu() - cpu0) * _TICK_MS > STARVE_MS):
                _mw[0] = 0
                # G held by no thread all along: the unix port raises a Ctrl-C from its
                # signal handler, at any instruction, so one can land between a lock call
                # and the line that records it (here, or in _release). Nobody else will
                # release it: it is ours.
                _OWN[orphan]()
                return
            _time.sleep_ms(1)
            waited += 1
            _MINE[_G.acquire(0)][0] = MAIN
        _mw[0] = 0


def _adopt():
    _own[0] = MAIN


_OWN = (_noop, _adopt)


def _enter_main():
    # Holds G when it returns or raises: an interrupt that ends the wait
    # early is raised again once G is ours. A loop, not a retry by recursion:
    # Ctrl-Cs coming faster than the wait ends overflowed the stack.
    caught = None
    while True:
        try:
            _acq_main()
            break
        except BaseException as e:
            caught = e
    if caught is not None:
        raise caught


def _enter_other():
    with _M:
        _n[0] += 1
    _G.acquire()
    _own[0] = _ident()
    with _M:
        _n[0] -= 1
    if _want[0]:
        _want[0] = 0
        try:
            _T.release()
        except RuntimeError:  # the main thread stopped waiting (an interrupt)
            pass


_ENTER = (_enter_other, _enter_main)


def enter():
    # a tuple index, not an `if`: no jump before G is held
    _ENTER[_ident() == MAIN]()


def _release():
    _own[0] = 0
    try:
        _G.release()
    except RuntimeError:
        # recorded as ours but not taken (a Ctrl-C between a lock call and the line that
        # records it): raising here would fail every blocking call from now on
        pass


_EXIT = (_noop, _release)


def exit():
    # only a holder releases: a thread that lost G to an interrupt must not
    # release it under the thread that holds it
    _EXIT[_own[0] == _ident()]()


def blocking(f, *a):
    # f(*a) with G released: for C calls that wait
    exit()
    try:
        r = f(*a)
    finally:
        enter()
    return r


def released(f):
    return lambda *a: blocking(f, *a)


def _handoff():
    # main thread: let a waiting thread run, then wait for G again
    _want[0] = 1
    exit()
    try:
        _T.acquire()
    finally:
        enter()


def _pass_on():
    # another thread: no interrupt reaches it, so it may simply sleep until a
    # waiter took G (bounded: the waiter may have been descheduled)
    exit()
    try:
        for _ in range(40):
            _time.sleep_us(50)
            if _own[0]:
                break
    finally:
        enter()


def yield_():
    # a print: hand G to a thread that waits for it, as the port's GIL would soon
    if _ident() == MAIN:
        if _own[0] == MAIN and _n[0] and not C.locked():
            _handoff()
    elif _mw[0] or _n[0]:
        _pass_on()


_YIELD = (_noop, _handoff)


_owe = [0]  # a Ctrl-C was caught in a tick: the ticker has it sent again


def _tick(_):
    # Scheduled on the main thread, between two bytecodes: maybe of this module,
    # in a wait for G, so check that G is ours.
    try:
        _YIELD[_own[0] == MAIN and _n[0] > 0 and not C.locked()]()
    except KeyboardInterrupt:
        # Raised here it would be printed and lost. The ticker thread asks the
        # supervisor for the SIGINT again, once this callback has returned.
        _owe[0] = 1
    except Exception:
        pass


def _tick_loop(sleep_ms, schedule, n, tick, owe, err):
    # Runs without G: touches nothing shared but n and owe.
    while True:
        sleep_ms(10)
        if owe[0]:
            owe[0] = 0
            try:
                # to the main thread (tgkill: a kill of the process could land in a
                # thread being started and crash the VM)
                err.write(b"\x1eUOTA sigint\n")
            except Exception:
                pass
            # no tick meanwhile, so the SIGINT lands in the interrupted code
            sleep_ms(200)
        elif n[0]:
            try:
                schedule(tick, None)
            except Exception:  # the queue is full, or the heap locked (heal_heap)
                pass


# ---- the modules device code sees ------------------------------------------------


class LockType:
    # _thread's lock; a wait releases G
    def __init__(self):
        self._l = _th.allocate_lock()

    def acquire(self, waitflag=1, timeout=-1):
        return _ACQ[self._l.acquire(0)](self, waitflag)

    def _wait(self, waitflag):
        if not waitflag:
            return False
        got = [False]
        try:
            exit()
            try:
                got[0] = self._l.acquire()
            finally:
                enter()
        except:  # noqa: E722  an interrupt after the lock was got: give it back
            if got[0]:
                self._l.release()
            raise
        return True

    def _got(self, waitflag):
        return True

    def release(self):
        self._l.release()

    def locked(self):
        return self._l.locked()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *a):
        self._l.release()


_ACQ = (LockType._wait, LockType._got)


def _boot(f, args, kw):
    enter()
    try:
        f(*args, **kw)
    except SystemExit:
        pass
    except BaseException as e:
        # modthread.c prints this on the board's console
        simio.print("Unhandled exception in thread started by %r" % (f,))
        simio.print_exception(e)
    finally:
        exit()


class _Thread:
    LockType = LockType
    allocate_lock = LockType
    get_ident = staticmethod(_ident)
    stack_size = staticmethod(_th.stack_size)
    exit = staticmethod(_th.exit)

    @staticmethod
    def start_new_thread(f, args, kw=None):
        if not _ticker:
            a = (_time.sleep_ms, _upy.schedule, _n, _tick, _owe, simio._err)
            _ticker.append(_th.start_new_thread(_tick_loop, a))
        return _th.start_new_thread(_boot, (f, args, kw or {}))

    def __repr__(self):
        return "<module '_thread'>"


class _Poll:
    def __init__(self):
        self._p = _select.poll()

    def register(self, *a):
        self._p.register(*a)

    def unregister(self, o):
        self._p.unregister(o)

    def modify(self, *a):
        self._p.modify(*a)

    def poll(self, *a):
        return blocking(self._p.poll, *a)

    def ipoll(self, *a):
        return blocking(self._p.ipoll, *a)


class Stream(io.IOBase):  # IOBase: select.poll takes it through ioctl()
    # A C stream whose reads and writes wait with G released; a write also
    # hands G over when a thread waits (print is a yield point).
    def __init__(self, s):
        self._s = s
        b = getattr(s, "buffer", None)
        self.buffer = self if b is None else Stream(b)

    def read(self, *a):
        return blocking(self._s.read, *a)

    def readinto(self, *a):
        return blocking(self._s.readinto, *a)

    def readline(self, *a):
        return blocking(self._s.readline, *a)

    def write(self, b):
        r = blocking(self._s.write, b)
        yield_()
        return r

    def fileno(self):
        return self._s.fileno()

    def ioctl(self, req, arg):
        if req == 10:  # MP_STREAM_GET_FILENO: select.poll uses the real fd
            return self._s.fileno()
        if req == 3:  # MP_STREAM_POLL
            p = _select.poll()
            p.register(self._s, arg)
            r = p.poll(0)
            return r[0][1] if r else 0
        return 0

    def flush(self):
        pass


class _Builtins:
    # `builtins` for device code. Setting an attribute of the VM's builtins
    # overrides the name for lookups, but reading it back gives the C function:
    # code that wraps print (`_orig = builtins.print`) would then write to fd 1
    # itself, past the UART emulation and without releasing G. Reads here give
    # what was set.
    _set = {}

    def __getattr__(self, k):
        v = self._set.get(k, _UNSET)
        return getattr(_builtins_mod, k) if v is _UNSET else v

    def __setattr__(self, k, v):
        setattr(_builtins_mod, k, v)
        self._set[k] = v

    def __delattr__(self, k):
        delattr(_builtins_mod, k)
        self._set.pop(k, None)

    def __repr__(self):
        return "<module 'builtins'>"


_UNSET = object()


def copy_module(name, src, override):
    # A copy of module `src` with some functions replaced (C modules are read-only).
    class M:
        pass

    m = M()
    for k in dir(src):
        if k[:2] != "__":
            setattr(m, k, getattr(src, k))
    for k in override:
        setattr(m, k, override[k])
    m.__name__ = name
    return m


def install(mods):
    """Put the GIL-aware modules in place; called once by firmware.py."""
    import builtins

    global _builtins_mod
    _builtins_mod = builtins
    _Builtins._set.update(print=simio.print, input=simrepl.simreadline.input)
    mods["builtins"] = _Builtins()
    t = mods.get("time") or _time
    mods["time"] = mods["utime"] = copy_module("time", t, {
        "sleep": released(t.sleep), "sleep_ms": released(t.sleep_ms), "sleep_us": released(t.sleep_us)})
    mods["_thread"] = _Thread()
    sel = {"poll": _Poll}
    if hasattr(_select, "select"):
        sel["select"] = released(_select.select)
    mods["select"] = mods["uselect"] = copy_module("select", _select, sel)
    simio._in = Stream(simio._in)
    simio._out = Stream(simio._out)
    s = mods["sys"]
    try:
        s.stdin = Stream(s.stdin)
    except AttributeError:  # a sys that refuses assignment, as the C module does
        type(s).stdin = Stream(s.stdin)
    mods.pop("simgil", None)


_G.acquire()
_own[0] = MAIN
