# HMAC-SHA256 (MicroPython has hashlib but no hmac module), nonces and the manifest
# signing payload; docs/protocol.md "Authentication" and "Signing".
import hashlib
import binascii


class Hmac:
    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key + bytes(64 - len(key))
        self._outer = bytes(b ^ 0x5C for b in key)
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))

    def update(self, data):
        self._inner.update(data.encode() if isinstance(data, str) else data)

    def digest(self):
        h = hashlib.sha256(self._outer)
        h.update(self._inner.digest())
        return h.digest()

    def hexdigest(self):
        return binascii.hexlify(self.digest()).decode()


def hmac_hex(key, msg):
    h = Hmac(key)
    h.update(msg)
    return h.hexdigest()


def same(a, b):
    # constant-time compare, so response timing doesn't leak how many leading bytes matched
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    r = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        r |= a[i] ^ b[i]
    return r == 0


def nonce():
    import os

    return binascii.hexlify(os.urandom(16)).decode()


def device_id():
    try:
        import machine

        return binascii.hexlify(machine.unique_id()).decode()
    except (ImportError, AttributeError):
        return "unknown"


def sig_prefix(dev_id, nonce_hex, release, version, wipe):
    """The signed payload's header lines; the sorted "path:sha256" lines follow."""
    return "uota-manifest-1%s\n%s\n%s\n%d\n%s\n" % (" wipe" if wipe else "", dev_id, nonce_hex, release, version)


def manifest_sig(key, dev_id, nonce_hex, release, version, files, wipe):
    h = Hmac(key)
    h.update(sig_prefix(dev_id, nonce_hex, release, version, wipe))
    for path in sorted(files):
        h.update("%s:%s\n" % (path, files[path]))
    return h.hexdigest()
