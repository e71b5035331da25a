# pyexec.c (non-event-driven) and the ESP32 port's main loop (ports/esp32/main.c).
import os
import sys
import simio
import simreadline
from simio import tx, rx, ctl, pend, cook, exc_text, heal_heap
from simreadline import readline, continue_with_input

FORCED = 0x100  # PYEXEC_FORCED_EXIT: SystemExit, or Ctrl-D asking for a soft reboot
raw_mode = [False]  # pyexec_mode_kind, kept across soft reboots by the supervisor
G = {}  # the globals of __main__, shared by boot.py, main.py and the REPL
_v = sys.implementation.version
BANNER = (
    "MicroPython v%d.%d.%d on %s; Generic ESP32 module with ESP32\r\n"
    'Type "help()" for more information.\r\n' % (_v[0], _v[1], _v[2], sys.version.split(" on ")[-1])
)
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
del _v


def execute(src, name, kind, eof):
    # parse_compile_execute: returns 1 on normal exit, 0 after an exception,
    # FORCED on SystemExit. src None means run the file `name`.
    armed = False
    try:
        if kind == "exec":
            G["__file__"] = name
        if src is None:
            ctl(b"intr 3")
            armed = True
            execfile(name, G)
        else:
            code = compile(bytes(src), name, kind)
            src = None
            ctl(b"intr 3")
            armed = True
            exec(code, G)
        e = None
    except BaseException as x:  # user code: anything, incl. KeyboardInterrupt
        e = x
    heal_heap()  # the code may have left it locked; reporting needs to allocate
    if armed:
        ctl(b"intr -1")
    if eof:
        tx(b"\x04")
    if e is None:
        r = 1
    elif isinstance(e, SystemExit):
        r = FORCED
    else:
        tx(cook(exc_text(e)))
        r = 0
    if eof:
        tx(b"\x04")
    return r


def _stray():
    # A SIGINT that hit firmware code is the Ctrl-C byte it came from.
    pend.append(3)
    ctl(b"intr -1")


def friendly():
    tx(BANNER)
    while True:
        try:
            r = _friendly_cmd()
        except KeyboardInterrupt:
            _stray()
            continue
        if r is not None:
            return r


def _friendly_cmd():
    heal_heap()
    line = bytearray()
    c = readline(line, ">>> ", b"repl friendly")
    kind = "single"
    if c == 1:  # raw REPL
        tx(b"\r\n")
        raw_mode[0] = True
        return 0
    if c == 2:
        tx(b"\r\n" + BANNER)
        return None
    if c == 3:
        tx(b"\r\n")
        return None
    if c == 4:
        tx(b"\r\n")
        return FORCED
    if c == 5:
        tx(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        while True:
            c = rx()
            if c == 3:
                tx(b"\r\n")
                return None
            if c == 4:
                tx(b"\r\n")
                break
            line.append(c)
            tx(b"\r\n=== " if c == 13 else line[-1:])
        kind = "exec"
    elif not line:
        return None
    else:
        while continue_with_input(line):
            line.append(10)
            c = readline(line, "... ")
            if c == 3:
                tx(b"\r\n")
                return None
            if c == 4:
                break
    r = execute(line, "<stdin>", kind, False)
    return r if r & FORCED else None


def raw():
    tx(RAW_BANNER)
    while True:
        try:
            r = _raw_cmd()
        except KeyboardInterrupt:
            _stray()
            continue
        if r is not None:
            return r


def _raw_cmd():
    heal_heap()
    line = bytearray()
    tx(b">")
    ctl(b"repl raw")
    while True:
        c = rx()
        if c == 1:
            if len(line) == 2 and line[0] == 5:
                r = _raw_paste(line[1])
                return r if r & FORCED else None
            tx(RAW_BANNER)
            return None
        if c == 2:
            tx(b"\r\n")
            raw_mode[0] = False
            return 0
        if c == 3:
            line = bytearray()
        elif c == 4:
            break
        else:
            line.append(c)
    tx(b"OK")
    if not line:
        tx(b"\r\n")
        return FORCED
    r = execute(line, "<stdin>", "exec", True)
    return r if r & FORCED else None


def _raw_paste(c):
    # do_reader_stdin: flow control with a 128-byte window (buffer 256 / 2)
    if c != 65:
        tx(b"R\x00")
        return 0
    tx(b"R\x01\x80\x00\x01")
    buf = bytearray()
    win = 128
    while True:
        c = rx()
        if c == 3 or c == 4:
            tx(b"\x04")
            if c == 4:
                break
            tx(b"\x04" + cook(exc_text(KeyboardInterrupt())) + b"\x04")
            return 0
        buf.append(c)
        win -= 1
        if win == 0:
            tx(b"\x01")
            win = 128
    return execute(buf, "<stdin>", "exec", True)


def _run_file(name):
    # pyexec_file_if_exists: a missing file counts as a clean run
    try:
        if os.stat(name)[0] & 0x4000:
            return 1
    except OSError:
        return 1
    try:
        return execute(None, name, "exec", False)
    except KeyboardInterrupt:
        _stray()
        return 0


def start(g, raw_repl):
    # Boot as ports/esp32/main.c does; g becomes __main__'s globals.
    global G
    for k in list(g):
        if k != "__name__":
            del g[k]
    G = simreadline.G = g
    raw_mode[0] = raw_repl
    import gc

    gc.collect()
    ctl(b"boot")
    r = _run_file("boot.py")
    # main.py runs only in friendly mode and only if boot.py did not fail
    if not r & FORCED and not raw_mode[0] and r != 0:
        r = _run_file("main.py")
    while not r & FORCED:
        # The C REPL of a board cannot die; neither may this one, not even from a second
        # Ctrl-C landing while it handles the first.
        try:
            try:
                r = raw() if raw_mode[0] else friendly()
            except KeyboardInterrupt:
                _stray()
                r = 0
            except Exception as e:
                heal_heap()
                simio.diag(b"uota-sim: REPL recovered from %r\n" % (e,))
                r = 0
        except KeyboardInterrupt:
            pend.append(3)
            r = 0
    soft_reboot()


def soft_reboot():
    tx(b"MPY: soft reboot\r\n")
    simio.reset(b"reset soft " + (b"raw" if raw_mode[0] else b"friendly"))
