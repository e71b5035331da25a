"""The project's cache of derived device keys (`.uota/keys.json`): a command pays PBKDF2 once
per device, and a stale or wrong cached key never authenticates anything."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import uota_core.auth as auth
from attack_helpers import PASSWORD, make_project, secured_board
from relay_helpers import Impostor, fake_hello, ota_impostor
from uota_core.auth import KEY_CACHE
from uota_core.config import load_config
from uota_core.connect import open_remoteio, open_session
from uota_core.session import AuthError
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("keycache") / "proj", password=PASSWORD)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory, project: Path) -> Iterator[VirtualBoard]:
    with secured_board(tmp_path_factory.mktemp("keycache-board"), project, app_up=None) as b:
        yield b


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The PBKDF2 runs from here on (the real function, counted; its in-process memo off)."""
    runs: list[tuple[str, int]] = []
    real = auth.derive_key.__wrapped__

    def counted(password: str, salt: str, iterations: int) -> bytes:
        runs.append((salt, iterations))
        return real(password, salt, iterations)

    monkeypatch.setattr(auth, "derive_key", counted)
    return runs


def cached(project: Path) -> dict[str, list[str]]:
    """slot -> [key hex, tag]"""
    return json.loads((project / KEY_CACHE).read_text())


def test_the_second_command_runs_no_pbkdf2_and_the_cache_is_private(
        board: VirtualBoard, project: Path, derivations: list) -> None:
    (project / KEY_CACHE).unlink(missing_ok=True)
    cfg = load_config(project)
    with open_session(cfg) as s:
        slot = f"{s.info.salt}:{s.info.iter}"
    assert derivations == [(s.info.salt, s.info.iter)]
    assert list(cached(project)) == [slot]
    assert stat.S_IMODE((project / KEY_CACHE).stat().st_mode) == 0o600
    with open_session(cfg) as s:
        assert s.version() is not None
    with open_remoteio(cfg) as rio:
        assert rio.sealed
    assert len(derivations) == 1, "a cached key was derived again"


def test_a_stale_cached_key_is_derived_anew(board: VirtualBoard, project: Path, derivations: list) -> None:
    cfg = load_config(project)
    with open_session(cfg):
        pass
    slot, good = next(iter(cached(project).items()))
    # a wrong key kept for this very password (as if the board got another one over USB)
    wrong = bytes(32)
    (project / KEY_CACHE).write_text(json.dumps({slot: [wrong.hex(), auth._cache_tag(wrong, PASSWORD)]}))
    with open_session(cfg) as s:
        assert s.authenticated
    assert cached(project) == {slot: good}
    (project / KEY_CACHE).write_text("{not json")  # damaged: as if there were none
    with open_remoteio(cfg) as rio:
        assert rio.sealed
    assert cached(project) == {slot: good}


def test_an_impostor_gets_no_key_cached(tmp_path: Path, project: Path) -> None:
    hello = fake_hello()
    with Impostor(ota_impostor(hello)) as impostor:
        cfg = load_config(project)
        before = (project / KEY_CACHE).read_text() if (project / KEY_CACHE).exists() else None
        with pytest.raises(AuthError, match="not your device"):
            open_session(cfg, "wifi_tcp", *impostor.addr)
    after = (project / KEY_CACHE).read_text() if (project / KEY_CACHE).exists() else None
    assert after == before and (after is None or hello["salt"] not in after)


def test_a_kept_key_counts_only_for_the_password_it_came_from(
        board: VirtualBoard, project: Path, derivations: list) -> None:
    """A wrong password in the project fails, though the right key is kept beside it."""
    from uota_core.config import write_secrets

    cfg = load_config(project)
    with open_session(cfg):
        pass
    write_secrets(project, {"otaPassword": "not-the-Board-password-7"})
    try:
        with pytest.raises(AuthError, match="wrong OTA password"):
            open_session(load_config(project))
    finally:
        write_secrets(project, {"otaPassword": PASSWORD})
