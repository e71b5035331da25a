"""Helpers for the plugin's tests: a small firmware project for inner pytest runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

APP = '''\
import time
import uota
import uota.remoteio as remoteio


@remoteio.on("shout")
def shout(text="hi"):
    print("shouting " + text)
    return text.upper()


@remoteio.on("hang")
def hang(seconds=30):
    time.sleep(seconds)
    return "woke"


def run():
    uota.mark_healthy()
    while True:
        time.sleep(1)
'''


def make_project(pytester: pytest.Pytester, transports: list[str], **config: object) -> Path:
    """A `uota init` project in the pytester dir whose app answers `shout` and `hang`."""
    from uota_core.project import init_project

    root = pytester.path
    init_project(root)
    cfg_path = root / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(transports=transports, healthyAfter=2, **config)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (root / "app" / "app.py").write_text(APP)
    return root
