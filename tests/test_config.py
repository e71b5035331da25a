"""config/ota.json + config/.ota.secrets.json: merging, validation messages, project discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uota_core.config import ConfigError, check_version, find_project, load_config, write_secrets
from uota_core.keys import generate_password, generate_signing_key, password_problem, signing_key_problem

KEY = "1c1fb904024ccb2735147c330a41b52fb9deab4b191c8d1a5117fed131ed9c68"  # 32 random bytes
PASSWORD = "a_FliLdLtnUNyn3goqN1LEpz"


def make(tmp_path: Path, cfg: object, secrets: object | None = None) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ota.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    if secrets is not None:
        (tmp_path / "config" / ".ota.secrets.json").write_text(json.dumps(secrets))
    return tmp_path


def test_secrets_merge_over_config_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    root = make(tmp_path, {"port": 3000, "otaPassword": "in-config"}, {"otaPassword": PASSWORD, "signingKey": KEY})
    cfg = load_config(root)
    assert cfg["port"] == 3000 and cfg["remoteioPort"] == 2019
    assert cfg.password == PASSWORD and cfg.signing_key == KEY
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
    root = make(tmp_path, {}, {"signingKey": KEY})
    path = write_secrets(root, {"otaPassword": PASSWORD})
    assert json.loads(path.read_text()) == {"signingKey": KEY, "otaPassword": PASSWORD}
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("signingKey", "my-hmac-secret", "it holds only 10 bytes (14 base64 characters)"),
    ("signingKey", KEY[:40], "it holds only 20 bytes (40 hex digits)"),
    ("signingKey", "k3y that must never leak, 0123456789!", "it looks typed by hand"),
    ("signingKey", "deadbeef" * 8, "too regular to be random"),
    ("signingKey", "0123456789abcdef" * 4, "too regular to be random"),
    ("signingKey", "a" * 64, "too regular to be random"),
    ("signingKey", "thisismysigningkeythatisverylongindeedyesss", "too regular to be random"),
    ("otaPassword", "pw-1", "it has 4 characters; use at least 12"),
    ("otaPassword", "Password123!", "on the list of passwords guessers try first"),
    ("otaPassword", "correct horse battery staple", "on the list of passwords guessers try first"),
    ("otaPassword", "qwertyuiop12", "on the list of passwords guessers try first"),
    ("otaPassword", "123456789012", "too regular"),
    ("otaPassword", "abcabcabcabc", "too regular"),
    ("otaPassword", "zzzzzzzzzzzzzzzz", "too regular"),
])
def test_weak_secrets_are_refused_with_what_to_do(tmp_path: Path, key: str, value: str, problem: str) -> None:
    root = make(tmp_path, {}, {key: value})
    with pytest.raises(ConfigError) as info:
        load_config(root)
    message = str(info.value)
    assert message.startswith(f"config/.ota.secrets.json: {key} is too weak: ") and problem in message
    assert "`uota keygen`" in message and "`uota bootstrap`" in message
    # write_secrets (uota passwd) refuses the same value and leaves the file as it was
    before = (root / "config" / ".ota.secrets.json").read_bytes()
    with pytest.raises(ConfigError, match=f"not written to config/.ota.secrets.json: {key} is too weak"):
        write_secrets(root, {key: value})
    assert (root / "config" / ".ota.secrets.json").read_bytes() == before


def test_weak_secrets_in_the_wrong_file_are_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config/ota.json: signingKey is too weak"):
        load_config(make(tmp_path, {"signingKey": "k"}))


def test_empty_secrets_mean_off_and_generated_ones_always_pass(tmp_path: Path) -> None:
    cfg = load_config(make(tmp_path, {}, {"otaPassword": "", "signingKey": ""}))
    assert cfg.password == "" and cfg.signing_key == ""
    for _ in range(2000):  # the checks must never refuse what keygen makes
        key, password = generate_signing_key(), generate_password()
        assert len(key) == 64 and len(password) >= 12
        assert signing_key_problem(key) is None and password_problem(password) is None


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

    import uota_core.connect
    from uota_core.cli import cli

    make(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uota_core.connect, "open_session", lambda *a, **k: pytest.fail("connected with a bad version"))
    result = CliRunner().invoke(cli, ["fast", "--version", version])
    assert result.exit_code == 1
    assert "error: --version: bad version" in result.output and "1 to 32 characters" in result.output


@pytest.mark.parametrize(("key", "hint"), [
    ("hostnmae", "did you mean 'hostname'?"),
    ("HealthyAfter", "did you mean 'healthyAfter'?"),
    ("otaPasword", "did you mean 'otaPassword'?"),
    ("zzz", "the known keys are bleName, excludedFiles"),
])
def test_an_unknown_key_warns_with_the_closest_known_key(tmp_path: Path, key: str, hint: str) -> None:
    root = make(tmp_path, {key: "x", "port": 3000})
    cfg = load_config(root)
    assert len(cfg.warnings) == 1, cfg.warnings
    assert cfg.warnings[0].startswith(f"config/ota.json: unknown key {key!r} is ignored: {hint}"), cfg.warnings
    assert cfg["port"] == 3000  # the rest still applies


def test_known_keys_and_the_init_template_warn_nothing(tmp_path: Path) -> None:
    from uota_core.project import init_project

    init_project(tmp_path / "proj")
    assert load_config(tmp_path / "proj").warnings == []
