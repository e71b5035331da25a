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


# Signed payloads are netstrings ("<byte length>:<bytes>,"), so no field's content can
# shift a boundary: v1 joined fields with "\n" and a version holding "\n" could absorb a
# file line (docs/protocol.md "Signing"). The first field is a domain tag.
def put(h, field):
    b = field.encode() if isinstance(field, str) else field
    h.update(("%d:" % len(b)).encode())
    h.update(b)
    h.update(b",")


def signed(key, *fields):
    """An Hmac over `fields` as netstrings; put() more (a manifest's paths) before digest()."""
    h = Hmac(key)
    for f in fields:
        put(h, f)
    return h
