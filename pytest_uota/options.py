"""The plugin's options: each a command-line flag, an ini key and an environment variable.

Precedence: command line, then environment, then ini file, then the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

KNOWN_TRANSPORTS = ("wifi_tcp", "serial", "ble")
PUSH_MODES = ("fast", "full", "none")
SCOPES = ("session", "package", "module", "class", "function")

# (flag, ini key, environment variable, help, default)
_OPTIONS = [
    ("--uota-port", "uota_port", "UOTA_PORT",
     "serial port of the board under test, or several comma-separated (one per pytest-xdist worker)", ""),
    ("--uota-host", "uota_host", "UOTA_HOST",
     "IP address or name.local of the board under test (several comma-separated, paired with --uota-port)", ""),
    ("--uota-ble-name", "uota_ble_name", "UOTA_BLE_NAME",
     "BLE name of the board under test (accepted for configs that name one; this version has no BLE "
     "transport, so ble tests are skipped)", ""),
    ("--uota-transport", "uota_transport", "UOTA_TRANSPORT",
     "transports to test over, comma-separated: wifi_tcp, serial, ble (default: transports in ota.json)", ""),
    ("--uota-config", "uota_config", "UOTA_CONFIG",
     "the project's config/ota.json (default: config/ota.json under the rootdir)", ""),
    ("--uota-sim", "uota_sim", "UOTA_SIM",
     "test on a virtual board even if --uota-port/--uota-host are given (ini/env: 1, true or yes)", ""),
    ("--uota-logdir", "uota_logdir", "UOTA_LOGDIR",
     "write each device test's output to a log file in this directory", ""),
    ("--uota-push", "uota_push", "UOTA_PUSH",
     "what to push once per session before the tests: fast (default), full or none", ""),
    ("--uota-timeout", "uota_timeout", "UOTA_TIMEOUT",
     "seconds a device test may take before pytest-timeout fails it (default 60, 0 = none)", ""),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("uota", "uota: MicroPython ESP32 boards (real or virtual)")
    for flag, ini, env, help_text, default in _OPTIONS:
        extra: dict[str, object] = {"action": "store_const", "const": "1"} if flag == "--uota-sim" else {}
        group.addoption(flag, dest=ini, default=None, help=f"{help_text} [ini: {ini}, env: {env}]", **extra)
        parser.addini(ini, help_text, default=default)
    parser.addini("uota_device_scope", "scope of the esp32_device fixture: session (default), package, "
                  "module, class or function", default="session")


def _raw(config: pytest.Config, ini: str, env: str) -> str:
    value = config.getoption(ini)
    if value is None:
        value = os.environ.get(env)
    if value is None:
        value = config.getini(ini)
    return str(value or "").strip()


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True)
class Settings:
    ports: list[str]
    hosts: list[str]
    ble_name: str
    transports: list[str]  # empty: the config's
    config_path: Path
    sim: bool
    logdir: Path | None
    push: str
    timeout: float
    scope: str

    @property
    def wants_real_board(self) -> bool:
        return not self.sim and bool(self.ports or self.hosts or self.ble_name)

    @property
    def slots(self) -> list[tuple[str | None, str | None]]:
        """(serial port, host) of each real board: the lists are paired by position."""
        n = max(len(self.ports), len(self.hosts), 1 if self.ble_name else 0)
        return [(self.ports[i] if i < len(self.ports) else None, self.hosts[i] if i < len(self.hosts) else None)
                for i in range(n)]


def read_settings(config: pytest.Config) -> Settings:
    """The options, validated; a bad value is a UsageError naming the option."""
    get = lambda ini, env: _raw(config, ini, env)  # noqa: E731
    transports = _split(get("uota_transport", "UOTA_TRANSPORT"))
    unknown = [t for t in transports if t not in KNOWN_TRANSPORTS]
    if unknown:
        raise pytest.UsageError(f"--uota-transport: unknown transport {unknown[0]!r}: choose from "
                                f"{', '.join(KNOWN_TRANSPORTS)}")
    push = get("uota_push", "UOTA_PUSH") or "fast"
    if push not in PUSH_MODES:
        raise pytest.UsageError(f"--uota-push must be one of {', '.join(PUSH_MODES)}, not {push!r}")
    timeout_text = get("uota_timeout", "UOTA_TIMEOUT") or "60"
    try:
        timeout = float(timeout_text)
        if timeout < 0:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"--uota-timeout must be a number of seconds (0 = no timeout), not "
                                f"{timeout_text!r}") from None
    scope = str(config.getini("uota_device_scope") or "session").strip()
    if scope not in SCOPES:
        raise pytest.UsageError(f"uota_device_scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    cfg_text = get("uota_config", "UOTA_CONFIG")
    config_path = Path(cfg_text) if cfg_text else config.rootpath / "config" / "ota.json"
    if not config_path.is_absolute():
        config_path = (config.invocation_params.dir / config_path).resolve()
    logdir_text = get("uota_logdir", "UOTA_LOGDIR")
    logdir = (config.invocation_params.dir / logdir_text).resolve() if logdir_text else None
    sim = get("uota_sim", "UOTA_SIM").lower() in ("1", "true", "yes", "on")
    return Settings(ports=_split(get("uota_port", "UOTA_PORT")), hosts=_split(get("uota_host", "UOTA_HOST")),
                    ble_name=get("uota_ble_name", "UOTA_BLE_NAME"), transports=transports,
                    config_path=config_path, sim=sim, logdir=logdir, push=push, timeout=timeout, scope=scope)
