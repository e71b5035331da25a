"""Shared fixtures for the project's own tests: fresh virtual boards in temp dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Loaded before pytester's in-process runs, which drop the modules imported inside them:
# cryptography imported again over its already loaded Rust extension refuses AES-ECB
# ("not supported") in the next run, so sealed sessions failed in every run but the first.
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: F401

from uota_core.sim import VirtualBoard

# `uota list` and `--all` scan a subnet: in tests only ever a loopback one (a test that
# forgot --subnet scans 127.0.0.0/24, one that names another subnet is refused)
os.environ.setdefault("UOTA_SCAN_LOOPBACK_ONLY", "1")


@pytest.fixture
def board(tmp_path: Path) -> Iterator[VirtualBoard]:
    """A freshly erased virtual board at 115200 baud, without mDNS (faster to start)."""
    with VirtualBoard(tmp_path / "board", name="testboard", mdns=False) as b:
        yield b


@pytest.fixture
def fast_board(tmp_path: Path) -> Iterator[VirtualBoard]:
    """A virtual board with an unthrottled serial line, for tests about behaviour, not speed."""
    with VirtualBoard(tmp_path / "fastboard", name="fastboard", baud=None, mdns=False) as b:
        yield b


@pytest.fixture
def ota_project(tmp_path: Path) -> Path:
    """A `uota init` project whose app prints and answers `hello`; hostname set per board.
    Its secrets are blanked (auth and signing off): the tests of secured boards use
    attack_helpers.healthy_board."""
    from uota_core.config import write_secrets
    from uota_core.project import init_project

    proj = tmp_path / "proj"
    init_project(proj)
    write_secrets(proj, {"otaPassword": "", "signingKey": ""})
    return proj


@pytest.fixture
def ota_board(tmp_path: Path, ota_project: Path) -> Iterator[VirtualBoard]:
    """An unthrottled virtual board with the OTA stack installed (as `uota bootstrap` would)
    and `ota_project`'s config/ota.json pointing at it."""
    import json

    from uota_core.bootstrap import install_offline
    from uota_core.config import load_config
    from uota_core.connect import wait_reachable

    b = VirtualBoard(tmp_path / "otaboard", name="otaboard", baud=None, mdns=False)
    b.start(power_on=False)
    try:
        cfg_path = ota_project / "config" / "ota.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.update(hostname=b.host, healthyAfter=2)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        install_offline(b.write_file, load_config(ota_project))
        b.power_on()
        wait_reachable(b.host, 2018)
        yield b
    finally:
        print(b.console[-6000:])  # pytest shows it only when the test failed
        print(b.describe())
        b.stop()
