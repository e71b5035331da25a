"""Virtual board benchmarks: start-up time, and mpremote's serial copy rate as the peer figure.

Run: python bench/sim_bench.py [--runs N]
Prints each figure and its ratio to the reference (the 115200-baud line rate).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_sim_mpremote import source_like_text  # noqa: E402  (same payload as the test)

from uota_core.sim import VirtualBoard  # noqa: E402

LINE_RATE = 115200 / 10  # bytes/s with 8N1 framing


def start_to_repl(state: Path) -> float:
    t0 = time.perf_counter()
    with VirtualBoard(state, mdns=False) as board:
        board.wait_repl("friendly", timeout=30)
        return time.perf_counter() - t0


def mpremote_cp(board: VirtualBoard, local: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mpremote", "connect", board.serial_port, "fs", "cp", str(local), ":bench.py"],
                   check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        starts = [start_to_repl(tmpdir / "start") for _ in range(args.runs)]
        print(f"board start to REPL ready: median {statistics.median(starts) * 1000:.0f} ms, "
              f"min {min(starts) * 1000:.0f} ms, max {max(starts) * 1000:.0f} ms ({args.runs} runs)")

        payloads = {
            "source-like text": source_like_text(50 * 1024),
            "random binary": random.Random(2).randbytes(50 * 1024),
        }
        for label, data in payloads.items():
            local = tmpdir / "bench.py"
            local.write_bytes(data)
            with VirtualBoard(tmpdir / "cp", mdns=False, erase=True) as board:
                secs = mpremote_cp(board, local)
                board.power_cut()
                assert board.read_file("/bench.py") == data
            rate = len(data) / secs
            print(f"mpremote fs cp 50 KB {label} at 115200: {secs:.1f} s, {rate:.0f} B/s = "
                  f"{rate / LINE_RATE:.1%} of the line rate ({LINE_RATE:.0f} B/s)")


if __name__ == "__main__":
    main()
