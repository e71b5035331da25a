"""What sealing RemoteIO costs: call round trips and the print stream of a password-protected
virtual board, measured with whichever uota is on PYTHONPATH, so that RemoteIO before and
after its frames went into records can be compared in one sitting.

Run: PYTHONPATH=<tree> python bench/rio_cost.py [--calls N] [--seconds S] [--before TREE --rounds R]

A virtual board with a password (128 KB heap) whose app has a `flood` handler: while
flooding, its thread prints numbered 60-byte lines as fast as it can. Over WiFi TCP
(unthrottled, its console UART too): the round trip of `ping` (median and p99 of N
sequential calls, and calls/s) and what reaches a listener of a flood of S seconds (lines/s,
KB/s of text, and the share of the printed lines it got: the board drops print frames a
listener can't take). Over USB serial at 115200 baud: the `ping` round trip (N / 5 calls);
print output there crosses the UART between frames, as before, so it is not measured.
One JSON line per run; with --before TREE, R rounds alternate a run with PYTHONPATH=TREE and
one with this tree (the machine's load drifts), then the medians per tree and their ratio.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uota_core
from uota_core.bootstrap import install_offline
from uota_core.config import load_config
from uota_core.connect import wait_reachable
from uota_core.link import LinkError
from uota_core.push import push
from uota_core.remoteio import RemoteIOClient
from uota_core.serial_transport import open_serial_remoteio
from uota_core.session import Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auth_cost import PASSWORD, make_project  # noqa: E402  (the same password-protected project)

APP = """import time
import uota
import uota.remoteio as remoteio

flooding = [False]


@remoteio.on('flood')
def _(on=True):
    flooding[0] = on
    return on


def run():
    print('app started')
    uota.mark_healthy()
    n = 0
    while True:
        if flooding[0]:
            print('flood %08d %s' % (n, 'x' * 45))
            n += 1
        else:
            time.sleep_ms(20)
"""


def start(tmp: Path, baud: int | None) -> tuple[VirtualBoard, Path]:
    board = VirtualBoard(tmp / f"board-{baud}", mdns=False, erase=True, baud=baud)
    board.__enter__()
    project = make_project(tmp / f"proj-{baud}", board.host)
    (project / "app" / "app.py").write_text(APP)
    board.power_cut()
    install_offline(board.write_file, load_config(project))
    mark = board.console_mark()
    board.power_on()
    board.expect("listening on", timeout=30, since=mark)
    mark = board.console_mark()
    for attempt in range(2):  # right after boot the app may still hold the heap: once more
        try:
            with Session(TcpLink(board.host, 2018), PASSWORD) as s:
                s.open()
                push(s, load_config(project), "fast")
            break
        except LinkError:
            if attempt:
                raise
    board.expect("app started", timeout=60, since=mark)
    wait_reachable(board.host, 2019)
    return board, project


def serial_client(board: VirtualBoard) -> RemoteIOClient:
    assert board.serial_port
    if "password" in inspect.signature(open_serial_remoteio).parameters:
        return open_serial_remoteio(board.serial_port, password=PASSWORD)
    return open_serial_remoteio(board.serial_port)  # a tree whose serial RemoteIO has no handshake


def round_trips(rio: RemoteIOClient, calls: int, prefix: str = "") -> dict[str, float]:
    with rio:
        for _ in range(20):  # warm up (the first calls load the seal module, the JSON code)
            rio.call("ping")
        times = []
        t0 = time.perf_counter()
        for _ in range(calls):
            t = time.perf_counter()
            assert rio.call("ping") == "pong"
            times.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
    times.sort()
    return {f"{prefix}rtt_p50_ms": round(statistics.median(times) * 1000, 3),
            f"{prefix}rtt_p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 3),
            f"{prefix}calls_per_s": round(calls / total)}


def print_stream(board: VirtualBoard, seconds: float) -> dict[str, float]:
    with RemoteIOClient(board.host, password=PASSWORD, timeout=10) as listener, \
            RemoteIOClient(board.host, password=PASSWORD, timeout=10) as control:
        assert control.call("flood", on=True) is True
        lines = text = 0
        first = last = None
        t0 = time.perf_counter()
        for chunk in listener.listen(timeout=seconds):
            for line in chunk.splitlines():
                if line.startswith("flood "):
                    n = int(line.split()[1])
                    first = n if first is None else first
                    last = n
                    lines += 1
                    text += len(line) + 1
        elapsed = time.perf_counter() - t0
        control.call("flood", on=False)
    printed = (last - first + 1) if first is not None and last is not None else 0
    return {"print_lines_per_s": round(lines / elapsed), "print_kb_per_s": round(text / elapsed / 1024, 1),
            "delivered_pct": round(100 * lines / printed, 1) if printed else 0.0}


def measure(calls: int, seconds: float) -> dict[str, object]:
    row: dict[str, object] = {"tree": str(Path(uota_core.__file__).resolve().parent.parent)}
    with tempfile.TemporaryDirectory() as tmp:
        board, _ = start(Path(tmp), None)  # TCP; the console UART unthrottled as well
        try:
            row.update(round_trips(RemoteIOClient(board.host, password=PASSWORD, timeout=10), calls))
            row.update(print_stream(board, seconds))
        finally:
            board.__exit__(None, None, None)
        board, _ = start(Path(tmp), 115200)
        try:
            row.update(round_trips(serial_client(board), max(calls // 5, 20), "serial_"))
        finally:
            board.__exit__(None, None, None)
    return row


def child(tree: Path, calls: int, seconds: float) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    out = subprocess.run([sys.executable, __file__, "--calls", str(calls), "--seconds", str(seconds)],
                         env=env, check=True, capture_output=True, text=True, timeout=900).stdout
    row: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--before", type=Path, help="a uota tree to compare with (e.g. main, unpacked)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not args.before:
        print(json.dumps(measure(args.calls, args.seconds)), flush=True)
        return
    this = Path(uota_core.__file__).resolve().parent.parent
    runs: dict[str, list[dict[str, object]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(child(args.before, args.calls, args.seconds))
        runs["after"].append(child(this, args.calls, args.seconds))
    medians = {side: {k: statistics.median(float(r[k]) for r in rows)  # type: ignore[arg-type]
                      for k in rows[0] if k != "tree"} for side, rows in runs.items()}
    for side, row in medians.items():
        print(json.dumps({"median": side, **{k: round(v, 3) for k, v in row.items()}}))
    print(json.dumps({"ratio_after_over_before": {k: round(medians["after"][k] / v, 2)
                                                  for k, v in medians["before"].items() if v}}))


if __name__ == "__main__":
    main()
