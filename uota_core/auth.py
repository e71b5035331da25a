"""Host side of authentication and signing (docs/protocol.md): the same formulas as
device/lib/uota/auth.py, on stdlib hmac/hashlib."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def password_key(password: str) -> bytes:
    """SHA256(password): the HMAC key the device stores (as hex) instead of the password."""
    return hashlib.sha256(password.encode()).digest()


def auth_response(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


MANIFEST_TAG = "uota-manifest-2"
RM_TAG = "uota-rm-2"
WIPE_TAG = "uota-wipe-2"


def netstrings(*fields: str) -> bytes:
    """`<byte length>:<UTF-8 bytes>,` per field: no field's content can move a boundary
    (v1 joined fields with newlines, so a version holding one could absorb a file line)."""
    out = bytearray()
    for field in fields:
        data = field.encode()
        out += b"%d:%s," % (len(data), data)
    return bytes(out)


def signing_payload(device_id: str, nonce: str, release: int, version: str,
                    files: Mapping[str, str], wipe: bool = False) -> bytes:
    head = netstrings(MANIFEST_TAG, device_id, nonce, str(release), version, "1" if wipe else "0")
    return head + b"".join(netstrings(path, files[path]) for path in sorted(files))


def manifest_signature(signing_key: str, device_id: str, nonce: str, release: int, version: str,
                       files: Mapping[str, str], wipe: bool = False) -> str:
    payload = signing_payload(device_id, nonce, release, version, files, wipe)
    return hmac.new(signing_key.encode(), payload, hashlib.sha256).hexdigest()


def delete_payload(device_id: str, nonce: str, release: int, path: str | None) -> bytes:
    """What `rm <path>` (or `wipe`, with path None) signs: bound to one session and the
    installed release, so it can't be replayed or used for another path."""
    return netstrings(RM_TAG if path is not None else WIPE_TAG, device_id, nonce, str(release), path or "")


def delete_signature(signing_key: str, device_id: str, nonce: str, release: int, path: str | None) -> str:
    return hmac.new(signing_key.encode(), delete_payload(device_id, nonce, release, path), hashlib.sha256).hexdigest()


def passwd_request(old_key: bytes, nonce: str, new_key: bytes) -> str:
    """`<masked>;<mac>` for the `passwd` command: the new key never crosses the link in clear."""
    pad = hmac.new(old_key, f"passwd-mask:{nonce}".encode(), hashlib.sha256).digest()
    masked = bytes(a ^ b for a, b in zip(new_key, pad)).hex()
    mac = hmac.new(old_key, f"passwd-set:{nonce}:{new_key.hex()}".encode(), hashlib.sha256).hexdigest()
    return f"{masked};{mac}"
