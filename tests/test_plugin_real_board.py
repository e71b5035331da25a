"""--uota-port / --uota-host: the plugin tests the board it is pointed at (here a virtual
board this test runs, reached only through its serial port and address, like a real one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plugin_helpers import make_project
from uota_core.bootstrap import install_offline
from uota_core.config import load_config
from uota_core.connect import wait_reachable
from uota_core.sim import VirtualBoard

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(150)

TESTS = '''
def test_device(esp32_device, remoteio):
    assert esp32_device.ping()
    assert remoteio.call("shout", text="real") == "REAL"
    esp32_device.expect("shouting real", timeout=5)

def test_push_a_chosen_set(esp32_device, ota_push):
    version = "2.0.0-" + esp32_device.transport
    result = ota_push(files=["app/**"], version=version)
    assert result.committed and result.version == version
    assert result.sent == [] and result.bytes == 0  # the files are there already: only the version moves
    assert esp32_device.version() == version

def test_needs_virtual_board(virtual_board):
    pass
'''


@pytest.fixture
def bootstrapped_board(pytester: pytest.Pytester) -> Iterator[VirtualBoard]:
    root = make_project(pytester, ["wifi_tcp", "serial"])
    board = VirtualBoard(pytester.path / "board-state", name="realish", mdns=False)
    board.start(power_on=False)
    try:
        install_offline(board.write_file, load_config(root))
        board.power_on()
        wait_reachable(board.host, 2018)
        yield board
    finally:
        board.stop()


def test_port_and_host_select_that_board(pytester: pytest.Pytester, bootstrapped_board: VirtualBoard) -> None:
    pytester.makepyfile(test_fw=TESTS)
    board = bootstrapped_board
    result = pytester.runpytest("-v", "-rs", "-p", "no:cacheprovider", f"--uota-port={board.serial_port}",
                                f"--uota-host={board.host}")
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines([f"uota: target board {board.serial_port} {board.host};*"])
    result.stdout.fnmatch_lines([f"uota: {board.serial_port} {board.host} ({board.host}, {board.serial_port});"
                                 "*MicroPython*transports: wifi_tcp, serial*"])
    result.stdout.fnmatch_lines(["*::test_device[[]wifi_tcp[]] PASSED*", "*::test_device[[]serial[]] PASSED*"])
    result.stdout.fnmatch_lines(["*needs a virtual board: this run tests a real board*"])
    # the session's push went to that board
    assert b"shout" in board.read_file("/app/app.py")


def test_env_and_ini_settings(pytester: pytest.Pytester, bootstrapped_board: VirtualBoard,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the environment beats the ini file; device scope from the ini: one device per test
    board = bootstrapped_board
    pytester.makeini(f"[pytest]\nuota_transport = serial\nuota_host = {board.host}\n"
                     "uota_device_scope = function\n")
    monkeypatch.setenv("UOTA_TRANSPORT", "wifi_tcp")
    pytester.makepyfile(test_fw='''
seen = []

def test_a(esp32_device):
    seen.append(esp32_device)

def test_b(esp32_device):
    seen.append(esp32_device)
    assert seen[0] is not seen[1]
''')
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "--uota-push=none")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*::test_a[[]wifi_tcp[]] PASSED*", "*::test_b[[]wifi_tcp[]] PASSED*"])
