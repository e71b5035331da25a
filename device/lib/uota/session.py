# The device side of the OTA protocol (docs/protocol.md), over any Channel-compatible byte
# stream: WiFi TCP, the UART (started from the raw REPL) and BLE all run this same code.
# Imported only when a client connects, so its bytecode isn't resident while idle; the
# OTA staging commands live in uota.staging.
import sys
import json
import hashlib
import binascii
from uota import fs, paths, auth
from uota.channel import Channel, Closed

CHUNK = 1024
COMMAND_MS = 15000  # an authenticated session with no whole command line this long ends (WiFi TCP)
OPEN_COMMANDS = ("ping", "hello", "challenge", "auth")
BODIES = ("manifest", "file", "zfile")  # commands whose bytes follow the line
DRAIN_MAX = 1 << 20  # a refused body up to this size is read and dropped; a bigger one ends the session
# commands implemented in modules loaded on first use (each module has a Commands class)
LAZY = {"start_ota": "staging", "manifest": "staging", "need": "staging", "file": "staging",
        "zfile": "staging", "end_ota": "staging", "abort": "staging",
        "ls": "admin", "get": "admin", "rm": "admin", "wipe": "admin", "passwd": "admin"}


def _declared(cmd, arg):
    """The body size `cmd` declares (`manifest <n>`, `file <p>;<size>;<sha>`, `zfile
    <p>;<size>;<sha>;<body size>`), or None if it doesn't parse."""
    try:
        n = int(arg) if cmd == "manifest" else int(arg.split(";")[3 if cmd == "zfile" else 1])
    except (ValueError, IndexError):
        return None
    return n if n >= 0 else None


class Refused(Exception):
    # a request the device declines; its text is the reply line
    pass


def fs_error(e):
    if e.args and e.args[0] == 28:
        return "no space left on device"
    if e.args and e.args[0] == 2:
        return "no such file"
    return "filesystem error %s" % (e.args[0] if e.args else e)


