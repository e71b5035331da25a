"""The plugin's pushes leave secrets out like the CLI's, and weak secrets stop the session
with one clear message."""

from __future__ import annotations

import json

import pytest

from plugin_helpers import make_project

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(180)


def test_weak_secrets_are_one_error(pytester: pytest.Pytester) -> None:
    make_project(pytester, ["wifi_tcp"])
    secrets = pytester.path / "config" / ".ota.secrets.json"
    secrets.write_text(json.dumps({**json.loads(secrets.read_text()), "otaPassword": "hunter2"}))
    pytester.makepyfile(test_fw="def test_a(esp32_device):\n    assert esp32_device.ping()\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*uota: config/.ota.secrets.json: otaPassword is too weak: it has 7 characters*"
                                 "`uota keygen`*"])
    assert " passed" not in result.stdout.str() and " failed" not in result.stdout.str()


def test_ota_push_never_carries_secret_copies(pytester: pytest.Pytester) -> None:
    root = make_project(pytester, ["wifi_tcp"])  # with the random secrets `uota init` wrote
    keys = (root / "config" / ".ota.secrets.json").read_text()
    for rel in ("config/.ota.secrets.json.bak", "config/secrets.json", "app/app.py~"):
        (root / rel).write_text(keys)
    pytester.makepyfile(test_fw='''
import pytest

def test_session_push_left_them_out(esp32_device):
    assert not {".ota.secrets.json.bak", "secrets.json"} & set(esp32_device.ls("/config"))
    assert "app.py~" not in esp32_device.ls("/app")

def test_ota_push_full_reports_them(ota_push):
    result = ota_push(mode="full")
    assert {"config/.ota.secrets.json.bak", "config/secrets.json", "app/app.py~"} <= set(result.excluded)

def test_naming_one_is_refused(ota_push):
    with pytest.raises(Exception, match="config/secrets.json is listed in the push globs, but uota never pushes"):
        ota_push(files=["config/secrets.json"])
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
