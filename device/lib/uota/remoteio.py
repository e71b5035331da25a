# RemoteIO on the device: print() output streamed to every listener, and named handlers
# called by the host. JSON frames, one per line (docs/protocol.md "RemoteIO").
#
#   import uota.remoteio as remoteio
#   @remoteio.on("set_led")
#   def _(state=False): ...
#
# With an OTA password, a listener gets prints and may call handlers only after the same
# mutual handshake as the OTA port, and every frame after it travels both ways in that
# port's records (uota.seal): a relay can't read, inject, reorder, replay or drop one.
# The app's print() only appends to a bounded buffer under a lock; sockets are touched by
# the OTA event loop alone, so a slow or vanished listener can never block the app.
import sys
import json
import hashlib
import os
import time
import select
import binascii
import _thread
from uota.outq import OutQ

MAX_CLIENTS = 4  # authenticated listeners; a 5th that authenticates replaces the oldest
MAX_STRANGERS = 4  # unauthenticated connections; uota.lobby picks who makes room for a new one
PENDING_LIMIT = 2048  # print text waiting for the event loop
OUT_SIZE = 2048  # per listener, allocated at auth (uota.outq): print frames beyond it are dropped
OUT_LIMIT = 1024  # a listener with this much unsent output has its further calls wait (input unread)
STRANGER_OUT = 512  # an unauthenticated connection that leaves this much unread is dropped
IN_LIMIT = 2048
AUTH_MS = 5000  # as on the OTA port: an unauthenticated connection is closed this soon

_handlers = {}
_pending = []
_pending_len = 0
_lock = _thread.allocate_lock()
_clients = []  # oldest first
_orig_print = None
_rec = None  # one record being opened: the event loop opens one at a time, for every client
generation = 0  # bumped when the set of client sockets changes (the event loop polls them)
_boot_ticks = time.ticks_ms()
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


def _builtin_health():
    # how the boot after a push fares (uota.health): its code is loaded for the call only
    from uota import load

    try:
        return load("uota.health").report()
    finally:
        rt = sys.modules.get("uota.runtime")
        if rt:
            rt.unload(("health",))


_handlers["ping"] = lambda: "pong"
_handlers["version"] = _builtin_version
_handlers["free_mem"] = _builtin_free_mem
_handlers["uptime_ms"] = lambda: time.ticks_diff(time.ticks_ms(), _boot_ticks)
_handlers["uota_health"] = _builtin_health


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
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer  # source address: wrong guesses are slowed per source (uota.throttle)
        self.inbuf = b""
        self.authed = not password
        self.out = OutQ(OUT_SIZE if self.authed else STRANGER_OUT)
        self.until = None if self.authed else time.ticks_add(time.ticks_ms(), AUTH_MS)
        self.answered = time.ticks_ms()  # the board's last reply while a stranger (uota.lobby)
        self.full = False  # output over its limit: not polled or read until it drains
        self.guess = None  # an auth response waiting for its turn (see _answer_guesses)
        self.nonce = binascii.hexlify(os.urandom(16)).decode()
        self.hnonce = None  # the host's, from its challenge
        # after the handshake (password only): the record directions (uota.seal), the
        # received bytes of records not yet opened, the first `clear` bytes of `out` that
        # still go unsealed (up to the `auth ok`), and the record being sent: wire[ws:we]
        self.rx = self.tx = self.wire = None
        self.raw = b""
        self.clear = self.ws = self.we = 0
        try:
            import machine

            dev = binascii.hexlify(machine.unique_id()).decode()
        except (ImportError, AttributeError):
            dev = "unknown"
        self.dev = dev
        # proto: uota.seal.PROTO (loaded by the first challenge, not per connection)
        hello = {"proto": 5, "id": dev, "nonce": self.nonce, "auth": not self.authed, "salt": salt, "iter": iters}
        line = json.dumps({"hello": hello}).encode() + b"\n"
        self.hsum = hashlib.sha256(line).digest()  # both proofs cover the hello as sent (uota.seal)
        self.out.put(line)


def _check_auth(c, response):
    # the OTA port's mutual proof (docs/protocol.md "Authentication"), in uota.seal
    seal = _seal()
    k = seal.rio_auth(c, response, password)
    c.nonce = ""  # one guess per connection
    if k is None:
        return False
    c.rx, c.tx = seal.dirs(k)
    return True


