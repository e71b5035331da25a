# The OTA staging commands (start_ota, manifest, need, file, end_ota, abort) of a device
# session: streamed, hashed staging into /ota_stage/, resume, and the commit hand-off
# (docs/protocol.md "OTA session").
import json
import binascii
from uota import fs, paths, auth, tree
from uota.channel import Closed  # noqa: F401  (raised through from the channel)
from uota.session import Refused, CHUNK

MAX_MANIFEST = 48 * 1024


class Commands:
    def __init__(self, session):
        self.s = session
        self.in_ota = False
        self.m = None  # accepted manifest of the current OTA session
        self.staged = set()

    def installed_same(self, installed, p, sha):
        return installed.get(p) == sha and fs.exists(fs.full(p))

    def c_start_ota(self, arg):
        # a dropped earlier session leaves its staged files: they are reused (resume)
        self.in_ota = True
        self.m = None
        self.staged = set()
        self.s.ch.reply("ready")

    def c_manifest(self, arg):
        n = int(arg)
        if n > MAX_MANIFEST:
            self.s.drain(n)
            raise Refused("error: manifest larger than %d bytes" % MAX_MANIFEST)
        body = self.s.read_body(n)
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
        if self.s.sign_key:
            sig = m.get("sig")
            if not self.s.nonce or not isinstance(sig, str) or release <= cur.get("release", 0):
                raise Refused("sig_mismatch")
            want = auth.manifest_sig(
                self.s.sign_key.encode(), auth.device_id(), self.s.nonce, release, version, files, wipe
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
            if tree.sha256_file(s, self.s.chunk) == sha:
                self.staged.add(p)
            else:
                fs.remove(s)
        self.s.ch.reply("ok")

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
            self.s.drain(size)
            raise Refused(err)
        dst = fs.full(fs.STAGE) + "/" + p
        got = self.receive(dst + ".part", size)
        if got == sha:
            fs.move(dst + ".part", dst)
            self.staged.add(p)
            self.s.ch.reply("ok")
        else:
            fs.remove(dst + ".part")
            self.s.ch.reply("sha256_mismatch" if got else "error: no space left on device")

    def receive(self, part, size):
        """Stream `size` bytes into `part` while hashing; the sha256, or None if the flash filled."""
        import hashlib

        h = hashlib.sha256()
        mv = memoryview(self.s.chunk)
        failed = False
        fs.makedirs_for(part)
        f = None
        try:
            f = open(part, "wb")
        except OSError:
            failed = True
        left = size
        while left > 0:
            n = self.s.ch.readinto(mv[: min(left, CHUNK)])
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
        self.s.ch.reply("ok")
        self.s.reset = True

    def c_abort(self, arg):
        tree.rmtree(fs.full(fs.STAGE))
        self.in_ota = False
        self.m = None
        self.staged = set()
        self.s.ch.reply("aborted")

    def c_need(self, arg):
        if not self.in_ota or self.m is None:
            raise Refused("error: send start_ota and manifest first")
        self.s.send_blob(json.dumps(self.missing()))
