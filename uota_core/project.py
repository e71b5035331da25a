"""`uota init`: a new firmware project with config, an app skeleton and main.py."""

from __future__ import annotations

import json
from pathlib import Path

from uota_core.config import CONFIG_FILE, DEFAULTS, SECRET_KEYS, SECRETS_FILE
from uota_core.errors import UotaError
from uota_core.resources import device_dir

APP_TEMPLATE = '''\
# Your application. uota runs main.py (which calls run()) in its own thread at boot, next
# to the OTA server, so a crash here never locks you out of `uota fast`.
import time

import uota
import uota.remoteio as remoteio


@remoteio.on("hello")
def _(name="world"):
    return "hello " + name


def run():
    print("app started")
    uota.mark_healthy()  # tell the boot guard this version works
    while True:
        time.sleep(1)
'''

GITIGNORE = f"{SECRETS_FILE}\n.uota_cache.json\n__pycache__/\n"


def init_project(directory: Path, force: bool = False) -> list[str]:
    """Create the project files in `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg_path = directory / CONFIG_FILE
    if cfg_path.exists() and not force:
        raise UotaError(f"{cfg_path} already exists: use --force to overwrite the project files")
    config = {k: v for k, v in DEFAULTS.items() if k not in SECRET_KEYS}
    files = {
        CONFIG_FILE: json.dumps(config, indent=2) + "\n",
        SECRETS_FILE: json.dumps({"otaPassword": "", "signingKey": ""}, indent=2) + "\n",
        "app/app.py": APP_TEMPLATE,
        "main.py": (device_dir() / "main.py").read_text(),
    }
    written = []
    for rel, text in files.items():
        path = directory / rel
        if rel == SECRETS_FILE and path.exists():
            continue  # never overwrite keys, even with --force
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel == SECRETS_FILE:
            path.chmod(0o600)
        written.append(rel)
    gitignore = directory / ".gitignore"
    existing = gitignore.read_text() if gitignore.exists() else ""
    missing = [line for line in GITIGNORE.splitlines() if line not in existing.splitlines()]
    if missing:
        gitignore.write_text(existing + ("" if not existing or existing.endswith("\n") else "\n")
                             + "\n".join(missing) + "\n")
        written.append(".gitignore")
    return written
