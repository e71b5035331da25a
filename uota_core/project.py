"""`uota init`: a new firmware project with config and an app skeleton (app/main.py, app/app.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from uota_core.config import CONFIG_FILE, DEFAULTS, SECRET_KEYS, SECRETS_FILE
from uota_core.errors import UotaError
from uota_core.keys import generate_password, generate_signing_key

APP_TEMPLATE = '''\
# Your application. uota runs app/main.py (which calls run()) in its own thread at boot,
# next to the OTA server, so a crash here never locks you out of `uota fast`.
import time

import uota
import uota.remoteio as remoteio


@remoteio.on("hello")
def _(name="world"):
    return "hello " + name


@remoteio.on("set_led")
def _(state=False):
    # a stand-in: on a board, drive the LED here, e.g. machine.Pin(2, machine.Pin.OUT).value(state)
    print("led on" if state else "led off")
    return "ok"


def run():
    print("app started")
    uota.mark_healthy()  # tell the boot guard this version works
    while True:
        time.sleep(1)
'''

APP_MAIN_TEMPLATE = '''\
# Your application's entry point: uota's launcher (the board's main.py) runs this file in
# its own thread at boot, next to the OTA server. Pushes with `uota fast` replace it.
from app import app

app.run()
'''

# the secrets file, its editor/backup copies anywhere, key files, and host caches
GITIGNORE = f"{SECRETS_FILE}\n.ota.secrets.json*\n*.key\n*.pem\n.uota_cache.json\n.uota/\n__pycache__/\n"


def fresh_secrets() -> dict[str, str]:
    """A random OTA password and a random 32-byte signing key (see `uota keygen`)."""
    return {"otaPassword": generate_password(), "signingKey": generate_signing_key()}


def init_project(directory: Path, force: bool = False) -> list[str]:
    """Create the project files in `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg_path = directory / CONFIG_FILE
    if cfg_path.exists() and not force:
        raise UotaError(f"{cfg_path} already exists: use --force to overwrite the project files")
    config = {k: v for k, v in DEFAULTS.items() if k not in SECRET_KEYS}
    files = {
        CONFIG_FILE: json.dumps(config, indent=2) + "\n",
        SECRETS_FILE: json.dumps(fresh_secrets(), indent=2) + "\n",
        "app/app.py": APP_TEMPLATE,
        "app/main.py": APP_MAIN_TEMPLATE,
    }
    written = []
    for rel, text in files.items():
        path = directory / rel
        if rel == SECRETS_FILE and path.exists():
            continue  # never overwrite keys, even with --force
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == SECRETS_FILE:  # private from its first byte
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(text)
        else:
            path.write_text(text)
        written.append(rel)
    gitignore = directory / ".gitignore"
    existing = gitignore.read_text() if gitignore.exists() else ""
    missing = [line for line in GITIGNORE.splitlines() if line not in existing.splitlines()]
    if missing:
        gitignore.write_text(existing + ("" if not existing or existing.endswith("\n") else "\n")
                             + "\n".join(missing) + "\n")
        written.append(".gitignore")
    return written


def migrate_entry(directory: Path) -> str | None:
    """A project from before uota owned the board's main.py keeps its entry point in main.py:
    move it to app/main.py, where the launcher looks for it. Returns what was done (or what
    the user has to do), None if nothing."""
    old, new = directory / "main.py", directory / "app" / "main.py"
    if not old.is_file():
        return None
    if new.exists():
        return ("main.py is not pushed (on the board, main.py is uota's launcher) and app/main.py "
                "is your entry point: delete main.py")
    new.parent.mkdir(parents=True, exist_ok=True)
    old.rename(new)
    return ("moved main.py to app/main.py: on the board, main.py is now uota's launcher, which runs "
            "app/main.py in its own thread")
