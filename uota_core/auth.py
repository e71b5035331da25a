"""Host side of authentication and signing (docs/protocol.md): the same formulas as
device/lib/uota/auth.py, on stdlib hmac/hashlib."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Mapping


PBKDF2_ITERATIONS = 200_000  # the default; a device announcing fewer than MIN is refused
MIN_ITERATIONS = 100_000
MAX_ITERATIONS = 10_000_000  # a hostile "device" can't make the host spin for minutes
SALT_BYTES = 16


@functools.lru_cache(maxsize=32)
def derive_key(password: str, salt: str, iterations: int) -> bytes:
    """The device's OTA key: PBKDF2-HMAC-SHA256(password, salt (hex), iterations), 32 bytes.

    Only the host runs it; the board stores the result. Cached, since every connection
    to the same device needs it again."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), iterations)


def new_salt() -> str:
    return os.urandom(SALT_BYTES).hex()


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


def passwd_request(old_key: bytes, device_nonce: str, host_nonce: str, new_key: bytes, salt: str,
                   iterations: int) -> str:
    """`<masked>;<salt>;<iterations>` for the `passwd` command: the new key is masked under
    the current one and both nonces (and travels in an authenticated, encrypted record)."""
    pad = hmac.new(old_key, f"uota-passwd-3\n{device_nonce}\n{host_nonce}".encode(), hashlib.sha256).digest()
    masked = bytes(a ^ b for a, b in zip(new_key, pad)).hex()
    return f"{masked};{salt};{iterations}"
