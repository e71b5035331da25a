"""config/ota.json + config/.ota.secrets.json: merging, validation messages, project discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uota_core.config import ConfigError, check_version, find_project, load_config, write_secrets


def make(tmp_path: Path, cfg: object, secrets: object | None = None) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ota.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    if secrets is not None:
        (tmp_path / "config" / ".ota.secrets.json").write_text(json.dumps(secrets))
    return tmp_path


def test_secrets_merge_over_config_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    root = make(tmp_path, {"port": 3000, "otaPassword": "in-config"}, {"otaPassword": "secret", "signingKey": "k"})
    cfg = load_config(root)
    assert cfg["port"] == 3000 and cfg["remoteioPort"] == 2019
    assert cfg.password == "secret" and cfg.signing_key == "k"
    assert cfg.source["otaPassword"] == "config/.ota.secrets.json" and cfg.source["port"] == "config/ota.json"


@pytest.mark.parametrize(("cfg", "secrets", "message"), [
    ({"port": "2018"}, None, "config/ota.json: key 'port' must be an integer from 1 to 65535, got \"2018\""),
    ({"port": 70000}, None, "key 'port' must be an integer"),
    ({"transports": ["wifi", "ble"]}, None, "config/ota.json: key 'transports' must be a non-empty list"),
    ({"fastOtaFiles": "app/**"}, None, "key 'fastOtaFiles' must be a list of glob strings"),
    ({"bleName": "x" * 21}, None, "key 'bleName' must be a string of at most 20 characters"),
    ({}, {"signingKey": 5}, "config/.ota.secrets.json: key 'signingKey' must be a string"),
    ("{\"port\": 2018,}", None, "config/ota.json is not valid JSON (line 1"),
    ("[1, 2]", None, "config/ota.json must hold a JSON object"),
])
def test_validation_names_the_key_and_the_file(tmp_path: Path, cfg, secrets, message: str) -> None:
    root = make(tmp_path, cfg, secrets)
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert message in str(info.value)


def test_find_project_walks_up_like_git(tmp_path: Path) -> None:
    root = make(tmp_path, {})
    deep = root / "app" / "sub"
    deep.mkdir(parents=True)
    assert find_project(deep) == root.resolve()
    with pytest.raises(ConfigError, match="run `uota init`"):
        find_project(tmp_path.parent / "elsewhere-that-does-not-exist")


def test_write_secrets_merges_and_is_private(tmp_path: Path) -> None:
    root = make(tmp_path, {}, {"signingKey": "k"})
    path = write_secrets(root, {"otaPassword": "pw"})
    assert json.loads(path.read_text()) == {"signingKey": "k", "otaPassword": "pw"}
    assert path.stat().st_mode & 0o077 == 0


BAD_VERSIONS = ["1.0\nmain.py:" + "a" * 64, "1.0:x", "1.0;x", '1.0"x', "1.0'x", "1.0 x", "1.0\u00e9", "", "x" * 33, 5]


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_version_the_device_would_refuse_is_refused_on_loading(tmp_path: Path, version: object) -> None:
    root = make(tmp_path, {"version": version})
    with pytest.raises(ConfigError, match=r"config/ota.json: key 'version' must be 1 to 32 characters from 0-9"):
        load_config(root)


def test_the_version_charset_allows_semver_with_build_metadata(tmp_path: Path) -> None:
    version = "2.0.0-rc.1+build_7"
    assert load_config(make(tmp_path, {"version": version}))["version"] == version
    assert check_version("x" * 32) == "x" * 32


@pytest.mark.parametrize("version", ["1.0\nx", "a:b", "caf\u00e9"])
def test_a_bad_version_option_fails_before_connecting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      version: str) -> None:
    from click.testing import CliRunner

    import uota_core.cli.ota as ota_cli
    from uota_core.cli import cli

    make(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ota_cli, "open_session", lambda *a, **k: pytest.fail("connected with a bad version"))
    result = CliRunner().invoke(cli, ["fast", "--version", version])
    assert result.exit_code == 1
    assert "error: --version: bad version" in result.output and "1 to 32 characters" in result.output