def _call(frame):
    fid = frame.get("id")
    name = frame.get("call")
    fn = _handlers.get(name)
    if fn is None:
        return {"id": fid, "e": "no handler named %r" % (str(name)[:64],)}
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
    return [c.sock for c in _clients if not c.full]


def _limit(c):
    return OUT_LIMIT if c.authed else STRANGER_OUT


def _full(c):
    # a client whose output is over its limit isn't polled (its pending input would wake
    # the loop at once, every round) until the output drains
    global generation
    full = c.out.full(_limit(c))
    if full != c.full:
        c.full = full
        generation += 1
    return full


def _lines(c):
    # the buffered calls, while the replies fit: beyond that the caller waits, its further
    # input left unread (TCP pushes back), so a client that doesn't read costs bounded RAM
    while not _full(c) and c.guess is None:  # behind a guess: records, or its next guess
        i = c.inbuf.find(b"\n")
        if i < 0:
            return
        line, c.inbuf = c.inbuf[:i], c.inbuf[i + 1 :]
        try:
            frame = json.loads(line)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            continue
        if "challenge" in frame:
            c.out.put(_seal().rio_challenge(c, frame["challenge"], password, salt))
        elif "auth" in frame and not c.authed:
            if c.nonce and c.guess is None and isinstance(frame["auth"], str):
                c.guess = frame["auth"]  # checked by _answer_guesses, when its source may guess
            else:
                c.out.put(b'{"e": "auth failed"}\n')  # one guess per connection
        elif "call" in frame:
            reply = _call(frame) if c.authed else {"id": frame.get("id"), "e": "auth required"}
            c.out.put(json.dumps(reply).encode() + b"\n")


def _seal():
    # uota.seal, loaded by the first handshake (load() collects garbage first: not per record)
    m = sys.modules.get("uota.seal")
    if m is None:
        from uota import load

        m = load("uota.seal")
    return m


def _open(c):
    # the whole records in c.raw, checked and decrypted onto c.inbuf; False (the client
    # dropped) at one that isn't a record or fails its tag: nothing in it is acted on
    global _rec
    seal = _seal()
    try:
        while len(c.raw) >= 2:
            k = seal.size(c.raw)
            if len(c.raw) < k:
                break
            if _rec is None:
                _rec = bytearray(2 + seal.MAX + 16)
            mv = memoryview(_rec)[:k]
            mv[:] = c.raw[:k]
            n = c.rx.open(mv)
            c.inbuf += bytes(mv[2 : 2 + n])
            c.raw = c.raw[k:]
    except OSError:
        _drop(c)
        return False
    return True


def _read(c):
    _lines(c)
    if c.full:
        if not c.authed:
            _drop(c)  # a stranger piling up replies it doesn't read
        return
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
    if c.rx is None:
        c.inbuf += data
    else:
        c.raw += data
        if not _open(c):
            return
    _lines(c)
    if len(c.inbuf) + len(c.raw) > (IN_LIMIT if c.authed else STRANGER_OUT):
        _drop(c)


def _make_room(c):
    # a stranger never pushes a listener out; among strangers, uota.lobby decides
    if c.authed:  # no password: every client is a listener
        if len(_clients) >= MAX_CLIENTS:
            _drop(_clients[0])
        return
    lobby = [o for o in _clients if not o.authed]
    if len(lobby) >= MAX_STRANGERS:
        from uota import lobby as places

        p = select.poll()
        for o in lobby:
            p.register(o.sock, select.POLLIN)
        unread = [r[0] for r in p.poll(0)]

        def waiting(o):  # on its client; -1: it waits on the board (unread input, a guess)
            if o.guess is not None or o.sock in unread:
                return -1
            return time.ticks_diff(time.ticks_ms(), o.answered)

        _drop(places.evictee(lobby, c.peer, waiting))


