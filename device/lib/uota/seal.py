# The mutual proof, the session keys and the record layer of an authenticated connection
# (docs/protocol.md "Authentication" and "Records"), for the OTA session and RemoteIO.
# Loaded on first use, at `challenge`: the resident stack stays small.
#
# A record:  len (2 bytes, big-endian, 1..1024) | ciphertext | tag (16 bytes)
#   ciphertext = AES-256-CBC(enc key, iv, plaintext zero-padded to 16 bytes)
#   iv         = AES-256-ECB(enc key, 8 zero bytes | seq)
#   tag        = HMAC-SHA256(mac key, seq | len | ciphertext)[:16]
# seq (8 bytes, big-endian) counts the records of one direction from 0 and is never sent:
# a dropped, replayed, reordered or injected record fails its tag and ends the connection.
import hashlib
import binascii
from cryptolib import aes
from uota import auth

MAX = 1024  # plaintext bytes per record: bounds the device's buffers
RECORD_MS = 5000  # a record must arrive whole this soon after its first byte, or go out this soon (WiFi TCP)
PROTO = 5


def proof(key, who, dev_id, dnonce, hnonce, hsum):
    # who: "dev" or "host"; the label keeps one side's proof from serving as the other's.
    # hsum: sha256 of the hello line exactly as the device sent it (the session's `hsum`):
    # the hello travels in clear, so a relay's edit of any of its fields (mpy, version...)
    # fails the device's proof on the host before it sends anything keyed (protocol 4)
    h = auth.Hmac(key)
    h.update("uota-proof-%d %s\n%s\n%s\n%s\n" % (PROTO, who, dev_id, dnonce, hnonce))
    h.update(binascii.hexlify(hsum))
    return h.hexdigest()


def _nonce_ok(h):
    return isinstance(h, str) and len(h) == 32 and not h.strip("0123456789abcdef")


def challenge(s, h):
    """Session `s`'s `challenge <h>`: the host's nonce. The device proves the key first, so
    the host sends nothing keyed to a device that can't (an impostor, or a relay's own
    connection)."""
    from uota.session import Refused

    if not s.pw:
        raise Refused("error: the device has no password")
    if not s.salt:
        raise Refused("error: this device's password was provisioned by an older uota: re-run uota bootstrap")
    if not s.nonce or s.hnonce is not None:
        raise Refused("error: send hello first")
    if not _nonce_ok(h):
        raise Refused("error: bad challenge: 32 lowercase hex digits")
    s.hnonce = h
    s.ch.reply("proof " + proof(binascii.unhexlify(s.pw), "dev", auth.device_id(), s.nonce, h, s.hsum))


def login(s, response):
    """The host's proof for session `s`: on success reply `ok` and carry the connection in
    records from then on; False if wrong (the caller pays the wrong guess)."""
    from uota.session import Refused

    if not s.nonce or not s.hnonce:
        raise Refused("error: send hello first, then challenge (protocol %d)" % PROTO)
    key = binascii.unhexlify(s.pw)
    dev = auth.device_id()
    if not auth.same(response, proof(key, "host", dev, s.nonce, s.hnonce, s.hsum)):
        return False
    s.authed = True
    s._trusted()
    from uota import lobby

    lobby.proved(getattr(s.base, "peer", None))  # this address gets a place ahead of strangers
    s.ch.reply("ok")
    if s.ch.start != s.ch.end:
        from uota.channel import Closed

        raise Closed()  # bytes sent before the keys were agreed can't be trusted
    s.ch.raw = Sealed(s.base, keys(key, dev, s.nonce, s.hnonce))
    return True


def rio_challenge(c, h, key_hex, salt):
    """RemoteIO client `c`'s challenge: the frame to answer it with (once per connection).
    `c` keeps dev, nonce, hnonce and hsum (sha256 of the hello frame it was sent)."""
    if c.authed or not c.nonce or c.hnonce is not None or not salt or not _nonce_ok(h):
        return b'{"e": "bad challenge"}\n'
    c.hnonce = h
    return ('{"proof": "%s"}\n' % proof(binascii.unhexlify(key_hex), "dev", c.dev, c.nonce, h, c.hsum)).encode()


def rio_auth(c, response, key_hex):
    """The session keys (as keys()) if `response` is the host's proof for RemoteIO client
    `c`, else None: everything after its `{"auth": "ok"}` travels in records under them."""
    if not (c.hnonce and isinstance(response, str)):
        return None
    key = binascii.unhexlify(key_hex)
    if not auth.same(response, proof(key, "host", c.dev, c.nonce, c.hnonce, c.hsum)):
        return None
    return keys(key, c.dev, c.nonce, c.hnonce)


def hkdf(ikm, salt, info, n):
    # RFC 5869 with HMAC-SHA256
    h = auth.Hmac(salt)
    h.update(ikm)
    prk = h.digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        h = auth.Hmac(prk)
        h.update(t)
        h.update(info)
        h.update(bytes((i,)))
        t = h.digest()
        out += t
        i += 1
    return out[:n]


