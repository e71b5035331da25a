# The OTA staging commands (start_ota, manifest, need, file, end_ota, abort) of a device
# session: streamed, hashed staging into /ota_stage/ and the commit hand-off
# (docs/protocol.md "OTA session"); receiving the manifest itself is uota.pending.
import json
import binascii
from uota import fs, paths, tree, mlist
from uota.session import Refused, CHUNK


NO_WINDOW = "no-window"  # receive(): the inflater found no room for its window


class Commands:
    def __init__(self, session):
        self.s = session
        self.in_ota = False
        self.accepted = None  # header of the accepted manifest: version, release, wipe
        self.pending = None  # mlist.Reader over the pending manifest, for `file` checks
        self.commit = None  # uota.commit, loaded by start_ota

    def _reset(self):
        if self.pending:
            self.pending.close()
        self.pending = None
        self.accepted = None

    def c_start_ota(self, arg):
        if fs.exists(fs.full(fs.JOURNAL)):
            raise Refused("error: a commit is in progress; reset the board to finish it")
        # load the commit code now, while nothing is staged: compiling it at end_ota, after
        # the whole transfer, can fail on a heap an app keeps churning
        from uota import load

        self.commit = load("uota.commit")
        # a dropped earlier session leaves its staged files: they are reused (resume)
        self._reset()
        self.in_ota = True
        self.s.ch.reply("ready")

    # -- manifest ---------------------------------------------------------------------

    def c_manifest(self, arg):
        # in its own module: one big module doesn't compile within a fragmented small heap
        from uota import load

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
            size += len(json.dumps(p).encode()) + (1 if count else 0)  # bytes: paths may be UTF-8
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
        self._stage(arg, False)

    def c_zfile(self, arg):
        self._stage(arg, True)

    def _stage(self, arg, packed):
        # `file <path>;<size>;<sha256>` or `zfile <path>;<size>;<sha256>;<body size>`
        fields = arg.split(";")
        if len(fields) != (4 if packed else 3):
            raise ValueError("expected %d fields" % (4 if packed else 3))
        p, size, sha = fields[:3]
        size = int(size)
        body = int(fields[3]) if packed else size
        if size < 0 or body < 0:
            raise ValueError("negative size")
        why = paths.check(p)
        if not self.in_ota or self.accepted is None:
            err = "error: send start_ota and manifest first"
        elif why:
            err = "error: bad path %r: %s" % (p[:64], why)
        elif self.pending.find(p) != sha:
            err = "error: %s is not in the manifest with that sha256" % p
        elif packed and not _packed().WBITS:
            err = "error: zfile unsupported: this firmware has no deflate module"
        else:
            err = None
        if err:
            raise Refused(err)  # the session reads the body before it answers
        dst = fs.full(fs.STAGE) + "/" + p
        got = self.receive(dst + ".part", size, body if packed else -1)
        if got == sha:
            fs.move(dst + ".part", dst)
            self.s.ch.reply("ok")
        else:
            fs.remove(dst + ".part")
            if got is NO_WINDOW:
                self.s.ch.reply("inflate_unavailable")  # the host sends this file plain
            else:
                self.s.ch.reply("error: no space left on device" if got is None else "sha256_mismatch")

    def receive(self, part, size, packed=-1):
        """Stream `size` bytes into `part` while hashing: plain, or inflated from a
        `packed`-byte deflate body. The sha256 ("" if the body doesn't inflate to exactly
        `size` bytes), None if the flash filled, NO_WINDOW if the inflater found no room."""
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
        body = src = None
        if packed >= 0:
            mod = _packed()
            body = mod.Body(self.s.ch, packed, bytearray(128))
        left = size
        while left > 0:
            if body is None:
                n = self.s.ch.readinto(mv[: min(left, CHUNK)])
            else:
                try:
                    if src is None:
                        src = mod.inflater(body)
                    n = src.readinto(mv[: min(left, CHUNK)])
                except (OSError, EOFError):  # not a deflate stream, or one cut short
                    n = 0
                except MemoryError:  # no block for the 4 KB window (taken when made or on first read)
                    n, src = 0, None
                    left = NO_WINDOW
                if not n:
                    break  # it inflated to fewer bytes than declared
            left -= n
            if failed:
                continue  # keep reading so the stream stays in sync
            h.update(mv[:n])
            try:
                f.write(mv[:n])
            except OSError:
                failed = True
        if body is not None:
            if left != NO_WINDOW:
                try:
                    if src is None:
                        src = mod.inflater(body)  # a 0-byte file: its body must end at once
                    if left or src.readinto(mv[:1]):
                        left = -1  # short or long: the hash can't match what was declared
                except (OSError, EOFError):
                    left = -1
                except MemoryError:
                    left = NO_WINDOW
            body.drain()
        if f:
            try:
                f.close()
            except OSError:
                failed = True
        if left == NO_WINDOW:
            return NO_WINDOW
        if failed:
            return None
        return "" if left else binascii.hexlify(h.digest()).decode()

    # -- commit / abort ---------------------------------------------------------------

    def c_end_ota(self, arg):
        self._require_manifest()
        commit = self.commit
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


def _packed():
    from uota import load

    return load("uota.packed")
