# The device side of the OTA protocol (docs/protocol.md), over any Channel-compatible byte
# stream: WiFi TCP, the UART (started from the raw REPL) and BLE all run this same code.
# Imported only when a client connects, so its bytecode isn't resident while idle.
import json
import binascii
from uota import fs, paths, auth
from uota.channel import Channel, Closed

CHUNK = 1024
MAX_MANIFEST = 48 * 1024
OPEN_COMMANDS = ("ping", "hello", "auth")


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
        self.pw = sec.get("otaPassword") or ""
        self.sign_key = sec.get("signingKey") or ""
        self.nonce = None
        self.authed = not self.pw
        self.in_ota = False
        self.m = None  # accepted manifest of the current OTA session
        self.staged = set()
        self.reset = False

    def run(self):
        """Serve commands until the peer goes away; True if the device should reset."""
        try:
            while not self.reset:
                try:
                    line = self.ch.readline()
                except ValueError:
                    self.ch.reply("error: line too long")
                    break
                cmd, _, arg = line.partition(" ")
                self.dispatch(cmd, arg)
        except Closed:
            pass
        return self.reset

    def dispatch(self, cmd, arg):
        fn = getattr(self, "c_" + cmd, None)
        if fn is None:
            self.ch.reply("error: unknown command %s" % cmd[:32])
        elif not self.authed and cmd not in OPEN_COMMANDS:
            self.ch.reply("error: auth required")
            if cmd in ("manifest", "file"):
                raise Closed()  # its body would be read as commands
        else:
            try:
                fn(arg)
            except Closed:
                raise
            except Refused as e:
                self.ch.reply(e.args[0])
            except OSError as e:
                self.ch.reply("error: " + fs_error(e))
            except (ValueError, KeyError, TypeError) as e:
                self.ch.reply("error: bad request (%s)" % e)

    # -- helpers --------------------------------------------------------------------

    def send_blob(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.ch.reply(str(len(data)))
        self.ch.write(data)

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

    def installed_same(self, installed, p, sha):
        return installed.get(p) == sha and fs.exists(fs.full(p))

    # -- documented commands --------------------------------------------------------

    def c_ping(self, arg):
        self.ch.reply("pong")

    def c_version(self, arg):
        from uota.commit import installed

        self.ch.reply(json.dumps({"version": installed().get("version", "")}))

    def c_ls(self, arg):
        p = self.rel_path(arg, allow_root=True)
        d = fs.full(p) if p else (fs.ROOT or "/")
        import os

        names = os.listdir(d)
        for name in names:
            full = d.rstrip("/") + "/" + name
            self.ch.reply(name + "/" if fs.is_dir(full) else name)
        self.ch.reply("")

    def c_get(self, arg):
        p = self.rel_path(arg)
        if paths.secret(p):
            raise Refused("error: %s is protected" % p)
        size = fs.size(fs.full(p))
        if size < 0 or fs.is_dir(fs.full(p)):
            raise Refused("error: no such file %s" % p)
        self.ch.reply(str(size))
        mv = memoryview(self.chunk)
        with open(fs.full(p), "rb") as f:
            while True:
                n = f.readinto(self.chunk)
                if not n:
                    break
                self.ch.write(mv[:n])

    def c_rm(self, arg):
        from uota.commit import installed

        p = self.rel_path(arg)
        if not paths.deletable(p):
            raise Refused("error: %s is protected" % p)
        if not fs.exists(fs.full(p)) or fs.is_dir(fs.full(p)):
            raise Refused("error: no such file %s" % p)
        import os

        os.remove(fs.full(p))
        m = installed()
        if m["files"].pop(p, None):
            fs.write_json(fs.full(fs.MANIFEST), m)
        self.ch.reply("ok")

    def c_reset(self, arg):
        self.ch.reply("ok")
        self.reset = True

    def c_wipe(self, arg):
        from uota.commit import installed
        import os

        m = installed()
        for p in [p for p in fs.walk(fs.ROOT) if paths.wipeable(p)]:
            os.remove(fs.full(p))
            fs.prune_dirs(fs.full(p), fs.ROOT)
            m["files"].pop(p, None)
        fs.write_json(fs.full(fs.MANIFEST), m)
        self.ch.reply("ok")

    def c_start_ota(self, arg):
        # a dropped earlier session leaves its staged files: they are reused (resume)
        self.in_ota = True
        self.m = None
        self.staged = set()
        self.ch.reply("ready")

    def c_manifest(self, arg):
        n = int(arg)
        if n > MAX_MANIFEST:
            self.drain(n)
            raise Refused("error: manifest larger than %d bytes" % MAX_MANIFEST)
        body = self.read_body(n)
        if not self.in_ota:
            raise Refused("error: send start_ota first")
        m = json.loads(body.decode())
        del body
        files = m.get("files")
        if not isinstance(files, dict):
            raise Refused("error: manifest has no files object")
        for p, sha in files.items():
            why = paths.check(p)
            if why or paths.reserved(p):
                raise Refused("error: bad path %r in manifest: %s" % (p[:64], why or "protected"))
            if not isinstance(sha, str) or len(sha) != 64:
                raise Refused("error: bad sha256 for %s" % p)
        from uota.commit import installed

        cur = installed()
        version = m.get("version", "")
        if not isinstance(version, str):
            raise Refused("error: version must be a string")
        release = m.get("release", cur.get("release", 0))
        if not isinstance(release, int):
            raise Refused("error: release must be an integer")
        wipe = m.get("wipe") is True
        if self.sign_key:
            sig = m.get("sig")
            if not self.nonce or not isinstance(sig, str) or release <= cur.get("release", 0):
                raise Refused("sig_mismatch")
            want = auth.manifest_sig(
                self.sign_key.encode(), auth.device_id(), self.nonce, release, version, files, wipe
            )
            if not auth.same(sig, want):
                raise Refused("sig_mismatch")
        self.m = {"files": files, "version": version, "release": max(release, cur.get("release", 0)), "wipe": wipe}
        # resume: staged files from an interrupted session count if their hash matches
        self.staged = set()
        have = cur["files"]
        stage = fs.full(fs.STAGE)
        for p, sha in files.items():
            s = stage + "/" + p
            if self.installed_same(have, p, sha) or not fs.exists(s):
                continue
            if fs.sha256_file(s, self.chunk) == sha:
                self.staged.add(p)
            else:
                fs.remove(s)
        self.ch.reply("ok")

    def c_file(self, arg):
        p, size, sha = arg.split(";")
        size = int(size)
        m = self.m
        why = paths.check(p)
        if not self.in_ota or m is None:
            err = "error: send start_ota and manifest first"
        elif why:
            err = "error: bad path %r: %s" % (p[:64], why)
        elif m["files"].get(p) != sha:
            err = "error: %s is not in the manifest with that sha256" % p
        else:
            err = None
        if err:
            self.drain(size)
            raise Refused(err)
        dst = fs.full(fs.STAGE) + "/" + p
        got = self.receive(dst + ".part", size)
        if got == sha:
            fs.move(dst + ".part", dst)
            self.staged.add(p)
            self.ch.reply("ok")
        else:
            fs.remove(dst + ".part")
            self.ch.reply("sha256_mismatch" if got else "error: no space left on device")

    def receive(self, part, size):
        """Stream `size` bytes into `part` while hashing; the sha256, or None if the flash filled."""
        import hashlib

        h = hashlib.sha256()
        mv = memoryview(self.chunk)
        failed = False
        fs.makedirs_for(part)
        f = None
        try:
            f = open(part, "wb")
        except OSError:
            failed = True
        left = size
        while left > 0:
            n = self.ch.readinto(mv[: min(left, CHUNK)])
            left -= n
            if failed:
                continue  # keep reading so the stream stays in sync
            h.update(mv[:n])
            try:
                f.write(mv[:n])
            except OSError:
                failed = True
        if f:
            try:
                f.close()
            except OSError:
                failed = True
        return None if failed else binascii.hexlify(h.digest()).decode()

    def missing(self):
        from uota.commit import installed

        have = installed()["files"]
        return [p for p, sha in self.m["files"].items() if p not in self.staged and not self.installed_same(have, p, sha)]

    def c_end_ota(self, arg):
        if not self.in_ota or self.m is None:
            raise Refused("error: send start_ota and manifest first")
        gone = self.missing()
        if gone:
            raise Refused("error: missing %s" % gone[0])
        from uota import commit

        m = self.m
        commit.begin(m["files"], m["version"], m["release"], list(self.staged), m["wipe"])
        # a fresh set starts with a fresh unclean-boot count
        fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": 0})
        self.in_ota = False
        self.ch.reply("ok")
        self.reset = True

    def c_abort(self, arg):
        fs.rmtree(fs.full(fs.STAGE))
        self.in_ota = False
        self.m = None
        self.staged = set()
        self.ch.reply("aborted")

    # -- extensions -----------------------------------------------------------------

    def c_hello(self, arg):
        from uota.commit import installed
        import gc

        cur = installed()
        self.nonce = auth.nonce()
        self.authed = not self.pw
        info = {
            "proto": 2,
            "id": auth.device_id(),
            "nonce": self.nonce,
            "auth": bool(self.pw),
            "signed": bool(self.sign_key),
            "version": cur.get("version", ""),
            "release": cur.get("release", 0),
            "free": gc.mem_free(),
        }
        self.ch.reply("hello " + json.dumps(info))

    def c_auth(self, arg):
        if not self.pw:
            self.ch.reply("ok")
            return
        if not self.nonce:
            raise Refused("error: send hello first")
        want = auth.hmac_hex(binascii.unhexlify(self.pw), self.nonce.encode())
        if auth.same(arg.strip(), want):
            self.authed = True
            self.ch.reply("ok")
        else:
            self.nonce = None  # one guess per nonce
            raise Refused("error: auth failed")

    def c_files(self, arg):
        from uota.commit import installed

        self.send_blob(json.dumps(installed()))

    def c_need(self, arg):
        if not self.in_ota or self.m is None:
            raise Refused("error: send start_ota and manifest first")
        self.send_blob(json.dumps(self.missing()))

    def c_passwd(self, arg):
        if not self.pw:
            raise Refused("error: the device has no password; provision it over USB with uota bootstrap")
        masked, mac = arg.strip().split(";")
        key = binascii.unhexlify(self.pw)
        pad = binascii.unhexlify(auth.hmac_hex(key, ("passwd-mask:" + self.nonce).encode()))
        masked = binascii.unhexlify(masked)
        if len(masked) != 32:
            raise Refused("error: bad passwd request")
        new = binascii.hexlify(bytes(masked[i] ^ pad[i] for i in range(32))).decode()
        want = auth.hmac_hex(key, ("passwd-set:%s:%s" % (self.nonce, new)).encode())
        if not auth.same(mac, want):
            raise Refused("error: passwd request failed verification")
        sec = fs.read_json(fs.full(fs.SECRETS), {})
        sec["otaPassword"] = new
        fs.write_json(fs.full(fs.SECRETS), sec)
        self.pw = new
        self.ch.reply("ok")