def keys(key, dev_id, dnonce, hnonce):
    """(host->device enc, host->device mac, device->host enc, device->host mac)."""
    k = hkdf(key, (dnonce + hnonce).encode(), ("uota-session-%d %s" % (PROTO, dev_id)).encode(), 128)
    return k[:32], k[32:64], k[64:96], k[96:]


class _Mac:
    # HMAC-SHA256 with the pads computed once: one record costs two C-speed hashes
    def __init__(self, key):
        key = key + bytes(64 - len(key))
        self.i = bytes(b ^ 0x36 for b in key)
        self.o = bytes(b ^ 0x5C for b in key)

    def tag(self, seq, head, body):
        h = hashlib.sha256(self.i)
        h.update(seq)
        h.update(head)
        h.update(body)
        return hashlib.sha256(self.o + h.digest()).digest()[:16]


class _Dir:
    # one direction's keys and sequence number
    def __init__(self, enc, mac):
        self.enc = enc
        self.ecb = aes(enc, 1)
        self.mac = _Mac(mac)
        self.seq = 0

    def next(self):
        """(seq bytes, cipher for this record's CBC)."""
        seq = self.seq.to_bytes(8, "big")
        self.seq += 1
        iv = bytearray(16)
        self.ecb.encrypt(bytes(8) + seq, iv)
        return seq, aes(self.enc, 2, iv)

    def seal(self, src, o):
        """`src` (1..MAX bytes) as the next record, written to `o` (a memoryview of at
        least 2 + MAX + 16 bytes); the record's length."""
        n = len(src)
        c = (n + 15) & ~15
        o[0], o[1] = n >> 8, n & 255
        o[2 : 2 + n] = src
        o[2 + n : 2 + c] = bytes(c - n)
        seq, cipher = self.next()
        cipher.encrypt(o[2 : 2 + c], o[2 : 2 + c])
        o[2 + c : 2 + c + 16] = self.mac.tag(seq, o[:2], o[2 : 2 + c])
        return 2 + c + 16

    def open(self, mv):
        """Check and decrypt in place the next record, whose bytes fill memoryview `mv`
        (see size()); its plaintext length (at mv[2:]). OSError if it fails its tag."""
        n = (mv[0] << 8) | mv[1]
        c = (n + 15) & ~15
        seq, cipher = self.next()
        if not auth.same(self.mac.tag(seq, mv[:2], mv[2 : 2 + c]), mv[2 + c : 2 + c + 16]):
            raise OSError(74)  # EBADMSG: forged, replayed, reordered or damaged
        cipher.decrypt(mv[2 : 2 + c], mv[2 : 2 + c])
        return n


def size(head):
    """Bytes of the record whose first two bytes are `head`; OSError if it can't be one."""
    n = (head[0] << 8) | head[1]
    if not 0 < n <= MAX:
        raise OSError(74)  # EBADMSG: not a record; the connection ends
    return 2 + ((n + 15) & ~15) + 16


def dirs(k):
    """The device's (receiving, sending) record directions under session keys `k`."""
    return _Dir(k[0], k[1]), _Dir(k[2], k[3])


class Sealed:
    """The transport interface (recv/readinto/write) of `raw`, carried in records."""

    def __init__(self, raw, k):
        self.raw = raw
        self.rx, self.tx = dirs(k)
        self.rec = bytearray(2 + MAX + 16)
        self.out = bytearray(2 + MAX + 16)
        self.pos = self.end = 0  # plaintext not yet handed out: rec[pos:end]

    def _fill(self, mv):
        got = 0
        while got < len(mv):
            n = self.raw.readinto(mv[got:])
            if not n:
                raise OSError(104)  # the peer closed the connection
            got += n

    def _next(self):
        mv = memoryview(self.rec)
        self._fill(mv[:2])
        end = size(mv)
        # a peer that sends a record's head and then a byte now and then holds the event
        # loop: the rest must come within RECORD_MS (a transport without bound() has its own)
        bound = getattr(self.raw, "bound", None)
        prev = bound(RECORD_MS) if bound else None
        try:
            self._fill(mv[2:end])
        finally:
            if bound:
                self.raw.unbound(prev)
        self.pos, self.end = 2, 2 + self.rx.open(mv[:end])

    def readinto(self, mv):
        if self.pos == self.end:
            self._next()
        n = min(len(mv), self.end - self.pos)
        mv[:n] = memoryview(self.rec)[self.pos : self.pos + n]
        self.pos += n
        return n

    def recv(self, n):
        if self.pos == self.end:
            self._next()
        n = min(n, self.end - self.pos)
        self.pos += n
        return bytes(memoryview(self.rec)[self.pos - n : self.pos])

    def write(self, data):
        src = memoryview(data)
        o = memoryview(self.out)
        bound = getattr(self.raw, "bound", None)
        while src:
            n = min(len(src), MAX)
            o_n = self.tx.seal(src[:n], o)
            # nor does a peer that stops reading hold it: each record goes within RECORD_MS
            prev = bound(RECORD_MS) if bound else None
            try:
                self.raw.write(o[:o_n])
            finally:
                if bound:
                    self.raw.unbound(prev)
            src = src[n:]
