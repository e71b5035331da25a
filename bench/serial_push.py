"""Serial transport benchmark: `uota` push over USB serial vs `mpremote fs cp`, same board, same run.

Run: python bench/serial_push.py [--runs N]

At 115200 baud on a virtual board with the uota stack installed: one 50 KB file and
20 files of 2 KB of real Python source (slices of this interpreter's standard library),
and one 50 KB random binary file that doesn't compress. Prints payload bytes/s as a
fraction of the line rate (11,520 B/s), the bytes that crossed the line and the ratio to
mpremote, plus a no-change push (raw REPL entry included).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from uota_core.bootstrap import install_offline
from uota_core.config import load_config, write_secrets
from uota_core.link import LinkError
from uota_core.project import init_project
from uota_core.push import PushResult, push
from uota_core.serial_transport import open_serial_link
from uota_core.session import Session
from uota_core.sim import VirtualBoard

LINE_RATE = 115200 / 10  # bytes/s with 8N1 framing


def payloads() -> dict[str, dict[str, bytes]]:
    # real source is what an app push carries; each 2 KB file from a different module
    modules = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    source = [m.read_bytes() for m in modules if m.stat().st_size > 60 * 1024]
    return {"one 50 KB source file": {"app/big.py": source[0][: 50 * 1024]},
            "20 source files x 2 KB": {f"app/f{i:02d}.py": source[i + 1][4096:6144] for i in range(20)},
            "one 50 KB random binary file": {"app/blob.bin": random.Random(4).randbytes(50 * 1024)}}


def uota_push(project: Path, board: VirtualBoard) -> tuple[float, PushResult]:
    cfg = load_config(project)
    t0 = time.perf_counter()
    with Session(open_serial_link(board.serial_port)) as s:
        s.open()
        result = push(s, cfg, "fast")
    return time.perf_counter() - t0, result


def mpremote_cp(board: VirtualBoard, files: dict[str, Path]) -> float:
    # resume: no soft reset, which would run boot.py (the uota event loop) and never reach the REPL
    args = [sys.executable, "-m", "mpremote", "connect", board.serial_port, "resume"]
    args += ["mkdir", ":bench", "+"]
    for i, local in enumerate(files.values()):
        args += ["fs", "cp", str(local), f":bench/m{i}.py", "+"]
    t0 = time.perf_counter()
    subprocess.run(args[:-1], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t0


def wait_booted(board: VirtualBoard, mark: int) -> None:
    board.expect("app started", timeout=30, since=mark)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for row, (label, files) in enumerate(payloads().items()):
            size = sum(len(d) for d in files.values())
            ours, theirs, nochange, wire = [], [], [], 0
            for run in range(args.runs):
                project = tmpdir / f"p{run}-{row}"
                init_project(project)
                write_secrets(project, {"otaPassword": "", "signingKey": ""})  # an open board, as measured
                with VirtualBoard(tmpdir / f"b{run}-{row}", mdns=False, erase=True, baud=115200) as board:
                    board.power_cut()
                    install_offline(board.write_file, load_config(project))
                    mark = board.console_mark()
                    board.power_on()
                    board.expect("listening on", timeout=30, since=mark)
                    try:  # the project's own files first: not part of the figure
                        uota_push(project, board)
                    except LinkError:  # right after boot the app may still hold the heap: once more
                        uota_push(project, board)
                    wait_booted(board, mark := board.console_mark())
                    local = {}
                    for rel, data in files.items():
                        (project / rel).write_bytes(data)
                        local[rel] = project / rel
                    mark = board.console_mark()
                    secs, result = uota_push(project, board)
                    assert result.bytes == size, (result.bytes, size)
                    ours.append(secs)
                    wire = result.wire_bytes
                    wait_booted(board, mark)
                    for rel, data in files.items():
                        assert board.read_file("/" + rel) == data
                    mark = board.console_mark()
                    nochange.append(uota_push(project, board)[0])
                    wait_booted(board, mark)
                    theirs.append(mpremote_cp(board, local))
            u, m, n = statistics.median(ours), statistics.median(theirs), statistics.median(nochange)
            print(json.dumps({"payload": label, "bytes": size, "wire_bytes": wire, "uota_s": round(u, 2),
                              "uota_line_rate": round(size / u / LINE_RATE, 3),
                              "mpremote_s": round(m, 2), "mpremote_line_rate": round(size / m / LINE_RATE, 3),
                              "speedup": round(m / u, 2), "nochange_s": round(n, 2)}))


if __name__ == "__main__":
    main()
