# WiFi TCP transport: joins the configured network, then listens on the OTA port (2018) and
# the RemoteIO port (2019). Only sockets live here; the protocol is in uota.session.
import sys
import socket
import errno
import select
import time
import network

_WOULD_BLOCK = (errno.EAGAIN, errno.ETIMEDOUT, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))


AUTH_MS = 5000  # a connection must authenticate this soon after it is accepted
IDLE_MS = 30000  # an authenticated session may wait this long for each read or write
WAITING = 4  # unauthenticated OTA connections held at once (uota.lobby picks who makes room)
# A body (manifest, file) must keep coming at a minimum rate: after GRACE_MS, each body
# byte received (not each byte on the wire: a record of 1 body byte is 34) buys
# 1/PACE_BYTES_PER_MS ms more. 4 KB/s is under a third of what a serial push
# at 115200 baud carries (10 KB/s measured) and far under any working WiFi; a password
# holder (or a relay holding back the owner's records) trickling a body holds the port
# about GRACE_MS, not for as long as it goes on (docs/protocol.md "Deadlines").
GRACE_MS = 10000
PACE_BYTES_PER_MS = 4


class Later(Exception):
    """An unauthenticated connection has no more input for now: the session is parked at a
    line boundary and resumed when more arrives (not an OSError, so the Channel keeps it)."""


