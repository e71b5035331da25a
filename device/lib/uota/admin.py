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

    def _check_sig(self, what, tag, subject, sig):
        # with a signing key, whatever changes the installed set (a delete) or who may update
        # the board (passwd) needs a signature bound to this session, as a manifest does: the
        # password alone must not (docs/protocol.md "Signing")
        key = self.s.sign_key
        if not key:
            return
        if not sig:
            raise Refused("error: %s needs a signature: this device has a signing key (set signingKey "
                          "in config/.ota.secrets.json to the key provisioned with uota bootstrap)" % what)
        if not self.s.nonce:
            raise Refused("error: send hello first: the %s signature is bound to its nonce" % what)
        release = fs.version_info()["release"]
        want = auth.signed(key.encode(), tag, auth.device_id(), self.s.nonce, "%d" % release, subject).hexdigest()
        if not auth.same(sig, want):
            raise Refused("error: %s signature refused: not made with this device's signing key for "
                          "this session, device, release and request" % what)

    def c_rm(self, arg):
        import os

        # `rm <path>` or, signed, `rm <path>;<sig>` (paths never hold ";")
        arg, _, sig = arg.partition(";")
        p = self.s.rel_path(arg)
        self._check_sig("rm", "uota-rm-2", p, sig.strip())
        if not paths.deletable(p):
            raise Refused("error: %s is protected" % p)
        if not fs.exists(fs.full(p)) or fs.is_dir(fs.full(p)):
            raise Refused("error: no such file %s" % p)
        os.remove(fs.full(p))
        mlist.keep_existing()
        self.s.ch.reply("ok")

    def c_wipe(self, arg):
        import os

        self._check_sig("wipe", "uota-wipe-2", "", arg.strip())
        for p in tree.walk(fs.ROOT, prune=True):  # each file goes as it is read
            if paths.wipeable(p):
                os.remove(fs.full(p))
        mlist.keep_existing()
        self.s.ch.reply("ok")

    def c_passwd(self, arg):
        # `passwd <masked key>;<salt>;<iterations>`: the new PBKDF2 key, computed by the host
        # and masked under the current key and both nonces; the record layer that carries
        # it authenticates it (docs/protocol.md "Changing the password")
        s = self.s
        if not s.pw:
            raise Refused("error: the device has no password; provision it over USB with uota bootstrap")
        # `passwd <masked>;<salt>;<iter>`, and on a board with a signing key `;<sig>` over
        # those three: whoever holds only the password can't lock the signer out
        req, sig = arg.strip(), ""
        if req.count(";") > 2:
            req, _, sig = req.rpartition(";")
        self._check_sig("passwd", "uota-passwd-sig-1", req, sig)
        masked, salt, iters = req.split(";")
        masked = binascii.unhexlify(masked)
        iters = int(iters)
        # the iterations the host accepts (uota_core.auth): more would lock it out until a USB bootstrap
        if len(masked) != 32 or len(salt) != 32 or salt.strip("0123456789abcdef") or not 100000 <= iters <= 10000000:
            raise Refused("error: bad passwd request (32-byte key, 16-byte hex salt, 100000 to 10000000 iterations)")
        pad = auth.Hmac(binascii.unhexlify(s.pw))
        pad.update("uota-passwd-3\n%s\n%s" % (s.nonce, s.hnonce))
        pad = pad.digest()
        new = binascii.hexlify(bytes(masked[i] ^ pad[i] for i in range(32))).decode()
        sec = fs.read_json(fs.full(fs.SECRETS), {})
        sec.pop("otaPassword", None)
        sec.update({"otaKey": new, "otaSalt": salt, "otaIter": iters})
        fs.write_json(fs.full(fs.SECRETS), sec)
        s.pw, s.salt, s.iters = new, salt, iters
        import uota.remoteio

        uota.remoteio.password, uota.remoteio.salt, uota.remoteio.iters = new, salt, iters  # RemoteIO too
        s.ch.reply("ok")


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
