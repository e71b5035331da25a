# Device file commands (ls, get, rm, wipe) and the password change of a device session.
# A separate module, loaded on first use: small modules compile within a small heap.
import json
import binascii
from uota import fs, paths, auth, tree, mlist
from uota.session import Refused


class Commands:
    def __init__(self, session):
        self.s = session

    def c_ls(self, arg):
        p = self.s.rel_path(arg, allow_root=True)
        d = fs.full(p) if p else (fs.ROOT or "/")
        import os

        for e in os.ilistdir(d):  # one entry at a time: any file count fits
            self.s.ch.reply(e[0] + "/" if e[1] == tree.DIR else e[0])
        self.s.ch.reply("")

    def c_get(self, arg):
        p = self.s.rel_path(arg)
        if paths.secret(p):
            raise Refused("error: %s is protected" % p)
        size = fs.size(fs.full(p))
        if size < 0 or fs.is_dir(fs.full(p)):
            raise Refused("error: no such file %s" % p)
        # the size line commits us to sending the file: scan it for key material first
        if self._holds_key(fs.full(p)):
            raise Refused("error: %s is protected: it holds this board's key material" % p)
        self.s.send_file(fs.full(p))

    def _holds_key(self, path):
        """True if the file contains any string value of the secrets file (the OTA key, the
        signing key, whatever field they are in), read in chunks with an overlap."""
        keys = []
        _strings(fs.read_json(fs.full(fs.SECRETS), {}), keys)
        if not keys:
            return False
        keep = max(len(k) for k in keys) - 1
        buf = self.s.chunk
        tail = b""
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    return False
                data = (tail + bytes(buf[:n])).lower()  # a key in hex may be upper-cased
                for k in keys:
                    if k in data:
                        return True
                tail = data[len(data) - keep:] if len(data) > keep else data

    def c_rm(self, arg):
        import os

        p = self.s.rel_path(arg)
        if not paths.deletable(p):
            raise Refused("error: %s is protected" % p)
        if not fs.exists(fs.full(p)) or fs.is_dir(fs.full(p)):
            raise Refused("error: no such file %s" % p)
        os.remove(fs.full(p))
        mlist.keep_existing()
        self.s.ch.reply("ok")

    def c_wipe(self, arg):
        import os

        for p in tree.walk(fs.ROOT, prune=True):  # each file goes as it is read
            if paths.wipeable(p):
                os.remove(fs.full(p))
        mlist.keep_existing()
        self.s.ch.reply("ok")

    def c_passwd(self, arg):
        if not self.s.pw:
            raise Refused("error: the device has no password; provision it over USB with uota bootstrap")
        masked, mac = arg.strip().split(";")
        key = binascii.unhexlify(self.s.pw)
        pad = binascii.unhexlify(auth.hmac_hex(key, ("passwd-mask:" + self.s.nonce).encode()))
        masked = binascii.unhexlify(masked)
        if len(masked) != 32:
            raise Refused("error: bad passwd request")
        new = binascii.hexlify(bytes(masked[i] ^ pad[i] for i in range(32))).decode()
        want = auth.hmac_hex(key, ("passwd-set:%s:%s" % (self.s.nonce, new)).encode())
        if not auth.same(mac, want):
            raise Refused("error: passwd request failed verification")
        sec = fs.read_json(fs.full(fs.SECRETS), {})
        sec["otaPassword"] = new
        fs.write_json(fs.full(fs.SECRETS), sec)
        self.s.pw = new
        import uota.remoteio

        uota.remoteio.password = new  # RemoteIO checks the same password from now on
        self.s.ch.reply("ok")


def _strings(v, out):
    # every string of 8+ characters in the secrets file, lower-cased, wherever it is nested
    if isinstance(v, str):
        if len(v) >= 8:
            out.append(v.lower().encode())
    elif isinstance(v, dict):
        for x in v.values():
            _strings(x, out)
    elif isinstance(v, list):
        for x in v:
            _strings(x, out)
