# The OTA staging commands (start_ota, manifest, need, file, end_ota, abort) of a device
# session: the pending manifest streamed to flash, signature check, resume, streamed and
# hashed staging into /ota_stage/, and the commit hand-off (docs/protocol.md "OTA session").
import json
import binascii
from uota import fs, paths, auth, tree, mlist
from uota.session import Refused, CHUNK

LINES_MAGIC = "uota-manifest-lines 1 "


class Commands:
    def __init__(self, session):
        self.s = session
        self.in_ota = False
        self.accepted = None  # header of the accepted manifest: version, release, wipe
        self.pending = None  # mlist.Reader over the pending manifest, for `file` checks

    def _reset(self):
        if self.pending:
            self.pending.close()
        self.pending = None
        self.accepted = None

    def c_start_ota(self, arg):
        # a dropped earlier session leaves its staged files: they are reused (resume)
        self._reset()
        self.in_ota = True
        self.s.ch.reply("ready")

    # -- manifest ---------------------------------------------------------------------

    def c_manifest(self, arg):
        n = int(arg)
        if n <= 0:
            raise ValueError("manifest size must be positive")
        if not self.in_ota:
            self.s.drain(n)
            raise Refused("error: send start_ota first")
        self._reset()
        ch = self.s.ch
        if ch.peek() == 0x7B:  # "{": the documented JSON body, held in RAM (small sets only)
            m = json.loads(self.s.read_body(n).decode())
            if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
                raise Refused("error: manifest has no files object")
            files = m.pop("files")
            header = m
            lines = ["%s:%s" % (p, files[p]) for p in sorted(files)]
            del files
            self._ingest(header, iter(lines))
        else:
            first = ch.readline()
            left = n - len(first) - 1
            if not first.startswith(LINES_MAGIC):
                self.s.drain(left)
                raise Refused("error: unknown manifest format")
            header = json.loads(first[len(LINES_MAGIC) :])
            self._ingest(header, self._body_lines(left))

    def _body_lines(self, left):
        while left > 0:
            line = self.s.ch.readline()
            left -= len(line) + 1
            yield line

    def _ingest(self, header, lines):
        """Stream the entries to the pending file, checking paths, order and signature."""
        if not isinstance(header, dict):
            raise Refused("error: bad manifest header")
        cur = fs.version_info()
        version = header.get("version", "")
        release = header.get("release", cur["release"])
        wipe = header.get("wipe") is True
        if not isinstance(version, str) or not isinstance(release, int):
            self._drain_lines(lines)
            raise Refused("error: version must be a string and release an integer")
        mac = None
        if self.s.sign_key:
            mac = auth.Hmac(self.s.sign_key.encode())
            mac.update(auth.sig_prefix(auth.device_id(), self.s.nonce or "", release, version, wipe))
        pending = fs.full(fs.PENDING)
        err = None
        last = ""
        with open(pending, "w") as out:
            for line in lines:
                if err:
                    continue  # keep reading: the stream must stay in sync
                p, _, sha = line.rpartition(":")
                why = paths.check(p) or ("protected" if paths.reserved(p) else None)
                if why:
                    err = "error: bad path %r in manifest: %s" % (p[:64], why)
                elif len(sha) != 64:
                    err = "error: bad sha256 for %s" % p
                elif p <= last:
                    err = "error: manifest entries must be sorted and unique (%s)" % p
                else:
                    last = p
                    out.write(line + "\n")
                    if mac:
                        mac.update(line + "\n")
        if not err and mac:
            sig = header.get("sig")
            if not self.s.nonce or not isinstance(sig, str) or release <= cur["release"]:
                err = "sig_mismatch"
            elif not auth.same(sig, mac.hexdigest()):
                err = "sig_mismatch"
        if err:
            fs.remove(pending)
            raise Refused(err)
        self.accepted = {"version": version, "release": max(release, cur["release"]), "wipe": wipe}
        self._plan()
        self.s.ch.reply("ok")

    def _drain_lines(self, lines):
        for _ in lines:
            pass

    def _plan(self):
        # resume: a staged file counts only if it has this manifest's hash
        stage = fs.full(fs.STAGE)
        for p, sha in mlist.entries(fs.full(fs.PENDING)):
            s = stage + "/" + p
            if fs.exists(s) and tree.sha256_file(s, self.s.chunk) != sha:
                fs.remove(s)
        self.pending = mlist.Reader(fs.full(fs.PENDING))

    def _needed(self):
        # pending entries neither installed unchanged nor staged; no list is kept, so a
        # 100-file set doesn't leave 100 strings scattered over the heap
        inst = mlist.Reader(fs.full(fs.MANIFEST))
        stage = fs.full(fs.STAGE)
        try:
            for p, sha in mlist.entries(fs.full(fs.PENDING)):
                if fs.exists(stage + "/" + p):
                    continue
                if inst.seek(p) == sha and fs.exists(fs.full(p)):
                    continue
                yield p
        finally:
            inst.close()

    def c_need(self, arg):
        self._require_manifest()
        size, count = 2, 0
        for p in self._needed():
            size += len(json.dumps(p)) + (1 if count else 0)
            count += 1
        self.s.ch.reply(str(size))
        self.s.ch.write("[")
        first = True
        for p in self._needed():
            self.s.ch.write(("" if first else ",") + json.dumps(p))
            first = False
        self.s.ch.write("]")

    def _require_manifest(self):
        if not self.in_ota or self.accepted is None:
            raise Refused("error: send start_ota and manifest first")

    # -- files ------------------------------------------------------------------------

    def c_file(self, arg):
        p, size, sha = arg.split(";")
        size = int(size)
        if size < 0:
            raise ValueError("negative size")
        why = paths.check(p)
        if not self.in_ota or self.accepted is None:
            err = "error: send start_ota and manifest first"
        elif why:
            err = "error: bad path %r: %s" % (p[:64], why)
        elif self.pending.find(p) != sha:
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

    # -- commit / abort ---------------------------------------------------------------

    def c_end_ota(self, arg):
        self._require_manifest()
        from uota import commit

        for p in self._needed():
            raise Refused("error: missing %s" % p)
        a = self.accepted
        self._reset()
        commit.begin(a["version"], a["release"], a["wipe"])
        # a fresh set starts with a fresh unclean-boot count
        fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": 0})
        self.in_ota = False
        self.s.ch.reply("ok")
        self.s.reset = True

    def c_abort(self, arg):
        self._reset()
        tree.rmtree(fs.full(fs.STAGE))
        fs.remove(fs.full(fs.PENDING))
        self.in_ota = False
        self.s.ch.reply("aborted")
