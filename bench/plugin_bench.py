"""pytest plugin benchmarks, each an inner `pytest` run on virtual boards.

Run: python bench/plugin_bench.py [--tests N]

- per-test cost of a device test (`remoteio.call("ping")`) on a session-scoped board, over
  wifi_tcp and over serial, against a plain test that does nothing (pytest's own floor) in
  the same run; each test's setup + call + teardown timed by a conftest hook, the first test
  of each transport left out (it opens the session's connection);
- virtual-board session start-up: a one-test run against the same run with a plain test;
- the pytest-xdist speed-up of `-n 2` (two virtual boards) on device-bound tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uota_core.config import write_secrets
from uota_core.project import init_project

APP = '''\
import time
import uota
import uota.remoteio as remoteio


@remoteio.on("work")
def work(ms=200):
    time.sleep_ms(ms)  # a device-bound step: a sensor read, a motor move
    return ms


def run():
    uota.mark_healthy()
    while True:
        time.sleep(1)
'''


# records each test's full protocol time (setup + call + teardown) in microseconds
TIMING_CONFTEST = '''
import json, os, time
import pytest

_times = []

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0, start = time.perf_counter(), time.time()
    try:
        return (yield)
    finally:
        _times.append((item.name, time.perf_counter() - t0, start))

def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(str(session.config.rootpath), f"times-{worker}.json"), "w") as f:
        json.dump(_times, f)
'''


def make_project(root: Path, tests: str, transports: list[str]) -> None:
    init_project(root)
    write_secrets(root, {"otaPassword": "", "signingKey": ""})  # figures are for an open board
    cfg_path = root / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(transports=transports, healthyAfter=2)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (root / "app" / "app.py").write_text(APP)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_bench.py").write_text(tests)
    (root / "tests" / "conftest.py").write_text(TIMING_CONFTEST)


def run_pytest(root: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "UOTA_"))}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"inner pytest failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return wall


def case_times(root: Path) -> dict[str, list[float]]:
    """Per-test times (setup + call + teardown) by parameter id, in run order."""
    out: dict[str, list[float]] = {}
    for name, seconds, _ in json.loads((root / "times-main.json").read_text()):
        param = name[name.index("[") + 1:-1] if "[" in name else "plain"
        out.setdefault(param, []).append(seconds)
    return out


def raw_call_times(root: Path, n: int) -> dict[str, float]:
    """The peer: median `ping` round trip of a bare RemoteIO client, no pytest, per transport."""
    from uota_core.bootstrap import install_offline
    from uota_core.config import load_config
    from uota_core.connect import wait_reachable
    from uota_core.remoteio import RemoteIOClient
    from uota_core.serial_transport import open_serial_remoteio
    from uota_core.sim import VirtualBoard

    out = {}
    with VirtualBoard(root / "raw-board", mdns=False) as board:
        board.power_cut()
        install_offline(board.write_file, load_config(root))
        board.power_on()
        wait_reachable(board.host, 2018)
        for transport in ("wifi_tcp", "serial"):
            rio = RemoteIOClient(board.host) if transport == "wifi_tcp" else open_serial_remoteio(board.serial_port)
            with rio:
                laps = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    rio.call("ping")
                    laps.append(time.perf_counter() - t0)
            out[transport] = statistics.median(laps)
    return out


def per_test(tmp: Path, n: int) -> None:
    tests = "\n".join(f"def test_ping_{i}(remoteio):\n    assert remoteio.call('ping') == 'pong'\n"
                      for i in range(n))
    tests += "\n".join(f"\ndef test_plain_{i}():\n    pass\n" for i in range(n))
    root = tmp / "per-test"
    make_project(root, tests, ["wifi_tcp", "serial"])
    run_pytest(root)
    times = case_times(root)
    raw = raw_call_times(root, n)
    floor = statistics.median(times["plain"])
    print(f"per-test cost, {n} tests each (median of setup+call+teardown):")
    print(f"  plain test (pytest's floor)         {floor * 1000:7.2f} ms")
    for transport in ("wifi_tcp", "serial"):
        runs = times[transport][1:]
        med = statistics.median(runs)
        print(f"  remoteio.call('ping') {transport:9s}   {med * 1000:7.2f} ms  (p90 "
              f"{statistics.quantiles(runs, n=10)[-1] * 1000:.2f} ms; first test incl. connect "
              f"{times[transport][0] * 1000:.0f} ms)")
        print(f"    peer: bare RemoteIOClient ping {raw[transport] * 1000:7.2f} ms, so the plugin and pytest add "
              f"{(med - raw[transport]) * 1000:.2f} ms per test ({med / raw[transport]:.2f}x the bare call)")


def startup(tmp: Path, runs: int) -> None:
    root = tmp / "startup"
    make_project(root, "def test_one(esp32_device):\n    pass\n", ["wifi_tcp"])
    plain = tmp / "plain"
    plain.mkdir()
    (plain / "test_plain.py").write_text("def test_one():\n    pass\n")
    board = [run_pytest(root, "--uota-push=fast") for _ in range(runs)]
    floor = [run_pytest(plain) for _ in range(runs)]
    b, f = statistics.median(board), statistics.median(floor)
    print(f"session start-up: one-test run on a virtual board median {b:.2f} s (boot, bootstrap, fast push "
          f"of a fresh board), plain one-test run {f:.2f} s: the board adds {b - f:.2f} s ({runs} runs)")


def test_phase(root: Path) -> float:
    """First test start to last test end, over all workers' records (then cleared)."""
    spans = []
    for path in root.glob("times-*.json"):
        spans += [(start, start + seconds) for _, seconds, start in json.loads(path.read_text())]
        path.unlink()
    return max(end for _, end in spans) - min(start for start, _ in spans)


def xdist(tmp: Path, n: int) -> None:
    tests = "\n".join(f"def test_work_{i}(remoteio):\n    assert remoteio.call('work', ms=250) == 250\n"
                      for i in range(n))
    root = tmp / "xdist"
    make_project(root, tests, ["wifi_tcp"])
    one = run_pytest(root)
    one_tests = test_phase(root)
    two = run_pytest(root, "-n", "2")
    two_tests = test_phase(root)
    print(f"xdist: {n} device-bound tests (250 ms on the device each), 1 board vs -n 2 on 2 virtual boards:")
    print(f"  tests (first start to last end)   {one_tests:6.2f} s vs {two_tests:6.2f} s: {one_tests / two_tests:.2f}x faster")
    print(f"  whole run (wall, incl. start-up)  {one:6.2f} s vs {two:6.2f} s: {one / two:.2f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tests", type=int, default=100, help="tests per transport for the per-test figure")
    ap.add_argument("--runs", type=int, default=3, help="runs for the start-up figure")
    ap.add_argument("--xdist-tests", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        per_test(Path(tmp), args.tests)
        startup(Path(tmp), args.runs)
        xdist(Path(tmp), args.xdist_tests)


if __name__ == "__main__":
    main()
