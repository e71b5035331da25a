# The OTA staging commands (start_ota, manifest, need, file, end_ota, abort) of a device
# session: streamed, hashed staging into /ota_stage/ and the commit hand-off
# (docs/protocol.md "OTA session"); receiving the manifest itself is uota.pending.
import json
import binascii
from uota import fs, paths, tree, mlist
from uota.session import Refused, CHUNK


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
        if fs.exists(fs.full(fs.JOURNAL)):
            raise Refused("error: a commit is in progress; reset the board to finish it")
        # a dropped earlier session leaves its staged files: they are reused (resume)
        self._reset()
        self.in_ota = True
        self.s.ch.reply("ready")

    # -- manifest ---------------------------------------------------------------------

    def c_manifest(self, arg):
        # in its own module: one big module doesn't compile within a fragmented small heap
        from uota.runtime import load

        load("uota.pending").receive(self, arg)

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
        try:
            commit.begin(a["version"], a["release"], a["wipe"])
        except Exception as e:
            if not fs.exists(fs.full(fs.JOURNAL)):
                raise  # nothing was changed yet: the old set stands
            # half applied: only the journal replay at boot may finish it, so reset now
            self.in_ota = False
            self.s.reset = True
            raise Refused("error: commit interrupted (%r); the board resets to finish it" % e)
        # a fresh set starts with a fresh unclean-boot count
        fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": 0})
        self.in_ota = False
        self.s.ch.reply("ok")
        self.s.reset = True

    def c_abort(self, arg):
        if fs.exists(fs.full(fs.JOURNAL)):
            # a commit is under way: its stage is the new set, and only the replay at
            # boot may touch it
            raise Refused("error: a commit is in progress; reset the board to finish it")
        self._reset()
        tree.rmtree(fs.full(fs.STAGE))
        fs.remove(fs.full(fs.PENDING))
        self.in_ota = False
        self.s.ch.reply("aborted")
