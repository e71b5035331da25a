"""Manifests: which project files a push covers (glob selection), their sha256, and the
complete desired file set the device receives."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from uota_core.config import CONFIG_FILE, SECRET_KEYS, SECRETS_FILE, Config, ConfigError
from uota_core.errors import UotaError
from uota_core.ignore import IgnoreRules, Rule

# Never pushed, whatever the globs say: the OTA stack (boot.py, the launcher main.py, lib/uota)
# and its state on the device (installed by `uota bootstrap` only), the secrets, and host-side
# files.
IGNORE_FILE = ".uotaignore"
ALWAYS_EXCLUDED = ("boot.py", "main.py", "lib/uota/**", "ota_*", SECRETS_FILE, ".uota_cache.json", "**/*.pyc",
                   IGNORE_FILE, ".uota/**",  # .uota/: the host's caches (compiled .mpy)
                   "**/.gitignore")  # `uota init` writes one: the host's, not the board's
# Built-in exclusions in gitignore syntax, at any depth. Secrets-like names are never pushed,
# whatever fastOtaFiles or .uotaignore say; the backup list is a default .uotaignore can undo.
SECRET_RULES = IgnoreRules.parse(["*secret*", "*.key", "*.pem", ".env*", "*password*", "*passwd*", "*credential*",
                                  "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12", "*.pfx"],
                                 "built-in secrets list", ignorecase=True)
BACKUP_RULES = IgnoreRules.parse(["*.bak", "*~", "*.swp", "*.swo", ".#*", "\\#*#", "*.orig", "*.tmp",
                                  ".DS_Store"], "built-in backup list")


class ExcludedFileError(UotaError):
    """A push would carry a secret: a secrets-like file named explicitly, or a file holding a key."""


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


# directories holding the stack, the secrets and runtime data: a file of that name would replace them
PROTECTED_DIRS = ("lib", "lib/uota", "config", "data")


def protected_on_device(path: str) -> bool:
    """Mirror of the device's rule (device/lib/uota/paths.py): never deleted by a push."""
    return (path in ("boot.py", "main.py") or path.startswith(("lib/uota/", "ota_", "data/"))
            or path == SECRETS_FILE or path in PROTECTED_DIRS)


def _why(rule: Rule) -> str:
    return f"{rule.pattern} ({rule.source})"


@dataclass(frozen=True)
class Exclusions:
    """What a push leaves out: excludedFiles + ALWAYS_EXCLUDED (globs, not reported), the
    secrets list, and the backup list + .uotaignore (gitignore rules, reported)."""

    globs: tuple[str, ...]
    ignore: IgnoreRules

    @classmethod
    def load(cls, root: Path, exclude: Iterable[str]) -> "Exclusions":
        ignore = BACKUP_RULES
        path = root / IGNORE_FILE
        if path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read {IGNORE_FILE}: {e}: fix or delete it") from None
            ignore = ignore + IgnoreRules.parse(lines, IGNORE_FILE)
        return cls(tuple(exclude) + ALWAYS_EXCLUDED, ignore)

    def reason(self, path: str, is_dir: bool = False) -> str | None:
        """Why `path` (or a directory it is in) is left out: a reported reason, "" for the
        configured globs, None if it is not excluded."""
        if matches(f"{path}/\x00" if is_dir else path, self.globs):
            return ""
        rule = SECRET_RULES.excluding(path, is_dir) or self.ignore.excluding(path, is_dir)
        return _why(rule) if rule is not None else None

    def excludes(self, path: str) -> bool:
        return self.reason(path) is not None


@dataclass
class Selection:
    files: list[str]  # relative posix paths to push, sorted
    excluded: dict[str, str]  # path (a directory ends in "/") -> the rule that left it out


def _refuse_named_secrets(root: Path, include: list[str]) -> None:
    """A secrets-like file the user names outright is refused, not silently skipped."""
    for pattern in include:
        rel = pattern.strip("/")
        if any(c in rel for c in "*?[") or not rel or not (root / rel).is_file():
            continue
        rule = SECRET_RULES.excluding(rel)
        if rule is not None:
            raise ExcludedFileError(
                f"{pattern} is listed in the push globs, but uota never pushes a file that looks like a secret "
                f"(it matches {_why(rule)}): remove it from fastOtaFiles/fullOtaFiles; keys belong in "
                f"{SECRETS_FILE}, which reaches the board only through `uota bootstrap`")


