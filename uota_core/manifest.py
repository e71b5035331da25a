"""Manifests: which project files a push covers (glob selection), their sha256, and the
complete desired file set the device receives."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from uota_core.config import CONFIG_FILE, SECRET_KEYS, SECRETS_FILE, Config

# Never pushed, whatever the globs say: the OTA stack and its state on the device
# (installed by `uota bootstrap` only), the secrets, and host-side caches.
ALWAYS_EXCLUDED = ("boot.py", "lib/uota/**", "ota_*", SECRETS_FILE, ".uota_cache.json", "**/*.pyc")


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """`**` spans directories (`**/` also matches none), `*` and `?` stay within one."""
    out, i = [], 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, patterns: Iterable[str]) -> bool:
    return any(_glob_regex(p).match(path) for p in patterns)


def protected_on_device(path: str) -> bool:
    """Mirror of the device's rule (device/lib/uota/paths.py): never deleted by a push."""
    return (path == "boot.py" or path.startswith(("lib/uota/", "ota_", "data/"))
            or path == SECRETS_FILE)


def select_files(root: Path, include: Iterable[str], exclude: Iterable[str]) -> list[str]:
    """Relative posix paths of the files under `root` matched by `include` and not `exclude`."""
    include, exclude = list(include), list(exclude) + list(ALWAYS_EXCLUDED)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # prune directories whose whole content is excluded (.git, .venv, ...)
        dirnames[:] = sorted(d for d in dirnames if not matches(f"{rel_dir}{d}/\x00", exclude))
        for name in sorted(filenames):
            rel = rel_dir + name
            if matches(rel, include) and not matches(rel, exclude):
                found.append(rel)
    return sorted(found)


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative posix path, as on the device
    sha256: str
    size: int
    source: Path
    data: bytes | None = None  # content to push instead of the file (sanitized ota.json)

    def open_chunks(self, chunk: int = 4096) -> Iterable[bytes]:
        if self.data is not None:
            for i in range(0, len(self.data), chunk):
                yield self.data[i:i + chunk]
            return
        with open(self.source, "rb") as f:
            while block := f.read(chunk):
                yield block


def _device_config_bytes(path: Path) -> bytes | None:
    """ota.json without the secrets, if it (wrongly) holds any; None if it is clean."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not any(k in data for k in SECRET_KEYS):
        return None
    return (json.dumps({k: v for k, v in data.items() if k not in SECRET_KEYS}, indent=2) + "\n").encode()


def hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(65536):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def local_file(root: Path, rel: str) -> LocalFile:
    source = root / rel
    if rel == CONFIG_FILE:
        data = _device_config_bytes(source)
        if data is not None:
            return LocalFile(rel, hashlib.sha256(data).hexdigest(), len(data), source, data)
    sha, size = hash_file(source)
    return LocalFile(rel, sha, size, source)


def local_manifest(cfg: Config, mode: str) -> dict[str, LocalFile]:
    """The project files `uota fast` (mode 'fast') or `uota full` ('full') pushes."""
    include = cfg["fastOtaFiles"] if mode == "fast" else list(cfg["fastOtaFiles"]) + list(cfg["fullOtaFiles"])
    paths = select_files(cfg.root, include, cfg["excludedFiles"])
    return {rel: local_file(cfg.root, rel) for rel in paths}


def desired_files(local: Mapping[str, LocalFile], installed: Mapping[str, str], mode: str,
                  scope: Iterable[str]) -> dict[str, str]:
    """The complete set the device should hold after the push (path -> sha256).

    A full push replaces the set. A fast push replaces only the part in its scope (the
    fastOtaFiles globs): installed files outside it stay as they are.
    """
    desired = {p: f.sha256 for p, f in local.items()}
    if mode == "fast":
        scope = list(scope)
        for p, sha in installed.items():
            if p not in desired and not matches(p, scope):
                desired[p] = sha
    return desired
