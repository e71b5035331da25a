"""Host side of authentication and signing (docs/protocol.md): the same formulas as
device/lib/uota/auth.py, on stdlib hmac/hashlib."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path


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


KEY_CACHE = ".uota/keys.json"  # under the project root; never pushed (manifest.ALWAYS_EXCLUDED)


def proven_key(password: str, salt: str, iterations: int, proves: Callable[[bytes], bool],
               cache: Path | None = None) -> bytes | None:
    """The device's key, if the device proves it (`proves(key)` checks its proof); None if
    not even a fresh derivation does (a wrong password, or an impostor).

    With `cache` (a project's `.uota/keys.json`), a key derived in an earlier command from
    the same password is tried first: a `uota fast` then costs no PBKDF2 run (0.1-0.3 s).
    The file holds what the board holds, beside the password it came from, as secret as the
    password file (mode 0600, ignored by git and never pushed). An entry counts only for the
    password it was derived from (its tag, an HMAC of that password under the key), and one
    the device doesn't prove is derived anew: the cache can be stale but never wrong."""
    slot = f"{salt}:{iterations}"
    entry = _read_keys(cache).get(slot) if cache else None
    cached = entry[0] if entry and hmac.compare_digest(entry[1], _cache_tag(entry[0], password)) else None
    if cached and proves(cached):
        return cached
    key = derive_key(password, salt, iterations)
    if not proves(key):
        return None
    if cache and cached != key:
        _write_key(cache, slot, key, _cache_tag(key, password))
    return key


def _cache_tag(key: bytes, password: str) -> str:
    return hmac.new(key, b"uota-key-cache\n" + password.encode(), hashlib.sha256).hexdigest()


def _read_keys(cache: Path) -> dict[str, tuple[bytes, str]]:
    try:
        return {slot: (bytes.fromhex(k), str(tag)) for slot, (k, tag) in json.loads(cache.read_text()).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}  # missing or damaged: derive, as without a cache


_write_lock = threading.Lock()  # `--all` derives the keys of several boards at once


def _write_key(cache: Path, slot: str, key: bytes, tag: str) -> None:
    with _write_lock:  # read-modify-write: one thread's slot must not erase another's
        _write_keys(cache, slot, key, tag)


def _write_keys(cache: Path, slot: str, key: bytes, tag: str) -> None:
    keys = {s: [k.hex(), t] for s, (k, t) in _read_keys(cache).items()}
    keys[slot] = [key.hex(), tag]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only project still works, at PBKDF2's cost


def new_salt() -> str:
    return os.urandom(SALT_BYTES).hex()


MANIFEST_TAG = "uota-manifest-2"
RM_TAG = "uota-rm-2"
WIPE_TAG = "uota-wipe-2"
PASSWD_SIG_TAG = "uota-passwd-sig-1"


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


def command_payload(tag: str, device_id: str, nonce: str, release: int, subject: str) -> bytes:
    """What a command that needs the signing key besides the password signs (`rm`, `wipe`,
    `passwd`): bound to one session, the installed release and the request, so it can be
    neither replayed nor used for another request or another kind of command (the tag)."""
    return netstrings(tag, device_id, nonce, str(release), subject)


def command_signature(signing_key: str, tag: str, device_id: str, nonce: str, release: int, subject: str) -> str:
    return hmac.new(signing_key.encode(), command_payload(tag, device_id, nonce, release, subject),
                    hashlib.sha256).hexdigest()


def delete_payload(device_id: str, nonce: str, release: int, path: str | None) -> bytes:
    """`rm <path>`'s payload, or with path None `wipe`'s."""
    return command_payload(RM_TAG if path is not None else WIPE_TAG, device_id, nonce, release, path or "")


def delete_signature(signing_key: str, device_id: str, nonce: str, release: int, path: str | None) -> str:
    return command_signature(signing_key, RM_TAG if path is not None else WIPE_TAG, device_id, nonce, release,
                             path or "")


def passwd_request(old_key: bytes, device_nonce: str, host_nonce: str, new_key: bytes, salt: str,
                   iterations: int) -> str:
    """`<masked>;<salt>;<iterations>` for the `passwd` command: the new key is masked under
    the current one and both nonces (and travels in an authenticated, encrypted record)."""
    pad = hmac.new(old_key, f"uota-passwd-3\n{device_nonce}\n{host_nonce}".encode(), hashlib.sha256).digest()
    masked = bytes(a ^ b for a, b in zip(new_key, pad)).hex()
    return f"{masked};{salt};{iterations}"
