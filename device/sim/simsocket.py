# `socket` with the ESP32 (lwIP) API over the unix port's socket module,
# whose addresses are raw sockaddr bytes. The board lives on its own loopback
# address (UOTA_SIM_ADDR): binds to ''/0.0.0.0 and outgoing connections use it,
# so several boards can each listen on the same port.
import os
import io
import errno
import select
import socket as _s
from simgil import blocking as _wait  # socket waits release the GIL

for _k in dir(_s):
    if _k[0] in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        globals()[_k] = getattr(_s, _k)
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
TCP_NODELAY = 1

_ADDR = os.getenv("UOTA_SIM_ADDR") or "127.0.0.1"
_EAGAIN = errno.EAGAIN
_sockaddr = _s.sockaddr


def _ip(h):
    if h == "" or h == "0.0.0.0":
        return _ADDR
    return h


def _raw(addr, local=False):
    # (host, port) or raw sockaddr -> raw sockaddr for the unix socket
    if isinstance(addr, tuple):
        h = _ip(addr[0]) if local else addr[0] or "127.0.0.1"
        return _s.getaddrinfo(h, addr[1])[0][-1]
    if local and addr[4:8] == b"\0\0\0\0":
        return _s.getaddrinfo(_ADDR, _sockaddr(addr)[2])[0][-1]
    return addr


def _tup(raw):
    a = _sockaddr(raw)
    if a[0] != AF_INET:
        return a[1:]
    return ("%d.%d.%d.%d" % tuple(a[1]), a[2])


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    # ESP32 form: [(af, type, proto, '', (ip, port))]
    if host == "" or host == "0.0.0.0":
        ip = "0.0.0.0"
    else:
        if host == "localhost":
            host = "127.0.0.1"
        ip = _tup(_s.getaddrinfo(host, port)[0][-1])[0]
    return [(AF_INET, type or SOCK_STREAM, proto, "", (ip, port))]


def _timeout(e, t):
    # lwIP reports an expired socket timeout as ETIMEDOUT
    if t and e.errno in (_EAGAIN, errno.EINPROGRESS):
        return OSError(errno.ETIMEDOUT)
    return e


class socket(io.IOBase):
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0, _sock=None):
        self._s = _sock or _s.socket(af, type, proto)
        self._t = None
        self._bound = False

    def ioctl(self, req, arg):
        if req == 10:  # MP_STREAM_GET_FILENO: lets select.poll use the real fd
            return self._s.fileno()
        if req == 3:  # MP_STREAM_POLL
            p = select.poll()
            p.register(self._s, arg)
            r = p.poll(0)
            return r[0][1] if r else 0
        if req == 4:  # MP_STREAM_CLOSE
            self._s.close()
        return 0

    def fileno(self):
        return self._s.fileno()

    def bind(self, addr):
        self._s.bind(_raw(addr, True))
        self._bound = True

    def listen(self, backlog=2):
        self._s.listen(backlog)

    def accept(self):
        try:
            c, a = _wait(self._s.accept)
        except OSError as e:
            raise _timeout(e, self._t)
        # lwIP's send buffer (TCP_SND_BUF, 5744 bytes; Linux doubles the value set), not
        # Linux's megabytes: a peer that doesn't read backs up into the firmware's own buffers
        c.setsockopt(SOL_SOCKET, 7, 2872)  # 7: SO_SNDBUF on Linux (the unix port lacks the name)
        return socket(_sock=c), _tup(a)

    def connect(self, addr):
        if not self._bound:
            self.bind((_ADDR, 0))
        try:
            _wait(self._s.connect, _raw(addr))
        except OSError as e:
            raise _timeout(e, self._t)

    def setblocking(self, flag):
        self._t = None if flag else 0
        self._s.setblocking(flag)

    def settimeout(self, t):
        self._t = t
        self._s.settimeout(t)

    def setsockopt(self, level, opt, val):
        self._s.setsockopt(level, opt, val)

    def recv(self, n, flags=0):
        try:
            return _wait(self._s.recv, n, flags)
        except OSError as e:
            raise _timeout(e, self._t)

    def recvfrom(self, n):
        try:
            d, a = _wait(self._s.recvfrom, n)
        except OSError as e:
            raise _timeout(e, self._t)
        return d, _tup(a)

    def send(self, b):
        try:
            return _wait(self._s.send, b)
        except OSError as e:
            raise _timeout(e, self._t)

    def sendall(self, b):
        try:
            _wait(self._s.sendall, b)
        except OSError as e:
            raise _timeout(e, self._t)

    def sendto(self, b, addr):
        if not self._bound:
            self.bind((_ADDR, 0))
        return _wait(self._s.sendto, b, _raw(addr))

    # Stream methods: a non-blocking socket returns None when it would block.
    def read(self, n=-1):
        try:
            return _wait(self._s.read, n) if n >= 0 else _wait(self._s.read)
        except OSError as e:
            raise _timeout(e, self._t)

    def readinto(self, b, n=None):
        try:
            return _wait(self._s.readinto, b, n) if n is not None else _wait(self._s.readinto, b)
        except OSError as e:
            raise _timeout(e, self._t)

    def readline(self):
        try:
            return _wait(self._s.readline)
        except OSError as e:
            raise _timeout(e, self._t)

    def write(self, b):
        try:
            return _wait(self._s.write, b)
        except OSError as e:
            raise _timeout(e, self._t)

    def makefile(self, *a, **kw):
        return self

    def close(self):
        self._s.close()

    def __repr__(self):
        return "<socket fd=%d>" % self._s.fileno()


__name__ = "socket"
del _k, __file__
