"""`ota_push()` in a firmware project's tests: an app that doesn't come up fails the test
with AppNotHealthy and the board's traceback in the report; a healthy push returns."""

from __future__ import annotations

import pytest

from plugin_helpers import make_project

pytest_plugins = ["pytester"]

INNER = '''
import pathlib

import pytest

from uota_core.health import AppNotHealthy

BROKEN = "import uota\\nraise RuntimeError('broken build')\\n"


def test_broken_push(ota_push):
    app = pathlib.Path("app/app.py")
    good = app.read_text()
    app.write_text(BROKEN)
    try:
        ota_push(version="2.0.0")
    finally:
        app.write_text(good)


def test_the_raise_is_catchable(ota_push):
    app = pathlib.Path("app/app.py")
    good = app.read_text()
    app.write_text(BROKEN)
    try:
        with pytest.raises(AppNotHealthy) as caught:
            ota_push(version="2.0.1")
    finally:
        app.write_text(good)
    assert caught.value.health.app == "crashed"
    assert "RuntimeError: broken build" in caught.value.health.traceback


def test_a_healthy_push_returns(ota_push, esp32_device):
    result = ota_push(version="2.0.2")
    assert result.committed and result.version == "2.0.2"
    assert esp32_device.version() == "2.0.2"
'''


@pytest.mark.timeout(240)
@pytest.mark.parametrize("transport", ["wifi_tcp", "serial"])
def test_ota_push_fails_a_test_with_the_boards_traceback(pytester: pytest.Pytester, transport: str) -> None:
    make_project(pytester, ["wifi_tcp"])
    pytester.makepyfile(test_fw=INNER)
    # in a process of its own: cryptography's OpenSSL bindings refuse AES once a previous
    # in-process run (the other transport's) has dropped and re-imported them
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly",
                                           f"--uota-transport={transport}", timeout=200)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_broken_push*",
        "*AppNotHealthy: the app crashed: version 2.0.0 raised at boot*",
        "*RuntimeError: broken build*",
    ])