class Session:
    def __init__(self, raw):
        self.ch = Channel(raw)
        self.chunk = bytearray(CHUNK)
        sec = fs.read_json(fs.full(fs.SECRETS), {})
        if not isinstance(sec, dict):
            sec = {}
        # otaKey: hex PBKDF2 of the password, computed by the host (docs/protocol.md); a
        # bare otaPassword is an older stack's SHA256 key: locked until re-bootstrapped
        self.pw = sec.get("otaKey") or sec.get("otaPassword") or ""
        self.salt = (sec.get("otaSalt") or "") if sec.get("otaKey") else ""
        self.iters = sec.get("otaIter") or 0
        self.sign_key = sec.get("signingKey") or ""
        self.nonce = None  # this connection's device nonce (hello); the signed manifest binds it
        self.hnonce = None  # the host's nonce (challenge)
        self.hsum = None  # sha256 of the hello line as sent: both proofs cover it (uota.seal)
        self.base = raw  # the transport under any record layer
        self.authed = not self.pw
        if self.authed:
            self._trusted()
        self.ext = {}  # module name -> its Commands instance
        self.reset = False

    def run(self):
        """Serve commands until the peer goes away; True if the device should reset."""
        # The session has the event loop to itself: a peer that holds it idle, or trickles
        # a line, must not keep the owner out for long. Bodies are bounded per record and
        # by a minimum rate (dispatch).
        bound = getattr(self.base, "bound", None)
        try:
            while not self.reset:
                try:
                    prev = bound(COMMAND_MS) if bound else None
                    try:
                        line = self.ch.readline()
                    finally:
                        if bound:
                            self.base.unbound(prev)
                except ValueError as e:
                    self.ch.reply("error: %s" % e)  # line too long / not UTF-8
                    break
                cmd, _, arg = line.partition(" ")
                self.dispatch(cmd, arg)
        except Closed:
            pass
        return self.reset

    def dispatch(self, cmd, arg):
        # a command word too long for an attribute name would raise RuntimeError here
        fn = getattr(self, "c_" + cmd, None) if len(cmd) < 32 else None
        if fn is None and cmd not in LAZY:
            self.ch.reply("error: unknown command %s" % cmd[:32])
            return
        if not self.authed and cmd not in OPEN_COMMANDS:
            self.ch.reply("error: auth required")
            if cmd in BODIES:
                raise Closed()  # its body would be read as commands
            return
        # a body must keep coming at the transport's minimum rate (WiFi TCP): trickled, it
        # would hold the event loop as long as it went on, each read within the idle time
        body = _declared(cmd, arg) if cmd in BODIES else None  # None if unparsable: refused below
        pace = getattr(self.base, "pace", None) if cmd in BODIES else None
        if pace:
            ch = self.ch  # ch.body counts down the body bytes left, once _run set it
            pace(True, lambda: (body or 0) - ch.body if ch.body is not None else 0)
        try:
            self._run(cmd, fn, arg, body)
        finally:
            if pace:
                pace(False)

    def _run(self, cmd, fn, arg, body):
        if cmd in BODIES:
            self.ch.body = body
        try:
            if fn is None:
                mod = LAZY[cmd]
                if mod not in self.ext:
                    from uota import load

                    self.ext[mod] = load("uota." + mod).Commands(self)
                fn = getattr(self.ext[mod], "c_" + cmd)
            fn(arg)
            self._skip_body(None)  # a command that left some of its body: never run it as commands
        except Closed:
            raise
        except Refused as e:
            self._skip_body(e.args[0])
        except OSError as e:
            self._skip_body("error: " + fs_error(e))
        except (ValueError, KeyError, TypeError) as e:
            self.ch.body = None
            self.ch.reply("error: bad request (%s)" % e)
            if cmd in BODIES:
                raise Closed()  # where its body ends is unknown now: don't read it as commands
        finally:
            self.ch.body = None

    def _skip_body(self, reply):
        """Whatever refused a body (any reason, any body command), read the rest of it before
        answering: closing on unread bytes resets the connection, so a client still sending
        would never see why. A rest over DRAIN_MAX (the size is the client's word) ends the
        session instead."""
        left = self.ch.body or 0
        if left > DRAIN_MAX:
            if reply:
                self.ch.reply(reply)
            raise Closed()
        self.drain(left)
        if reply:
            self.ch.reply(reply)

    # -- helpers --------------------------------------------------------------------

    def _trusted(self):
        # lifts the transport's deadline for unauthenticated connections (WiFi TCP)
        f = getattr(self.base, "authenticated", None)
        if f:
            f()

    def send_blob(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.ch.reply(str(len(data)))
        self.ch.write(data)

    def send_file(self, path):
        """`<size>\n<bytes>`, streamed from flash in chunks."""
        self.ch.reply(str(fs.size(path)))
        self._stream(path)

    def _stream(self, path):
        mv = memoryview(self.chunk)
        with open(path, "rb") as f:
            while True:
                n = f.readinto(self.chunk)
                if not n:
                    break
                self.ch.write(mv[:n])

    def read_body(self, n):
        buf = bytearray(n)
        mv = memoryview(buf)
        got = 0
        while got < n:
            got += self.ch.readinto(mv[got:])
        return buf

    def drain(self, n):
        mv = memoryview(self.chunk)
        while n > 0:
            n -= self.ch.readinto(mv[: min(n, CHUNK)])

    def rel_path(self, arg, allow_root=False):
        p = arg.strip()
        while p.startswith("/"):
            p = p[1:]
        if allow_root and not p:
            return p
        why = paths.check(p)
        if why:
            raise Refused("error: bad path %r: %s" % (p[:64], why))
        return p

    # -- documented commands --------------------------------------------------------

    def c_ping(self, arg):
        self.ch.reply("pong")

    def c_version(self, arg):
        self.ch.reply(json.dumps({"version": fs.version_info()["version"]}))

    def c_reset(self, arg):
        # a reset a host asks for is never an unclean boot: the password alone must not be
        # able to walk the boot guard into a rollback (docs/protocol.md "Boot guard")
        guard = sys.modules.get("uota.boot_guard")  # absent where no boot ran (tests' runner)
        if guard:
            guard.host_stopped_boot()
        self.ch.reply("ok")
        self.reset = True

    # -- extensions -----------------------------------------------------------------

    def c_hello(self, arg):
        import gc
        from uota import load

        gc.collect()
        cur = fs.version_info()
        self.nonce = auth.nonce()
        self.hnonce = None
        self.authed = not self.pw
        info = {
            "proto": 5,  # uota.seal.PROTO (not loaded before a challenge)
            "id": auth.device_id(),
            "nonce": self.nonce,
            "auth": bool(self.pw),
            "salt": self.salt,  # PBKDF2 salt and iterations: the host derives the key
            "iter": self.iters,
            "signed": bool(self.sign_key),
            "version": cur.get("version", ""),
            "release": cur.get("release", 0),
            "free": gc.mem_free(),
            "firmware": "%d.%d.%d" % sys.implementation.version[:3],
            "mpy": getattr(sys.implementation, "_mpy", 0) & 0xFF,  # .mpy version it loads
            "deflate": load("uota.packed").WBITS,  # zfile's window bits; 0: plain files only
        }
        line = ("hello " + json.dumps(info) + "\n").encode()
        self.hsum = hashlib.sha256(line).digest()
        self.ch.write(line)

    def c_challenge(self, arg):
        from uota import load

        load("uota.seal").challenge(self, arg.strip())

    def c_auth(self, arg):
        if not self.pw:
            self.ch.reply("ok")
            return
        from uota import load

        if not load("uota.seal").login(self, arg.strip()):  # replies and seals on success
            self.nonce = self.hnonce = None  # one guess per nonce
            from uota import throttle

            throttle.failed(self.ch.raw)  # and a growing pause per source: online guessing stays slow
            raise Refused("error: auth failed")

    def c_files(self, arg):
        # the installed manifest in the lines format: a JSON header line, then the sorted
        # "path:sha256" lines streamed from flash (never built in RAM)
        path = fs.full(fs.MANIFEST)
        head = (json.dumps(fs.version_info()) + "\n").encode()  # sized in bytes: a version may be UTF-8
        size = fs.size(path)
        self.ch.reply(str(len(head) + max(size, 0)))
        self.ch.write(head)
        if size > 0:
            self._stream(path)
