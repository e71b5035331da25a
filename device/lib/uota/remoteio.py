# RemoteIO on the device: print() output streamed to every listener, and named handlers
# called by the host. JSON frames, one per line (docs/protocol.md "RemoteIO").
#
#   import uota.remoteio as remoteio
#   @remoteio.on("set_led")
#   def _(state=False): ...
#
# With an OTA password, a listener gets prints and may call handlers only after the same
# challenge-response as the OTA port. The app's print() only appends to a bounded buffer under a lock; sockets are touched by
# the OTA event loop alone, so a slow or vanished listener can never block the app.
import json
import os
import time
import binascii
import _thread

MAX_CLIENTS = 4
PENDING_LIMIT = 2048  # print text waiting for the event loop
OUT_LIMIT = 4096  # per listener: print frames beyond this are dropped
IN_LIMIT = 2048
GUESS_MS = 300  # a wrong password costs every client this long: online guessing stays slow

_handlers = {}
_pending = []
_pending_len = 0
_lock = _thread.allocate_lock()
_clients = []
_orig_print = None
generation = 0  # bumped when the set of client sockets changes (the event loop polls them)
_boot_ticks = time.ticks_ms()
_guess_at = time.ticks_ms()  # no password guess is checked before this
version = ""
password = ""  # hex OTA key (PBKDF2 of the password, set by the runtime); "" = no auth
salt = ""  # its salt, and iterations (announced in the hello)
iters = 0


def on(name):
    """Register a handler: @remoteio.on('name'); it is called with the host's keyword arguments."""

    def register(fn):
        _handlers[name] = fn
        return fn

    return register


def _builtin_version():
    return {"version": version}


def _builtin_free_mem():
    import gc

    gc.collect()
    return gc.mem_free()


_handlers["ping"] = lambda: "pong"
_handlers["version"] = _builtin_version
_handlers["free_mem"] = _builtin_free_mem
_handlers["uptime_ms"] = lambda: time.ticks_diff(time.ticks_ms(), _boot_ticks)


def _capture(text):
    global _pending_len
    with _lock:
        _pending.append(text)
        _pending_len += len(text)
        while _pending_len > PENDING_LIMIT and len(_pending) > 1:
            _pending_len -= len(_pending.pop(0))


def _print(*args, sep=" ", end="\n", file=None):
    if file is not None:
        _orig_print(*args, sep=sep, end=end, file=file)
        return
    _orig_print(*args, sep=sep, end=end)
    if _clients:
        _capture((" " if sep is None else sep).join([str(a) for a in args]) + ("\n" if end is None else end))


def install():
    """Route print() through the capture hook (idempotent)."""
    global _orig_print
    import builtins

    if _orig_print is None:
        _orig_print = builtins.print
        builtins.print = _print


def uninstall():
    global _orig_print
    import builtins

    if _orig_print is not None:
        builtins.print = _orig_print
        _orig_print = None


class _Client:
    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.out = bytearray()
        self.authed = not password
        self.guess = None  # an auth response waiting for its turn (see _answer_guesses)
        self.nonce = binascii.hexlify(os.urandom(16)).decode()
        self.hnonce = None  # the host's, from its challenge
        try:
            import machine

            dev = binascii.hexlify(machine.unique_id()).decode()
        except (ImportError, AttributeError):
            dev = "unknown"
        self.dev = dev
        hello = {"proto": 3, "id": dev, "nonce": self.nonce, "auth": not self.authed, "salt": salt, "iter": iters}
        self.out += json.dumps({"hello": hello}).encode() + b"\n"


def _check_auth(c, response):
    # the OTA port's mutual proof (docs/protocol.md "Authentication"), in uota.seal
    from uota import load

    ok = load("uota.seal").rio_auth(c, response, password)
    c.nonce = ""  # one guess per connection
    return ok


def _call(frame):
    fid = frame.get("id")
    name = frame.get("call")
    fn = _handlers.get(name)
    if fn is None:
        return {"id": fid, "e": "no handler named %r" % (name,)}
    args = frame.get("args") or {}
    try:
        value = fn(**args)
    except Exception as e:  # the handler's failure is the caller's answer, not ours
        return {"id": fid, "e": "%s: %s" % (type(e).__name__, e)}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return {"id": fid, "e": "result is not JSON serializable: %r" % (value,)}
    return {"id": fid, "r": value}


def _drop(c):
    global generation
    try:
        c.sock.close()
    except OSError:
        pass
    if c in _clients:
        _clients.remove(c)
        generation += 1


def sockets():
    return [c.sock for c in _clients]


def _read(c):
    try:
        data = c.sock.recv(512)
    except OSError as e:
        if e.args and e.args[0] in (11, 110, 116):  # EAGAIN / timeout: nothing yet
            return
        _drop(c)
        return
    if not data:
        _drop(c)
        return
    c.inbuf += data
    while True:
        i = c.inbuf.find(b"\n")
        if i < 0:
            break
        line, c.inbuf = c.inbuf[:i], c.inbuf[i + 1 :]
        try:
            frame = json.loads(line)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            continue
        if "challenge" in frame:
            from uota import load

            c.out += load("uota.seal").rio_challenge(c, frame["challenge"], password, salt)
        elif "auth" in frame and not c.authed:
            if c.nonce and c.guess is None and isinstance(frame["auth"], str):
                c.guess = frame["auth"]  # checked by _answer_guesses, never sooner than _guess_at
            else:
                c.out += b'{"e": "auth failed"}\n'  # one guess per connection
        elif "call" in frame:
            reply = _call(frame) if c.authed else {"id": frame.get("id"), "e": "auth required"}
            c.out += json.dumps(reply).encode() + b"\n"
    if len(c.inbuf) > IN_LIMIT:
        _drop(c)


def _answer_guesses():
    # Guesses are checked one at a time, and a wrong one holds every further guess (from
    # any connection) back by GUESS_MS without blocking the event loop, so reconnecting
    # for each guess doesn't make password guessing faster.
    global _guess_at
    for c in _clients:
        if c.guess is None or time.ticks_diff(time.ticks_ms(), _guess_at) < 0:
            continue
        guess, c.guess = c.guess, None
        if _check_auth(c, guess):
            c.authed = True
            c.out += b'{"auth": "ok"}\n'
        else:
            _guess_at = time.ticks_add(time.ticks_ms(), GUESS_MS)
            c.out += b'{"e": "auth failed"}\n'


def _flush(c):
    if not c.out:
        return
    try:
        n = c.sock.send(c.out)
    except OSError as e:
        if e.args and e.args[0] in (11, 110, 116):
            return
        _drop(c)
        return
    if n:
        c.out = c.out[n:]


def poll(transport):
    """One non-blocking round: accept, read calls, run handlers, ship prints, flush."""
    global _pending, _pending_len, generation
    conn = transport.accept_remoteio()
    if conn is not None:
        if len(_clients) >= MAX_CLIENTS:
            _drop(_clients[0])
        _clients.append(_Client(conn))
        generation += 1
    if not _clients:
        return False
    for c in list(_clients):
        _read(c)
    _answer_guesses()
    if _pending:
        with _lock:
            texts, _pending, _pending_len = _pending, [], 0
        for text in texts:
            frame = json.dumps({"p": text}).encode() + b"\n"
            for c in _clients:
                if c.authed and len(c.out) + len(frame) <= OUT_LIMIT:
                    c.out += frame
    busy = False
    for c in list(_clients):
        _flush(c)
        busy = busy or bool(c.out)
    return busy


def close_all():
    for c in list(_clients):
        _drop(c)
