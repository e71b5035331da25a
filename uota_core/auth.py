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


def signing_payload(device_id: str, nonce: str, release: int, version: str,
                    files: Mapping[str, str], wipe: bool = False) -> bytes:
    head = "uota-manifest-1" + (" wipe" if wipe else "")
    lines = [head, device_id, nonce, str(release), version]
    lines += [f"{path}:{files[path]}" for path in sorted(files)]
    return ("\n".join(lines) + "\n").encode()


def manifest_signature(signing_key: str, device_id: str, nonce: str, release: int, version: str,
                       files: Mapping[str, str], wipe: bool = False) -> str:
    payload = signing_payload(device_id, nonce, release, version, files, wipe)
    return hmac.new(signing_key.encode(), payload, hashlib.sha256).hexdigest()


def passwd_request(old_key: bytes, nonce: str, new_key: bytes) -> str:
    """`<masked>;<mac>` for the `passwd` command: the new key never crosses the link in clear."""
    pad = hmac.new(old_key, f"passwd-mask:{nonce}".encode(), hashlib.sha256).digest()
    masked = bytes(a ^ b for a, b in zip(new_key, pad)).hex()
    mac = hmac.new(old_key, f"passwd-set:{nonce}:{new_key.hex()}".encode(), hashlib.sha256).hexdigest()
    return f"{masked};{mac}"
