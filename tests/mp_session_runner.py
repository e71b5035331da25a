# Runs the device OTA session (device/lib/uota/session.py) under the plain MicroPython unix
# port, against a temp dir instead of flash, connecting back to a host test harness:
#   micropython mp_session_runner.py <device lib dir> <root dir> <port>
import sys
import socket

sys.path.insert(0, sys.argv[1])
from uota import fs  # noqa: E402

fs.ROOT = sys.argv[2]
port = int(sys.argv[3])


class SockStream:
    def __init__(self, s):
        self.s = s

    def recv(self, n):
        return self.s.recv(n)

    def readinto(self, mv):
        return self.s.readinto(mv)

    def write(self, data):
        self.s.write(data)


while True:
    s = socket.socket()
    try:
        s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    except OSError:
        break
    from uota.session import Session

    reset = Session(SockStream(s)).run()
    s.close()
    print("session-end reset=%s" % reset)
