# The board's UART (fd 0/1) and the supervisor control channel (fd 2).
#
# SIGINT (the supervisor's Ctrl-C) may land anywhere. In user code it is a
# KeyboardInterrupt as on a board; in firmware code it is treated as the 0x03
# byte it came from: it is queued in `pend` for the next rx().
import sys
import io
import gc
import time
import builtins
import micropython as _upy

_in = sys.stdin.buffer
_out = sys.stdout.buffer
_err = sys.stderr.buffer
_print = builtins.print

pend = []  # Ctrl-C bytes owed to the reader (a list: bytearray has no pop)
# Traceback lines of firmware frames are dropped: on a board they are C code.
_here = '  File "' + __file__.rsplit("/", 1)[0] + "/" if "/" in __file__ else '  File "sim'

dead = [False]  # set once a reset was requested: the board prints nothing more
term = [None]  # os.dupterm()'s stream: the ESP32 port has one slot
_b1 = bytearray(1)
_poll = []  # a poller on fd 0, made when a dupterm stream first needs it


def heal_heap():
    # pyexec forces the heap usable before each REPL input; on a board nothing
    # user code does can wedge the C REPL. Here the REPL itself allocates, so
    # undo what can leave the heap locked: heap_lock() without unlock (or an
    # unlock too many), or an interrupt that escaped a collection and left its
    # flag set (another gc.collect() clears it). A Ctrl-C meanwhile is a byte.
    for _ in range(4):
        try:
            try:
                bytearray(8)
                return
            except MemoryError:
                pass
            gc.collect()
            _upy.heap_lock()
            depth = _upy.heap_unlock()  # lock+unlock reads the depth unchanged
            if depth >= 0x4000:  # an unlock too many wrapped the counter
                for _ in range(0x8000 - depth):
                    _upy.heap_lock()
            else:
                while depth:
                    depth = _upy.heap_unlock()
        except KeyboardInterrupt:
            pend.append(3)


def ctl(msg):
    # A small pipe write is atomic; EINTR means nothing was written, so retry.
    for _ in range(8):
        try:
            _err.write(b"\x1eUOTA " + msg + b"\n")
            return
        except KeyboardInterrupt:
            pend.append(3)
        except MemoryError:
            heal_heap()


def diag(text):
    # A VM diagnostic for the supervisor's log (fd 2, not a control message).
    try:
        _err.write(text)
    except Exception:
        pass


def _w(b):
    # mp_hal_stdout_tx_strn: the UART, then the dupterm stream (extmod/os_dupterm.c)
    _out.write(b)
    s = term[0]
    if s is not None:
        try:
            s.write(b.encode() if isinstance(b, str) else bytes(b))
        except Exception as e:
            _deactivate("write", e)


def _deactivate(what, e):
    term[0] = None
    _out.write(b"dupterm: Exception in %s() method, deactivating: " % what)
    _out.write(cook(exc_text(e)))


def _term_rx():
    # mp_hal_stdin_rx_chr with a dupterm stream: the UART first, then the stream,
    # every 10 ms (an RTOS tick). None: nothing yet.
    if not _poll:
        import select

        _poll.append(select.poll())
        _poll[0].register(_in, select.POLLIN)
    if _poll[0].poll(10):
        b = _in.read(1)
        return b[0] if b else -1
    s = term[0]
    try:
        if hasattr(s, "ioctl") and not s.ioctl(3, 1):  # MP_STREAM_POLL, POLL_RD
            return None
        n = s.readinto(_b1)
    except Exception as e:
        _deactivate("read", e)
        return None
    return _b1[0] if n else None


def tx(b):
    while not dead[0]:
        try:
            _w(b)
            return
        except KeyboardInterrupt:
            pend.append(3)


def rx():
    # One byte from the UART; a SIGINT while waiting is a Ctrl-C byte.
    while True:
        try:
            if pend:
                return pend.pop(0)
            if term[0] is not None:
                c = _term_rx()
                if c is None:
                    continue
                b = b"" if c < 0 else bytes((c,))
            else:
                b = _in.read(1)
        except KeyboardInterrupt:
            return 3
        if not b:
            # The supervisor keeps fd 0 open across boots: EOF means it is gone.
            raise SystemExit(0)
        return b[0]


def cook(s):
    # A board's stdout turns every \n into \r\n (mp_hal_stdout_tx_strn_cooked).
    if isinstance(s, str):
        return s.replace("\n", "\r\n")
    return bytes(s).replace(b"\n", b"\r\n")


class _Raw(io.IOBase):
    # sys.stdout.buffer: binary-clean, mirrored to a dupterm stream as on a board
    def write(self, b):
        _w(b)
        return len(b)

    def flush(self):
        pass


class Console(io.IOBase):
    # sys.stdout/sys.stderr as on a board: text is cooked, .buffer is raw.
    buffer = _Raw()

    def write(self, s):
        if not dead[0]:
            _w(cook(s))
        return len(s)

    def flush(self):
        pass


con = Console()


def print(*a, sep=None, end=None, file=None):
    if file is None or file is con:
        s = (" " if sep is None else sep).join([str(x) for x in a])
        s += "\n" if end is None else end
        if not dead[0]:
            _w(s.replace("\n", "\r\n"))
    else:
        _print(*a, sep=" " if sep is None else sep, end="\n" if end is None else end, file=file)


def repl_print(o):
    # What the compiler calls for an expression statement at the REPL.
    if o is not None:
        if not dead[0]:
            _w(cook(repr(o) + "\n"))
        builtins._ = o


def exc_text(e):
    s = io.StringIO()
    sys.print_exception(e, s)
    s = s.getvalue()
    if _here in s:
        s = "\n".join([ln for ln in s.split("\n") if not ln.startswith(_here)])
    return s


def print_exception(e, file=None):
    s = exc_text(e)
    if file is None or file is con:
        con.write(s)
    else:
        file.write(s)


def reset(msg):
    # Ask the supervisor for a reset and wait to be killed (any thread may call).
    dead[0] = True
    try:
        ctl(msg)
    except OSError:  # the supervisor is gone: nobody will kill us
        raise SystemExit(1)
    while True:
        try:
            time.sleep(3600)
        except BaseException:
            pass
