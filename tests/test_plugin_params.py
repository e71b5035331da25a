"""The plugin on a virtual board: a test runs once per transport, an unavailable transport is
a skip with its reason, and a failing test's report carries the device's output."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from plugin_helpers import make_project

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

TESTS = '''
import pytest

def test_ping(esp32_device):
    assert esp32_device.ping()
    assert esp32_device.transport in ("wifi_tcp", "serial")

@pytest.mark.uota(transports=["serial"])
def test_serial_only(esp32_device):
    assert esp32_device.transport == "serial"

def test_prints_then_fails(remoteio, esp32_device):
    assert remoteio.call("shout", text="boom") == "BOOM"
    esp32_device.expect("shouting boom", timeout=5)
    assert "shouting boom" in remoteio.output
    assert False, "failing on purpose"

def test_expect_timeout_shows_output(remoteio, esp32_device):
    remoteio.call("shout", text="seen")
    esp32_device.expect("shouting seen", timeout=5)
    remoteio.call("shout", text="later")
    esp32_device.expect("never printed", timeout=0.5)
'''


def test_ids_skips_output_sections_junit_and_logs(pytester: pytest.Pytester) -> None:
    make_project(pytester, ["wifi_tcp", "serial", "ble"])
    pytester.makepyfile(test_fw=TESTS)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("-v", "-rs", "-p", "no:cacheprovider", f"--junitxml={junit}",
                                "--uota-logdir=logs")
    result.assert_outcomes(passed=3, failed=4, skipped=3)
    out = result.stdout.str()
    # one run per transport, ids name the transport; ble is reported, not dropped
    for line in ("*::test_ping[[]wifi_tcp[]] PASSED*", "*::test_ping[[]serial[]] PASSED*",
                 "*::test_ping[[]ble[]] SKIPPED*", "*::test_serial_only[[]serial[]] PASSED*",
                 "SKIPPED [[]1[]] test_fw.py:3: ble: BLE transport not available in this version of uota"):
        result.stdout.fnmatch_lines([line])
    assert "test_serial_only[wifi_tcp]" not in out
    # the session header names the board, its firmware and the transports
    result.stdout.fnmatch_lines(["uota: virtual board uota-master (127.0.0.*MicroPython*app version 1.0.0"
                                 "*transports: wifi_tcp, serial, ble (skipped: unavailable)*"])
    # a failing test's report shows what the device printed, per transport
    result.stdout.fnmatch_lines(["*Captured device output [[]wifi_tcp[]] call*", "shouting boom*"])
    result.stdout.fnmatch_lines(["*Captured device output [[]serial[]] call*", "shouting boom*"])
    # an expect() timeout quotes the output seen since the previous match
    result.stdout.fnmatch_lines(["*'never printed' not printed by the device within 0.5 s*", "shouting later*"])
    # JUnit XML carries the device output of each device test
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_prints_then_fails[serial]"].iter("property")}
    assert "shouting boom" in props["uota device output [serial]"]
    # one log per test in --uota-logdir
    log = pytester.path / "logs" / "test_fw.py_test_prints_then_fails[wifi_tcp].log"
    text = log.read_text()
    assert text.startswith("# test_fw.py::test_prints_then_fails[wifi_tcp]: failed")
    assert "shouting boom" in text
    assert (pytester.path / "logs" / "test_fw.py_test_ping[serial].log").read_text().splitlines()[0].endswith("passed")


def test_transport_option_and_unselected_marker(pytester: pytest.Pytester) -> None:
    make_project(pytester, ["wifi_tcp", "serial"])
    pytester.makepyfile(test_fw=TESTS.split("def test_prints_then_fails")[0])
    result = pytester.runpytest("-v", "-rs", "-p", "no:cacheprovider", "--uota-transport=wifi_tcp",
                                "--uota-push=none")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*::test_ping[[]wifi_tcp[]] PASSED*", "*::test_serial_only[[]serial[]] SKIPPED*"])
    result.stdout.fnmatch_lines(["*none of this test's transports (serial) is selected for this run (wifi_tcp)*"])
    assert "test_ping[serial]" not in result.stdout.str()
