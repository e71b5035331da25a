# Receiving an OTA manifest (docs/protocol.md "Manifest body"): the documented JSON or the
# streamed lines form, checked (paths, order, signature) and written to /ota_pending.txt;
# then the resume check of already staged files. `self` is the session's uota.staging
# Commands. Loaded on demand and unloaded after the session.
import json
from uota import fs, paths, auth, tree, mlist
from uota.session import Refused

LINES_MAGIC = "uota-manifest-lines 1 "
JSON_MAX = 8192  # the JSON form is held in RAM: bigger sets must use the lines form
PROTECTED = "protected (the OTA stack, its state, secrets, data or their directories; uota bootstrap installs the stack)"


def _loads(text):
    # hostile nesting exhausts a small heap: that is a bad request, not a session failure
    try:
        return json.loads(text)
    except MemoryError:
        raise ValueError("JSON too deeply nested")


def receive(self, arg):
    n = int(arg)
    if n <= 0:
        raise ValueError("manifest size must be positive")
    # a refusal anywhere below: the session reads the rest of the body (uota.session._skip_body)
    if not self.in_ota:
        raise Refused("error: send start_ota first")
    self._reset()
    ch = self.s.ch
    if ch.peek() == 0x7B:  # "{": the documented JSON body, held in RAM (small sets only)
        body = None
        if n <= JSON_MAX:
            try:
                body = self.s.read_body(n)
            except MemoryError:
                pass
        if body is None:
            raise Refused("error: a %d-byte JSON manifest doesn't fit in RAM: send the lines form" % n)
        m = _loads(body.decode())
        del body
        if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
            raise Refused("error: manifest has no files object")
        files = m.pop("files")
        header = m
        lines = ["%s:%s" % (p, files[p]) for p in sorted(files)]
        del files
        _ingest(self, header, iter(lines))
    else:
        first = ch.readline()
        left = n - ch.last_len  # bytes, not characters: paths may be UTF-8
        if not first.startswith(LINES_MAGIC):
            raise Refused("error: unknown manifest format")
        header = _loads(first[len(LINES_MAGIC) :])
        _ingest(self, header, _body_lines(self, left))


def _body_lines(self, left):
    while left > 0:
        line = self.s.ch.readline()
        left -= self.s.ch.last_len
        yield line


def _ingest(self, header, lines):
    """Stream the entries to the pending file, checking paths, order and signature.
    (One function, and no new names: under an app that keeps the heap fragmented, every new
    interned name can need a fresh qstr pool block, which failed pushes in tests.)"""
    if not isinstance(header, dict):
        raise Refused("error: bad manifest header")
    cur = fs.version_info()
    version = header.get("version", "")
    release = header.get("release", cur["release"])
    wipe = header.get("wipe", False)
    err = None
    if not isinstance(release, int) or isinstance(release, bool):
        err = "error: release must be an integer"
    elif not isinstance(wipe, bool):
        err = "error: wipe must be true or false"
    elif not isinstance(version, str) or not 0 < len(version) <= 32 \
            or version.strip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._+-"):
        # a strict charset: a version is shown, logged and signed (docs/protocol.md "Manifest body")
        err = "error: bad version %r: use 1 to 32 of 0-9 A-Z a-z . _ + -" % (str(version)[:40],)
    if err:
        raise Refused(err)
    mac = None
    if self.s.sign_key:
        mac = auth.signed(self.s.sign_key.encode(), "uota-manifest-2", auth.device_id(), self.s.nonce or "",
                          "%d" % release, version, "1" if wipe else "0")
    pending = fs.full(fs.PENDING)
    last = ""
    with open(pending, "w") as out:
        for line in lines:
            p, _, sha = line.rpartition(":")
            why = paths.check(p) or (PROTECTED if paths.reserved(p) else None)
            if why:
                err = "error: bad path %r in manifest: %s" % (p[:64], why)
            elif len(sha) != 64:
                err = "error: bad sha256 for %s" % p
            elif p <= last:
                err = "error: manifest entries must be sorted and unique (%s)" % p
            if err:
                break  # the session reads the rest of the body
            else:
                last = p
                out.write(line + "\n")
                if mac:
                    auth.put(mac, p)
                    auth.put(mac, sha)
    if not err and mac:
        sig = header.get("sig")
        if not self.s.nonce or not isinstance(sig, str) or release <= cur["release"]:
            err = "sig_mismatch"
        elif not auth.same(sig, mac.hexdigest()):
            err = "sig_mismatch"
    if not err:
        err = _kinds()  # only once signed: the flash's layout is nobody else's business
    if err:
        fs.remove(pending)
        raise Refused(err)
    self.accepted = {"version": version, "release": max(release, cur["release"]), "wipe": wipe}
    _plan(self)
    self.s.ch.reply("ok")


def _kinds():
    """Refuse a set that would turn a directory into a file or a file into a directory:
    on flash (checked here, before anything is staged) or within the set itself."""
    up = []  # entries that are string prefixes of the current one (bounded by MAX_LEN)
    for p, _ in mlist.entries(fs.full(fs.PENDING)):
        while up and not p.startswith(up[-1]):
            up.pop()  # sorted: no later entry can start with it either
        for q in up:
            if p.startswith(q + "/"):
                return "error: manifest lists %s and a file below it (%s)" % (q, p)
        up.append(p)
        if fs.is_dir(fs.full(p)):
            return "error: %s is a directory on the board; a file can't replace it (%s)" % (
                p, _TWO % ("the files below it", p) if paths.deletable(p + "/x") else "files below it are " + PROTECTED)
        f = tree.file_above(fs.ROOT, p)
        if f:
            return "error: %s needs %s to be a directory, but it is a file on the board (%s)" % (
                p, f, _TWO % (f, p) if paths.deletable(f) else f + " is " + PROTECTED)
    return None


_TWO = "drop %s in one push, add %s in the next"


def _plan(self):
    # resume: a staged file counts only if it has this manifest's hash
    stage = fs.full(fs.STAGE)
    for p, sha in mlist.entries(fs.full(fs.PENDING)):
        s = stage + "/" + p
        if fs.exists(s) and tree.sha256_file(s, self.s.chunk) != sha:
            fs.remove(s)
    self.pending = mlist.Reader(fs.full(fs.PENDING))
