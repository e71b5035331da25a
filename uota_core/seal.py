"""The mutual proof, the session keys and the record layer of an authenticated connection:
the host side of device/lib/uota/seal.py (docs/protocol.md "Authentication", "Records").

After `auth` succeeds every byte in both directions travels in records

    len (2 bytes, big-endian, 1..1024) | AES-256-CBC ciphertext (zero-padded) | tag (16 bytes)

with iv = AES-256-ECB(enc key, 8 zero bytes | seq) and tag = HMAC-SHA256(mac key,
seq | len | ciphertext)[:16], seq counting one direction's records from 0 (never sent).
`SealedLink` wraps the transport's Link, so the Session above it is unchanged."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uota_core.link import Link, LinkError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher

PROTO = 5  # 5: passwd is signed on a signed board; 4: the proofs cover the hello as it travelled
MAX_RECORD = 1024  # plaintext bytes per record: the device's buffers are this big
TAG = 16


class RecordError(LinkError):
    """A record failed its tag: forged, replayed, reordered or damaged on the way."""


def hello_sum(line: bytes) -> bytes:
    """sha256 of the device's hello line exactly as received, newline included: the hello
    travels in clear, so both proofs cover it and a relay's edit fails the device's proof."""
    return hashlib.sha256(line).digest()


def proof(key: bytes, who: str, device_id: str, device_nonce: str, host_nonce: str, hello: bytes) -> str:
    """hex HMAC(key, label): `who` is "dev" or "host", so neither proof serves as the other;
    `hello` is hello_sum() of the hello line this side saw."""
    msg = f"uota-proof-{PROTO} {who}\n{device_id}\n{device_nonce}\n{host_nonce}\n{hello.hex()}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def hkdf(ikm: bytes, salt: bytes, info: bytes, n: int) -> bytes:
    """RFC 5869 HKDF-SHA256."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes((i,)), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


@dataclass(frozen=True)
class SessionKeys:
    h2d_enc: bytes
    h2d_mac: bytes
    d2h_enc: bytes
    d2h_mac: bytes

    @classmethod
    def derive(cls, key: bytes, device_id: str, device_nonce: str, host_nonce: str) -> "SessionKeys":
        k = hkdf(key, (device_nonce + host_nonce).encode(), f"uota-session-{PROTO} {device_id}".encode(), 128)
        return cls(k[:32], k[32:64], k[64:96], k[96:])


class _Direction:
    def __init__(self, enc: bytes, mac: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # only sessions with a key

        self._cipher = lambda iv: Cipher(algorithms.AES(enc), modes.CBC(iv))
        self.enc = enc
        self.mac = mac
        self.ecb = Cipher(algorithms.AES(enc), modes.ECB()).encryptor()
        self.seq = 0

    def next(self) -> tuple[bytes, Cipher[Any]]:
        seq = self.seq.to_bytes(8, "big")
        self.seq += 1
        iv = self.ecb.update(bytes(8) + seq)
        return seq, self._cipher(iv)

    def tag(self, seq: bytes, head: bytes, body: bytes) -> bytes:
        return hmac.new(self.mac, seq + head + body, hashlib.sha256).digest()[:TAG]


def seal(out: _Direction, data: bytes) -> bytes:
    """`data` (at most MAX_RECORD bytes) as one record."""
    n = len(data)
    padded = data + bytes(-n % 16)
    seq, cipher = out.next()
    head = n.to_bytes(2, "big")
    body = cipher.encryptor().update(padded)
    return head + body + out.tag(seq, head, body)


class Records:
    """One connection's two record directions, for a link that frames records itself (the
    serial RemoteIO link, whose print output travels between them): `seal` what the host
    sends, `open` what it receives."""

    def __init__(self, keys: SessionKeys, name: str) -> None:
        self.tx = _Direction(keys.h2d_enc, keys.h2d_mac)
        self.rx = _Direction(keys.d2h_enc, keys.d2h_mac)
        self.name = name

    def seal(self, data: bytes) -> bytes:
        """`data` (any length) as records of up to MAX_RECORD bytes."""
        return b"".join(seal(self.tx, data[i : i + MAX_RECORD]) for i in range(0, len(data), MAX_RECORD))

    def size(self, head: bytes) -> int:
        """Bytes of the record that starts with the 2-byte length `head`."""
        n = int.from_bytes(head, "big")
        if not 0 < n <= MAX_RECORD:
            raise RecordError(f"{self.name} sent something that is not a record (length {n})")
        return 2 + -(-n // 16) * 16 + TAG

    def open(self, record: bytes) -> bytes:
        """The plaintext of the next record (all `size()` bytes of it); RecordError if it
        fails its tag."""
        head, body, tag = record[:2], record[2:-TAG], record[-TAG:]
        seq, cipher = self.rx.next()
        if not hmac.compare_digest(tag, self.rx.tag(seq, head, body)):
            raise RecordError(f"a record from {self.name} failed its authentication tag: forged, replayed or "
                              "reordered on the way (a relay?), or damaged; the connection is closed")
        return cipher.decryptor().update(body)[: int.from_bytes(head, "big")]


class SealedLink(Link):
    """A Link whose bytes travel in records over `inner`. Writes are gathered into full
    records and sent before the next read (or close), so a file header and its body
    share records."""

    def __init__(self, inner: Link, keys: SessionKeys) -> None:
        self.inner = inner
        self.records = Records(keys, inner.name)
        self.tx = self.records.tx
        self._out = bytearray()
        self._in = bytearray()
        self._head = b""  # a record's length read before its body timed out: the next read resumes it
        # one thread may write (a RemoteIO caller's pipelined calls) while another reads
        self._wlock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # the transport's own attributes (port, counters)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def timeout(self) -> float:  # type: ignore[override]
        return self.inner.timeout

    @property
    def slow(self) -> bool:  # type: ignore[override]
        return self.inner.slow

    def write(self, data: bytes) -> None:
        with self._wlock:
            self._out += data
            while len(self._out) >= MAX_RECORD:
                self.inner.write(seal(self.tx, bytes(self._out[:MAX_RECORD])))
                del self._out[:MAX_RECORD]

    def flush(self) -> None:
        with self._wlock:
            self._flush()

    def _flush(self) -> None:
        if self._out:
            self.inner.write(seal(self.tx, bytes(self._out)))
            self._out.clear()

    def _record(self, deadline: float) -> None:
        head = self._head or self.inner.read_exact(2, max(0.0, deadline - time.monotonic()))
        self._head = head
        rest = self.inner.read_exact(self.records.size(head) - 2, max(0.0, deadline - time.monotonic()))
        self._head = b""
        self._in += self.records.open(head + rest)

    def _deadline(self, timeout: float | None) -> float:
        # a read sends what was written first, unless another thread is writing right now
        # (waiting for it could deadlock: it may be blocked until this thread reads); that
        # thread's next write, or the next read, sends its rest
        if self._wlock.acquire(blocking=False):
            try:
                self._flush()
            finally:
                self._wlock.release()
        return time.monotonic() + (self.inner.timeout if timeout is None else timeout)

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        while len(self._in) < n:
            self._record(deadline)
        data = bytes(self._in[:n])
        del self._in[:n]
        return data

    def readline(self, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        start = 0
        while True:
            i = self._in.find(b"\n", start)
            if i >= 0:
                line = bytes(self._in[: i + 1])
                del self._in[: i + 1]
                return line
            start = len(self._in)
            self._record(deadline)

    def close(self) -> None:
        try:
            self.flush()
        except (LinkError, OSError):
            pass  # closing anyway
        finally:
            self.inner.close()
