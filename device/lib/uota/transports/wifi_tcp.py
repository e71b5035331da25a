# WiFi TCP transport: joins the configured network, then listens on the OTA port (2018) and
# the RemoteIO port (2019). Only sockets live here; the protocol is in uota.session.
import socket
import errno
import time
import network

_WOULD_BLOCK = (errno.EAGAIN, errno.ETIMEDOUT, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))


AUTH_S = 5  # a connection must authenticate this soon after it is accepted


class SocketStream:
    """The recv/readinto/write byte stream uota.channel.Channel expects, over a blocking socket.

    Deadlines, so no client holds the one OTA connection (and the event loop) for long: each
    read or write waits at most `timeout` s, and until the session calls authenticated(),
    the whole connection may last at most AUTH_S s (a silent or trickling stranger)."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        self.until = time.ticks_add(time.ticks_ms(), AUTH_S * 1000)

    def authenticated(self):
        self.until = None

    def _arm(self):
        t = self.timeout
        if self.until is not None:
            left = time.ticks_diff(self.until, time.ticks_ms())
            if left <= 0:
                raise OSError(errno.ETIMEDOUT)
            t = min(t, left / 1000)
        self.sock.settimeout(t)

    def recv(self, n):
        self._arm()
        return self.sock.recv(n)

    def readinto(self, mv):
        self._arm()
        return self.sock.readinto(mv)

    def write(self, data):
        mv = memoryview(data)
        while mv:
            self._arm()
            n = self.sock.send(mv)
            mv = mv[n:]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def listen(port, backlog=2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    s.listen(backlog)
    s.setblocking(False)
    return s


def accept(server):
    """A connected socket, or None if nobody is waiting (never blocks)."""
    try:
        conn, _ = server.accept()
    except OSError as e:
        if e.args and e.args[0] in _WOULD_BLOCK:
            return None
        raise
    return conn


class WifiTcp:
    def __init__(self, cfg):
        self.cfg = cfg
        self.wlan = None
        self.ota = None
        self.rio = None
        self._next_try = 0
        self.generation = 0  # bumped when the listening sockets change

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
        self.ota = listen(self.cfg.get("port", 2018))
        self.rio = listen(self.cfg.get("remoteioPort", 2019), 4)
        self.generation += 1
        print("uota: listening on %s:%d" % (self.wlan.ifconfig()[0], self.cfg.get("port", 2018)))
        return True

    def accept_ota(self):
        if self.ota is None:
            return None
        conn = accept(self.ota)
        return SocketStream(conn, 30) if conn else None

    def accept_remoteio(self):
        if self.rio is None:
            return None
        conn = accept(self.rio)
        if conn:
            conn.setblocking(False)
        return conn

    def sockets(self):
        return [s for s in (self.ota, self.rio) if s is not None]

    def close(self):
        for s in (self.ota, self.rio):
            if s:
                s.close()
        self.ota = self.rio = None
        self.generation += 1
