"""Strong secrets: generating them (`uota init`, `uota keygen`) and refusing weak ones.

The checks are heuristics that a generated value passes with certainty (short, repetitive,
dictionary-like values fail), not an estimate of a human-made value's strength.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter

KEY_BYTES = 32  # an HMAC-SHA256 key as long as its output
MIN_PASSWORD = 12
KEYGEN_HINT = "Run `uota keygen` for fresh strong values"

# Values every guesser tries first (compared lowercased, without separators or the digits and
# symbols commonly added at either end). Anything shorter than MIN_PASSWORD is refused anyway.
COMMON_PASSWORDS = frozenset("""
password passw0rd p4ssw0rd passwort motdepasse contrasena qwerty qwertz azerty qwertyuiop
qwertyuiopasdfghjkl asdfghjkl zxcvbnm letmein welcome admin administrator root toor iloveyou
changeme default secret supersecret topsecret micropython esp32 esp8266 ota uota microota
trustno1 sunshine football baseball dragon monkey master superman batman princess starwars
shadow michael jennifer computer internet whatever freedom correcthorsebatterystaple
opensesame passphrase mypassword yourpassword thepassword otapassword signingkey abc test
testing guest user login raspberry arduino
""".split())
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz" * 2, "0123456789" * 3, "qwertyuiopasdfghjklzxcvbnm" * 2)


def generate_signing_key() -> str:
    """A fresh signing key: 32 random bytes as 64 hex digits."""
    import secrets  # here: every command loads this module (via the config), few make keys

    return secrets.token_hex(KEY_BYTES)


def generate_password() -> str:
    """A fresh OTA password: 24 URL-safe characters (144 random bits)."""
    import secrets

    return secrets.token_urlsafe(18)


def _shannon_bits(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _repetitive(text: str) -> bool:
    """True for repeated or patterned text: few distinct 3-character pieces, or a period."""
    low = text.lower()
    trigrams = [low[i:i + 3] for i in range(len(low) - 2)]
    if trigrams and len(set(trigrams)) < 0.85 * len(trigrams):
        return True
    if any(low == low[:p] * (len(low) // p) + low[:len(low) % p] for p in range(1, len(low) // 2 + 1)):
        return True
    return any(low in seq or low in seq[::-1] for seq in _SEQUENCES)


def _decoded_size(key: str) -> int | None:
    """Bytes of material in `key` if it is hex or base64 (standard or URL-safe), else None."""
    if re.fullmatch(r"[0-9a-fA-F]+", key):
        return len(key) // 2
    if re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", key):
        text = key.rstrip("=").replace("-", "+").replace("_", "/")
        try:
            return len(base64.b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            return None
    return None


def signing_key_problem(key: str) -> str | None:
    """Why `key` is too weak to sign updates, or None if it is fine (or empty: signing off)."""
    if not key:
        return None
    size = _decoded_size(key)
    if size is None:
        return (f"it is not random bytes written as hex or base64 (it looks typed by hand); a key must be "
                f"{KEY_BYTES} random bytes, e.g. 64 hex digits")
    if size < KEY_BYTES:
        unit = "hex digits" if re.fullmatch(r"[0-9a-fA-F]+", key) else "base64 characters"
        return (f"it holds only {size} bytes ({len(key)} {unit}); a key must be {KEY_BYTES} random bytes "
                f"(64 hex digits)")
    classes = sum(bool(re.search(c, key)) for c in ("[a-z]", "[A-Z]", "[0-9]"))
    if _shannon_bits(key) < 3.0 or _repetitive(key) or classes < 2:
        return "it is too regular to be random (repeated, sequential or word-like characters)"
    return None


def password_problem(password: str) -> str | None:
    """Why `password` is too weak for OTA auth, or None if it is fine (or empty: auth off)."""
    if not password:
        return None
    if len(password) < MIN_PASSWORD:
        return f"it has {len(password)} characters; use at least {MIN_PASSWORD}"
    letters = re.sub(r"[\W_]+", "", password.lower())
    core = re.sub(r"^[\d\W_]+|[\d\W_]+$", "", password.lower())
    core = re.sub(r"[\W_]+", "", core)
    if letters in COMMON_PASSWORDS or core in COMMON_PASSWORDS:
        return "it is on the list of passwords guessers try first"
    if len(set(password)) < 6 or _repetitive(password):
        return "it is too regular (repeated or sequential characters)"
    return None
