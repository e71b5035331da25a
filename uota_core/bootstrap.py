"""`uota bootstrap`: install the device side over USB (raw REPL) and provision its secrets.

The OTA key (PBKDF2 of the password, under a salt drawn per bootstrap) and the signing key
cross only this USB link, never WiFi/BLE; the password itself never leaves the host.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from uota_core.auth import PBKDF2_ITERATIONS, derive_key, new_salt
from uota_core.config import CONFIG_FILE, SECRET_KEYS, SECRETS_FILE, Config
from uota_core.mpy import compile_mpy, mpy_cross_version, mpy_name
from uota_core.rawrepl import RawRepl
from uota_core.resources import device_dir

FileProgress = Callable[[str, int], None]


def stack_files(mpy: bool = False) -> dict[str, bytes]:
    """The OTA stack as it lands on the board: boot.py, the launcher main.py and lib/uota/**
    (optionally as .mpy)."""
    root = device_dir()
    files = {name: (root / name).read_bytes() for name in ("boot.py", "main.py")}
    for src in sorted((root / "lib" / "uota").rglob("*.py")):
        rel = src.relative_to(root).as_posix()
        files[rel] = src.read_bytes()
    if mpy:
        files = {_mpy_name(rel): compile_mpy(rel, data) if rel.startswith("lib/") else data
                 for rel, data in files.items()}
    return files


def _mpy_name(rel: str) -> str:
    return mpy_name(rel) if rel.startswith("lib/") and rel.endswith(".py") else rel


def provision_files(cfg: Config) -> dict[str, bytes]:
    """The device's config/ota.json (without secrets) and its secrets file."""
    files = {}
    cfg_path = cfg.root / CONFIG_FILE
    data = json.loads(cfg_path.read_text(encoding="utf-8"))
    files[CONFIG_FILE] = (json.dumps({k: v for k, v in data.items() if k not in SECRET_KEYS}, indent=2)
                          + "\n").encode()
    secrets = ota_key_secrets(cfg.password)
    secrets["signingKey"] = cfg.signing_key
    files[SECRETS_FILE] = json.dumps(secrets).encode()
    return files


def ota_key_secrets(password: str) -> dict[str, str | int]:
    """The device's share of an OTA password: its PBKDF2 key, salt and iterations (the
    board never runs PBKDF2); empty for no password."""
    if not password:
        return {"otaKey": ""}
    salt = new_salt()
    return {"otaKey": derive_key(password, salt, PBKDF2_ITERATIONS).hex(), "otaSalt": salt,
            "otaIter": PBKDF2_ITERATIONS}


def bootstrap_files(cfg: Config, mpy: bool = False) -> dict[str, bytes]:
    files = stack_files(mpy)
    files.update(provision_files(cfg))
    return files


# Removes a stale OTA stack (e.g. .py files after an --mpy install) before the new one lands.
_CLEAN_STACK = """
import os
def _rm(p):
    try:
        if os.stat(p)[0] & 0x4000:
            for n in os.listdir(p):
                _rm(p + '/' + n)
            os.rmdir(p)
        else:
            os.remove(p)
    except OSError:
        pass
_rm('/lib/uota')
del _rm
"""


# the .mpy version the board's MicroPython loads (0: too old to say)
_BOARD_MPY = "import sys\nprint(getattr(sys.implementation, '_mpy', 0) & 255)"


def bootstrap(port: str, cfg: Config, baud: int = 115200, mpy: bool | None = None,
              on_file: FileProgress | None = None) -> list[str]:
    """Upload the stack and the provisioning files over the raw REPL, then reset the board.

    `mpy`: install the stack as bytecode (True), as source (False), or as bytecode when the
    board loads the .mpy version mpy-cross writes (None). Bytecode is the better default:
    importing it takes no compiler RAM, so a session still starts on a fragmented heap."""
    with RawRepl(port, baud) as repl:
        repl.enter()
        if mpy is None:
            mpy = int(repl.exec(_BOARD_MPY).split()[-1]) == mpy_cross_version() != 0
        files = bootstrap_files(cfg, mpy)
        repl.exec(_CLEAN_STACK)
        for rel, data in files.items():
            repl.put_file("/" + rel, data)
            if on_file:
                on_file(rel, len(data))
        repl.hard_reset()
    return list(files)


def install_offline(write_file: Callable[[str, bytes], None], cfg: Config, mpy: bool = True) -> list[str]:
    """What `bootstrap` uploads, written through `write_file(path, data)` instead of a REPL:
    e.g. `install_offline(board.write_file, cfg)` on a powered-off VirtualBoard (whose
    MicroPython loads the .mpy version mpy-cross writes, so the stack goes as bytecode)."""
    files = bootstrap_files(cfg, mpy)
    for rel, data in files.items():
        write_file("/" + rel, data)
    return list(files)