def scan_files(root: Path, include: Iterable[str], exclusions: Exclusions) -> Selection:
    """The files under `root` matched by `include` and not excluded, and the excluded ones."""
    include = list(include)
    _refuse_named_secrets(root, include)
    found: list[str] = []
    excluded: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirnames):  # prune excluded directories (.git, .venv, secrets/, ...)
            why = exclusions.reason(rel_dir + d, is_dir=True)
            if why is None:
                keep.append(d)
            elif why and matches(f"{rel_dir}{d}/\x00", include):
                excluded[f"{rel_dir}{d}/"] = why
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = rel_dir + name
            if not matches(rel, include):
                continue
            why = exclusions.reason(rel)
            if why is None:
                found.append(rel)
            elif why:
                excluded[rel] = why
    return Selection(sorted(found), excluded)


def select_files(root: Path, include: Iterable[str], exclude: Iterable[str]) -> list[str]:
    """Relative posix paths of the files under `root` matched by `include` and not excluded."""
    return scan_files(root, include, Exclusions.load(root, exclude)).files


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


def hash_file(path: Path, needles: Mapping[str, bytes] | None = None) -> tuple[str, int, str | None]:
    """sha256 and size of the file, and the name of the first of `needles` found in it."""
    h = hashlib.sha256()
    size = 0
    found = None
    overlap = max((len(n) for n in (needles or {}).values()), default=1) - 1
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(65536):
            h.update(block)
            size += len(block)
            if needles and found is None:
                window = tail + block  # a needle may straddle two blocks
                found = next((name for name, n in needles.items() if n in window), None)
                tail = window[-overlap:] if overlap else b""
    return h.hexdigest(), size, found


def secret_needles(cfg: Config) -> dict[str, bytes]:
    """The configured secrets, as the bytes a file holding one would contain."""
    return {k: cfg.values[k].encode() for k in SECRET_KEYS if cfg.values.get(k)}


def local_file(root: Path, rel: str, needles: Mapping[str, bytes] | None = None) -> LocalFile:
    """One file to push; a file holding one of `needles` (the secrets) is refused."""
    source = root / rel
    data = _device_config_bytes(source) if rel == CONFIG_FILE else None
    if data is not None:
        sha, size = hashlib.sha256(data).hexdigest(), len(data)
        found = next((name for name, n in (needles or {}).items() if n in data), None)
    else:
        sha, size, found = hash_file(source, needles)
    if found is not None:
        raise ExcludedFileError(
            f"{rel} contains the {found} from {SECRETS_FILE}, and uota never pushes a file holding a key: "
            f"remove the value from the file (the board gets its secrets from `uota bootstrap`), or add "
            f"the file to {IGNORE_FILE}")
    return LocalFile(rel, sha, size, source, data)


def push_globs(cfg: Config, mode: str) -> list[str]:
    """The globs `uota fast` (mode 'fast') or `uota full` ('full') covers."""
    return list(cfg["fastOtaFiles"]) + ([] if mode == "fast" else list(cfg["fullOtaFiles"]))


@dataclass
class Scan:
    files: dict[str, LocalFile]  # what the push sends
    excluded: dict[str, str]  # left out by the secrets/backup lists or .uotaignore -> the rule
    exclusions: Exclusions


def scan_project(cfg: Config, mode: str) -> Scan:
    """The project files a push of `mode` covers, hashed, and what it leaves out and why."""
    exclusions = Exclusions.load(cfg.root, cfg["excludedFiles"])
    selection = scan_files(cfg.root, push_globs(cfg, mode), exclusions)
    needles = secret_needles(cfg)
    return Scan({rel: local_file(cfg.root, rel, needles) for rel in selection.files}, selection.excluded,
                exclusions)


def local_manifest(cfg: Config, mode: str) -> dict[str, LocalFile]:
    """The project files `uota fast` (mode 'fast') or `uota full` ('full') pushes."""
    return scan_project(cfg, mode).files


def desired_files(local: Mapping[str, LocalFile], installed: Mapping[str, str], mode: str,
                  scope: Iterable[str], keep: Callable[[str], bool] | None = None) -> dict[str, str]:
    """The complete set the device should hold after the push (path -> sha256).

    A full push replaces the set. A fast push replaces only the part in its scope (the
    fastOtaFiles globs): installed files outside it stay as they are. Installed files that
    `keep` names (excluded ones: neither pushed nor dropped) stay too.
    """
    desired = {p: f.sha256 for p, f in local.items()}
    scope = list(scope)
    for p, sha in installed.items():
        if p in desired:
            continue
        if (mode == "fast" and not matches(p, scope)) or (keep is not None and keep(p)):
            desired[p] = sha
    return desired