def _answer_guesses():
    # A guess is checked once its source may guess again (uota.throttle, shared with the
    # OTA port): a wrong one holds that source's further guesses back, without blocking the
    # event loop, so reconnecting for each guess doesn't make guessing faster. All guesses
    # waiting from a source are checked together, so the owner's right one, even from the
    # guesser's own address, waits at most throttle.CAP_MS.
    # (the sources open this round are decided before any guess is checked: sources
    # beyond the throttle's table share an entry, and one's failure must not hold the others)
    throttle = sys.modules.get("uota.throttle")  # loaded by the first wrong guess (2 KB)
    opened = {}
    for c in _clients:
        if c.guess is not None and c.peer not in opened:
            opened[c.peer] = not throttle or not throttle.wait_ms(c.peer)
    for c in list(_clients):
        if c.guess is None or not opened[c.peer]:
            continue
        guess, c.guess = c.guess, None
        if _check_auth(c, guess):
            if c.inbuf:  # bytes sent behind the proof, before the keys were agreed
                _drop(c)
                continue
            c.authed = True
            c.until = None
            from uota import lobby

            lobby.proved(c.peer)  # this address gets a place ahead of strangers
            c.out.grow(OUT_SIZE)  # its one allocation as a listener: replies never grow it
            c.out.put(b'{"auth": "ok"}\n')
            c.clear = c.out.pending()  # the last frame in clear: records from here on
            c.wire = bytearray(2 + _seal().MAX + 16)  # length, plaintext, tag
            others = [o for o in _clients if o.authed and o is not c]
            if len(others) >= MAX_CLIENTS:
                _drop(others[0])  # the owner replaces its own oldest listener
        else:
            from uota import throttle

            throttle.record(c.peer)
            c.out.put(b'{"e": "auth failed"}\n')


def _expire():
    for c in list(_clients):
        if c.until is None:
            continue
        throttle = sys.modules.get("uota.throttle")
        wait = throttle.wait_ms(c.peer) if throttle and c.guess is not None else 0
        if wait:  # its guess waits on the throttle: it gets its time once checked
            c.until = time.ticks_add(time.ticks_ms(), wait + AUTH_MS)
        elif time.ticks_diff(c.until, time.ticks_ms()) <= 0:
            _drop(c)


def _flush(c):
    """Send what the client can take now; True if some went and more is waiting."""
    if c.tx is not None and not c.clear and c.ws == c.we and c.out.n:
        # the next record: up to MAX bytes of queued frames, sealed into c.wire
        mv = c.out.peek(len(c.wire) - 18)  # MAX: wire holds 2 + MAX + 16
        c.ws, c.we = 0, c.tx.seal(mv, memoryview(c.wire))
        c.out.take(len(mv))
    sealed = c.ws < c.we
    if sealed:
        data = memoryview(c.wire)[c.ws : c.we]
    elif c.out.n:
        data = c.out.peek(c.clear or c.out.n)
    else:
        return False
    try:
        n = c.sock.send(data)
    except OSError as e:
        if e.args and e.args[0] in (11, 110, 116):
            return False
        _drop(c)
        return False
    if n and sealed:
        c.ws += n
    elif n:
        c.out.take(n)
        c.clear = max(0, c.clear - n)
        if not c.authed:
            c.answered = time.ticks_ms()
    return bool(n) and (c.ws < c.we or bool(c.out.n))


def poll(transport):
    """One non-blocking round: accept, read calls, run handlers, ship prints, flush."""
    global _pending, _pending_len, generation
    for _ in range(MAX_STRANGERS):  # bounded per round
        got = transport.accept_remoteio()
        if got is None:
            break
        c = _Client(*got)
        _make_room(c)
        _clients.append(c)
        generation += 1
    if not _clients:
        return False
    for c in list(_clients):
        _read(c)
    _answer_guesses()
    _expire()  # after the reads: a guess that came in while the loop was busy still counts
    if _pending:
        with _lock:
            texts, _pending, _pending_len = _pending, [], 0
        for text in texts:
            frame = json.dumps({"p": text}).encode() + b"\n"
            for c in _clients:
                if c.authed and c.out.room(len(frame)):
                    c.out.put(frame)
    busy = False
    for c in list(_clients):
        # a client that doesn't read doesn't keep the loop busy: it is retried next round
        busy = _flush(c) or busy
        if c in _clients:
            _full(c)
    return busy


def close_all():
    for c in list(_clients):
        _drop(c)
