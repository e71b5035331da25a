# The board's UART (fd 0/1) and the supervisor control channel (fd 2).
#
# SIGINT (the supervisor's Ctrl-C) may land anywhere. In user code it is a
# KeyboardInterrupt as on a board; in firmware code it is treated as the 0x03
# byte it came from: it is queued in `pend` for the next rx().
import sys
import io
import time
import builtins

_in = sys.stdin.buffer
_out = sys.stdout.buffer
_err = sys.stderr.buffer
_print = builtins.print

pend = []  # Ctrl-C bytes owed to the reader (a list: bytearray has no pop)
# Traceback lines of firmware frames are dropped: on a board they are C code.
_here = '  File "' + __file__.rsplit("/", 1)[0] + "/" if "/" in __file__ else '  File "sim'

dead = [False]  # set once a reset was requested: the board prints nothing more


def ctl(msg):
    # A small pipe write is atomic; EINTR means nothing was written, so retry.
    msg = b"\x1eUOTA " + msg + b"\n"
    while True:
        try:
            _err.write(msg)
            return
        except KeyboardInterrupt:
            pend.append(3)


def tx(b):
    while not dead[0]:
        try:
            _out.write(b)
            return
        except KeyboardInterrupt:
            pend.append(3)


def rx():
    # One byte from the UART; a SIGINT while waiting is a Ctrl-C byte.
    while True:
        try:
            if pend:
                return pend.pop(0)
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


class Console(io.IOBase):
    # sys.stdout/sys.stderr as on a board: text is cooked, .buffer is raw.
    buffer = _out

    def write(self, s):
        if not dead[0]:
            _out.write(cook(s))
        return len(s)

    def flush(self):
        pass


con = Console()


def print(*a, sep=None, end=None, file=None):
    if file is None or file is con:
        s = (" " if sep is None else sep).join([str(x) for x in a])
        s += "\n" if end is None else end
        if not dead[0]:
            _out.write(s.replace("\n", "\r\n"))
    else:
        _print(*a, sep=" " if sep is None else sep, end="\n" if end is None else end, file=file)


def repl_print(o):
    # What the compiler calls for an expression statement at the REPL.
    if o is not None:
        if not dead[0]:
            _out.write(cook(repr(o) + "\n"))
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