class SocketStream:
    """The recv/readinto/write byte stream uota.channel.Channel expects, over a non-blocking
    socket, with deadlines measured here (ticks_ms) rather than by socket timeouts: on the
    unix port a GC signal from the app's thread restarts a socket timeout, so a silent peer
    could hold a timed recv for ever.

    Until the session calls authenticated(), the connection waits in the transport's lobby:
    reads never block (Later), one recv per turn, and the whole connection may last
    `first_ms` (AUTH_MS with a password: a silent or trickling stranger), not counting time
    the event loop spent serving someone else's session. Afterwards reads and writes block,
    IDLE_MS each."""

    def __init__(self, sock, peer, first_ms=AUTH_MS):
        self.sock = sock
        self.peer = peer  # the source address: wrong guesses are slowed per source (uota.throttle)
        sock.setblocking(False)
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        self.until = time.ticks_add(time.ticks_ms(), first_ms)
        self.answered = time.ticks_ms()  # the board's last reply in the lobby (uota.lobby)
        self.turn = 0  # recvs left in this lobby turn
        self.session = None  # created when its first bytes arrive
        self.by = None  # ticks_ms by which the reads/writes under way must be done (bound())
        self.paced = None  # ticks_ms a body began (pace()), and the body bytes read since
        self.got = None  # () -> those bytes (the session's count, under any record layer)

    def bound(self, ms):
        """Reads and writes from now on must be done within `ms` (or by the bound already
        set, if sooner); the previous bound, for unbound()."""
        prev = self.by
        at = time.ticks_add(time.ticks_ms(), ms)
        if prev is None or time.ticks_diff(at, prev) < 0:
            self.by = at
        return prev

    def unbound(self, prev):
        self.by = prev

    def pace(self, on, got=None):
        """A body starts (on) or ends: while on, reads must keep up the minimum rate; `got()`
        says how many body bytes have arrived."""
        self.paced = time.ticks_ms() if on else None
        self.got = got

    def authenticated(self):
        self.until = None

    def expired(self):
        return self.until is not None and time.ticks_diff(self.until, time.ticks_ms()) <= 0

    def paused(self, ms):
        """The loop served another session for `ms`: that time doesn't count against this one."""
        if self.until is not None:
            self.until = time.ticks_add(self.until, ms)

    def extend(self, ms):
        """Keep an unauthenticated connection at least `ms` more (it waits on the guess throttle)."""
        at = time.ticks_add(time.ticks_ms(), ms)
        if self.until is not None and time.ticks_diff(at, self.until) > 0:
            self.until = at

    def readable(self):
        return bool(self.poller.poll(0))

    def _wait(self, event):
        self.poller.modify(self.sock, event)
        try:
            until = time.ticks_add(time.ticks_ms(), IDLE_MS)
            if self.by is not None and time.ticks_diff(self.by, until) < 0:
                until = self.by
            if self.paced is not None:
                at = time.ticks_add(self.paced, GRACE_MS + (self.got() if self.got else 0) // PACE_BYTES_PER_MS)
                if time.ticks_diff(at, until) < 0:
                    until = at
            while True:
                left = time.ticks_diff(until, time.ticks_ms())
                if left <= 0:
                    if self.poller.poll(0):  # here already: the board, not the peer, was slow
                        return
                    raise OSError(errno.ETIMEDOUT)
                if self.poller.poll(min(left, 1000)):  # poll keeps its own deadline
                    return
        finally:
            self.poller.modify(self.sock, select.POLLIN)

    def _read(self, op, arg):
        while True:
            if self.until is not None:  # in the lobby: never block
                if self.expired():
                    raise OSError(errno.ETIMEDOUT)
                if self.turn <= 0:
                    raise Later()
                self.turn -= 1
            else:
                self._wait(select.POLLIN)
            try:
                n = op(arg)
            except OSError as e:
                if e.args and e.args[0] in _WOULD_BLOCK:
                    n = None
                else:
                    raise
            if n is not None:
                return n
            if self.until is not None:
                raise Later()

    def recv(self, n):
        return self._read(self.sock.recv, n)

    def readinto(self, mv):
        return self._read(self.sock.readinto, mv)  # may be short: Channel.readinto allows it

    def write(self, data):
        mv = memoryview(data)
        while mv:
            try:
                n = self.sock.send(mv)
            except OSError as e:
                if not (e.args and e.args[0] in _WOULD_BLOCK):
                    raise
                n = 0
            mv = mv[n:]
            if mv:
                if self.until is not None:
                    raise OSError(errno.EAGAIN)  # a stranger that doesn't read its replies: dropped
                self._wait(select.POLLOUT)
        if self.until is not None:
            self.answered = time.ticks_ms()

    def close(self):
        try:
            self.poller.unregister(self.sock)
        except (OSError, KeyError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _waiting(st):
    # how long an unauthenticated connection has waited on its client (uota.lobby)
    if st.readable():
        return -1  # input the board hasn't served yet: waiting on the board
    return time.ticks_diff(time.ticks_ms(), st.answered)


def listen(port, backlog=2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    s.listen(backlog)
    s.setblocking(False)
    return s


def accept(server):
    """(socket, source address), or None if nobody is waiting (never blocks)."""
    try:
        conn, addr = server.accept()
    except OSError as e:
        if e.args and e.args[0] in _WOULD_BLOCK:
            return None
        raise
    return conn, addr[0] if isinstance(addr, tuple) else addr


class WifiTcp:
    Later = Later

    def __init__(self, cfg):
        self.cfg = cfg
        self.wlan = None
        self.ota = None
        self.rio = None
        self._next_try = 0
        self.generation = 0  # bumped when the listening sockets change
        # Unauthenticated OTA connections, oldest first. They are served a turn at a time
        # between event-loop rounds, so idle strangers can't keep the owner out: whoever
        # authenticates first is served; the rest wait or run out of time.
        self.waiting = []
    def poll(self):
        """Join WiFi / open the listeners when possible; True once listening."""
        if self.ota is not None:
            return True
        now = time.ticks_ms()
        if time.ticks_diff(now, self._next_try) < 0:
            return False
        self._next_try = time.ticks_add(now, 1000)
        if self.wlan is None:
            self.wlan = network.WLAN(network.STA_IF)
            self.wlan.active(True)
            host = self.cfg.get("hostname", "")
            if host.endswith(".local"):
                try:
                    network.hostname(host[:-6])
                except (AttributeError, ValueError, OSError):
                    pass
            if not self.wlan.isconnected():
                self.wlan.connect(self.cfg.get("ssid", ""), self.cfg.get("password", ""))
        if not self.wlan.isconnected():
            return False
        self.ota = listen(self.cfg.get("port", 2018), WAITING)
        self.rio = listen(self.cfg.get("remoteioPort", 2019), 4)
        self.generation += 1
        print("uota: listening on %s:%d\n" % (self.wlan.ifconfig()[0], self.cfg.get("port", 2018)), end="")  # one write: the app thread prints too
        return True

    def accept_ota(self):
        """Take new OTA connections into the lobby; the waiting ones with input to serve now."""
        if self.ota is None:
            return ()
        from uota import remoteio

        # without a password nothing is authenticated: a connection only has to say something
        # within the idle time (the session trusts it from its first line)
        first_ms = AUTH_MS if remoteio.password else IDLE_MS
        for _ in range(WAITING):  # bounded per round
            got = accept(self.ota)
            if got is None:
                break
            if len(self.waiting) >= WAITING:
                from uota import lobby

                self.drop(lobby.evictee(self.waiting, got[1], _waiting))
            self.waiting.append(SocketStream(got[0], got[1], first_ms))
        ready = []
        throttle = sys.modules.get("uota.throttle")  # loaded by the first wrong guess (2 KB)
        for st in list(self.waiting):
            wait = throttle.wait_ms(st.peer) if throttle else 0
            if wait:
                st.extend(wait + AUTH_MS)  # it gets its full time once its source may guess again
            elif st.expired():
                self.drop(st)
            elif st.readable():
                ready.append(st)
        return ready

    def drop(self, stream):
        stream.close()
        stream.session = None  # its buffers go now, not when the round's list of streams does
        if stream in self.waiting:
            self.waiting.remove(stream)

    def accept_remoteio(self):
        """(non-blocking socket, source address) of a new RemoteIO connection, or None."""
        if self.rio is None:
            return None
        got = accept(self.rio)
        if got:
            got[0].setblocking(False)
        return got

    def sockets(self):
        return [s for s in (self.ota, self.rio) if s is not None]

    def close(self):
        # the listeners first: a host that sees its connection close and reconnects at
        # once (after a reset) must not reach this dying listener
        for s in (self.ota, self.rio):
            if s:
                s.close()
        self.ota = self.rio = None
        for st in list(self.waiting):
            self.drop(st)
        self.generation += 1
