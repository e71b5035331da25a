"""Project configuration: `config/ota.json` with `config/.ota.secrets.json` merged over it.

Every validation error names the key and the file it came from, and says what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uota_core.errors import UotaError
from uota_core.keys import KEYGEN_HINT, password_problem, signing_key_problem

CONFIG_FILE = "config/ota.json"
SECRETS_FILE = "config/.ota.secrets.json"
SECRET_KEYS = ("otaPassword", "signingKey")
TRANSPORTS = ("wifi_tcp", "serial", "ble", "http_pull")

DEFAULTS: dict[str, Any] = {
    "version": "1.0.0",
    "hostname": "micropython.local",
    "port": 2018,
    "remoteioPort": 2019,
    "ssid": "",
    "password": "",
    "otaPassword": "",
    "signingKey": "",
    "bleName": "micro-ota",
    "transports": ["wifi_tcp"],
    "manifestUrl": "",
    "pullInterval": 60,
    "healthyAfter": 10,
    "excludedFiles": [".git/**", ".venv/**", "dist/**", "tests/**", ".uota_cache.json",
                      "**/__pycache__/**", ".pytest_cache/**"],
    "fastOtaFiles": ["app/**", "config/**"],
    "fullOtaFiles": ["**"],
    "mpyFiles": ["lib/**"],
}


class ConfigError(UotaError):
    """config/ota.json or config/.ota.secrets.json is missing or invalid."""


# The device refuses any other version (device/lib/uota/pending.py _bad_header): it is
# signed, shown and logged, so it holds no separators, quotes, control or non-ASCII characters.
VERSION_RE = re.compile(r"[0-9A-Za-z._+-]{1,32}")
VERSION_RULE = "1 to 32 characters from 0-9 A-Z a-z . _ + - (e.g. 1.2.0 or 2.0.0-rc.1+build.7)"


def is_version(v: Any) -> bool:
    return isinstance(v, str) and VERSION_RE.fullmatch(v) is not None


def check_version(version: Any, where: str = "--version") -> str:
    """`version` if the device will accept it, else a ConfigError naming `where` it came from."""
    if not is_version(version):
        raise ConfigError(f"{where}: bad version {json.dumps(version)}: use {VERSION_RULE}")
    return version


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_port(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_transports(v: Any) -> bool:
    return _is_str_list(v) and bool(v) and all(x in TRANSPORTS for x in v)


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "version": (is_version, VERSION_RULE),
    "hostname": (_is_str, "a string (device IP or name.local)"),
    "port": (_is_port, "an integer from 1 to 65535"),
    "remoteioPort": (_is_port, "an integer from 1 to 65535"),
    "ssid": (_is_str, "a string"),
    "password": (_is_str, "a string"),
    "otaPassword": (_is_str, "a string"),
    "signingKey": (_is_str, "a string"),
    "bleName": (lambda v: _is_str(v) and len(v) <= 20, "a string of at most 20 characters"),
    "transports": (_is_transports, "a non-empty list of " + ", ".join(TRANSPORTS)),
    "manifestUrl": (_is_str, "a string"),
    "pullInterval": (_is_number, "a number of seconds"),
    "healthyAfter": (_is_number, "a number of seconds"),
    "excludedFiles": (_is_str_list, "a list of glob strings"),
    "fastOtaFiles": (_is_str_list, "a list of glob strings"),
    "fullOtaFiles": (_is_str_list, "a list of glob strings"),
    "mpyFiles": (_is_str_list, "a list of glob strings"),
    "serialPort": (_is_str, "a serial device path such as /dev/ttyUSB0"),
    "serialBaud": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1200, "a baud rate such as 115200"),
}


@dataclass
class Config:
    """The merged configuration of one project."""

    root: Path
    values: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # key -> file it came from
    warnings: list[str] = field(default_factory=list)  # e.g. an unknown (misspelt) key

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def password(self) -> str:
        """The OTA password (plaintext, host only); empty means no auth."""
        return self.values.get("otaPassword", "")

    @property
    def signing_key(self) -> str:
        return self.values.get("signingKey", "")

    @property
    def key_cache(self) -> Path:
        """Where the device keys derived from the password are kept between commands."""
        from uota_core.auth import KEY_CACHE

        return self.root / KEY_CACHE


def _read_json(path: Path, rel: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {rel}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{rel} is not valid JSON (line {e.lineno} column {e.colno}: {e.msg}): fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{rel} must hold a JSON object {{...}}, not {type(data).__name__}")
    return data


def load_config(root: str | Path) -> Config:
    root = Path(root)
    cfg_path = root / CONFIG_FILE
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path} not found: run `uota init` in the project directory")
    cfg = Config(root=root, values=dict(DEFAULTS), source={k: "default" for k in DEFAULTS})
    layers = [(CONFIG_FILE, _read_json(cfg_path, CONFIG_FILE))]
    secrets_path = root / SECRETS_FILE
    if secrets_path.is_file():
        layers.append((SECRETS_FILE, _read_json(secrets_path, SECRETS_FILE)))
    for rel, data in layers:
        for key, value in data.items():
            rule = _RULES.get(key)
            if rule is None:
                cfg.warnings.append(unknown_key(rel, key))
            if rule is not None and not rule[0](value):
                raise ConfigError(f"{rel}: key {key!r} must be {rule[1]}, got {json.dumps(value)}")
            cfg.values[key] = value
            cfg.source[key] = rel
    for key in SECRET_KEYS:
        check_secret(key, cfg.values[key], cfg.source[key])
    return cfg


def unknown_key(rel: str, key: str) -> str:
    """The warning for a key uota doesn't know (a typo goes unnoticed otherwise: `hostnmae`
    left the default hostname in force), naming the closest known key."""
    import difflib

    close = difflib.get_close_matches(key, _RULES, n=1, cutoff=0.6)
    if not close:  # a case slip is a typo too (`HostName`)
        close = [k for k in _RULES if k.lower() == key.lower()]
    hint = f"did you mean {close[0]!r}?" if close else f"the known keys are {', '.join(sorted(_RULES))}"
    return f"{rel}: unknown key {key!r} is ignored: {hint}"


def check_secret(key: str, value: str, where: str) -> None:
    """Refuse a weak otaPassword or signingKey (empty is allowed: auth or signing off)."""
    problem = (password_problem if key == "otaPassword" else signing_key_problem)(value)
    if problem is not None:
        raise ConfigError(f"{where}: {key} is too weak: {problem}. {KEYGEN_HINT}, put them in "
                          f"{SECRETS_FILE} and provision the board with `uota bootstrap` (or `uota passwd`)")


def default_config(root: str | Path) -> Config:
    """The defaults alone, for a command run outside a project whose flags say all it needs
    (e.g. `uota version --host 192.168.1.42`): no password, no signing key."""
    return Config(root=Path(root), values=dict(DEFAULTS), source={k: "default" for k in DEFAULTS})


def find_project(start: str | Path | None = None) -> Path:
    """The nearest directory at or above `start` that holds config/ota.json (like git)."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_FILE).is_file():
            return d
    raise ConfigError(f"no {CONFIG_FILE} in {here} or any parent directory: run `uota init` first")


def write_secrets(root: Path, updates: dict[str, Any]) -> Path:
    """Merge `updates` into config/.ota.secrets.json (created 0600)."""
    path = root / SECRETS_FILE
    data = _read_json(path, SECRETS_FILE) if path.is_file() else {}
    for key, value in updates.items():
        if key in SECRET_KEYS:
            check_secret(key, value, f"not written to {SECRETS_FILE}")
    data.update(updates)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
