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
        # `passwd <masked key>;<salt>;<iterations>`: the new PBKDF2 key, computed by the host
        # and masked under the current key and both nonces; the record layer that carries
        # it authenticates it (docs/protocol.md "Changing the password")
        s = self.s
        if not s.pw:
            raise Refused("error: the device has no password; provision it over USB with uota bootstrap")
        masked, salt, iters = arg.strip().split(";")
        masked = binascii.unhexlify(masked)
        if len(masked) != 32 or len(salt) != 32 or salt.strip("0123456789abcdef") or int(iters) < 100000:
            raise Refused("error: bad passwd request (32-byte key, 16-byte hex salt, >= 100000 iterations)")
        pad = auth.Hmac(binascii.unhexlify(s.pw))
        pad.update("uota-passwd-3\n%s\n%s" % (s.nonce, s.hnonce))
        pad = pad.digest()
        new = binascii.hexlify(bytes(masked[i] ^ pad[i] for i in range(32))).decode()
        sec = fs.read_json(fs.full(fs.SECRETS), {})
        sec.pop("otaPassword", None)
        sec.update({"otaKey": new, "otaSalt": salt, "otaIter": int(iters)})
        fs.write_json(fs.full(fs.SECRETS), sec)
        s.pw, s.salt, s.iters = new, salt, int(iters)
        import uota.remoteio

        uota.remoteio.password, uota.remoteio.salt, uota.remoteio.iters = new, salt, int(iters)  # RemoteIO too
        s.ch.reply("ok")
