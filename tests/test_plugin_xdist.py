"""Under pytest-xdist each worker takes its own board: a virtual board each, or a serial
port from the --uota-port list under a file lock."""

from __future__ import annotations

import json

import pytest

from plugin_helpers import make_project
from uota_core.boardpool import claim_board
from uota_core.errors import BoardError

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(180)

TESTS = '''
import json, os, pathlib

def _record(esp32_device, name):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
    out = pathlib.Path(os.environ["UOTA_TEST_RECORD"]) / f"{name}-{worker}.json"
    out.write_text(json.dumps({"worker": worker, "host": esp32_device.host}))

''' + "\n".join(f'''
def test_{i}(esp32_device, remoteio):
    assert remoteio.call("shout", text="w{i}") == "W{i}"
    _record(esp32_device, "t{i}")
''' for i in range(6))


def test_two_workers_two_virtual_boards(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(pytester, ["wifi_tcp"])
    pytester.makepyfile(test_fw=TESTS)
    record = pytester.path / "record"
    record.mkdir()
    monkeypatch.setenv("UOTA_TEST_RECORD", str(record))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", timeout=150)
    result.assert_outcomes(passed=6)
    seen = [json.loads(p.read_text()) for p in record.iterdir()]
    hosts_by_worker: dict[str, set[str]] = {}
    for entry in seen:
        hosts_by_worker.setdefault(entry["worker"], set()).add(entry["host"])
    assert sorted(hosts_by_worker) == ["gw0", "gw1"]
    (host0,), (host1,) = hosts_by_worker["gw0"], hosts_by_worker["gw1"]
    assert host0 != host1 and host0.startswith("127.0.0.") and host1.startswith("127.0.0.")


def test_more_workers_than_boards_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fw="def test_x(esp32_device):\n    pass\n")
    result = pytester.runpytest("-n", "3", "-p", "no:cacheprovider", "--uota-port=/dev/ttyA,/dev/ttyB")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*-n 3 needs 3 boards, but 2 are given*"])


def test_board_pool_claims_each_board_once(tmp_path) -> None:
    slots = ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    first = claim_board(slots, tmp_path, preferred=1)
    second = claim_board(slots, tmp_path, preferred=1)
    assert (first.slot, second.slot) == ("/dev/ttyUSB1", "/dev/ttyUSB0")
    with pytest.raises(BoardError, match="all 2 boards .* are in use"):
        claim_board(slots, tmp_path)
    first.release()
    assert claim_board(slots, tmp_path).slot == "/dev/ttyUSB1"
