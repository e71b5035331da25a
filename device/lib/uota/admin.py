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

        names = os.listdir(d)
        for name in names:
            full = d.rstrip("/") + "/" + name
            self.s.ch.reply(name + "/" if fs.is_dir(full) else name)
        self.s.ch.reply("")

    def c_get(self, arg):
        p = self.s.rel_path(arg)
        if paths.secret(p):
            raise Refused("error: %s is protected" % p)
        size = fs.size(fs.full(p))
        if size < 0 or fs.is_dir(fs.full(p)):
            raise Refused("error: no such file %s" % p)
        self.s.send_file(fs.full(p))

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

        for p in tree.walk(fs.ROOT):  # listdir per dir: deleting as we go is safe
            if not paths.wipeable(p):
                continue
            os.remove(fs.full(p))
            tree.prune_dirs(fs.full(p), fs.ROOT)
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
