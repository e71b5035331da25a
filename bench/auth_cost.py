"""What authentication costs a push: the same pushes to a password-protected virtual board,
run against whichever uota is on PYTHONPATH, so that the code before and after a change to
the handshake or the record layer can be compared in one sitting.

Run: PYTHONPATH=<tree> python bench/auth_cost.py [--runs N] [--transports tcp,serial]

Per transport (WiFi TCP unthrottled; USB serial at 115200 baud) and payload (20 source
files x 2 KB; one 50 KB source file, both from bench/serial_push.py): the median time of a
whole push (connect, handshake, push, commit; the reset after it is not waited for), the
bytes that crossed the link, and the median time to open an authenticated session
(connect + hello + proofs + one `ping`; over serial also the raw REPL entry). Bytes on the
link are the transport's own counters (records included; over serial, the frames' payload). Prints one JSON line per row, tagged with the
uota tree it ran; first, for a tree with the record layer, what sealing and opening a
1 KB record costs the device code in the MicroPython VM.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uota_core
from uota_core.bootstrap import install_offline
from uota_core.config import load_config
from uota_core.connect import wait_reachable
from uota_core.errors import UotaError
from uota_core.link import LinkError
from uota_core.project import init_project
from uota_core.push import push
from uota_core.serial_transport import open_serial_link
from uota_core.session import Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serial_push import payloads  # noqa: E402

PASSWORD = "bench-password-1"
ROWS = ("20 source files x 2 KB", "one 50 KB source file")


def make_project(root: Path, host: str) -> Path:
    init_project(root)
    cfg_path = root / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(hostname=host, healthyAfter=1)
    cfg_path.write_text(json.dumps(cfg))
    (root / "config" / ".ota.secrets.json").write_text(json.dumps({"otaPassword": PASSWORD, "signingKey": ""}))
    return root


RETRIES = [0]  # session starts retried (see connect)


def connect(board: VirtualBoard, transport: str) -> Session:
    # A serial session started right as the board boots sometimes reads nothing
    # (docs/reliability.md, "Found and left open"): such a start is retried and counted.
    for attempt in range(3):
        try:
            link = TcpLink(board.host, 2018) if transport == "tcp" else open_serial_link(board.serial_port)
            s = Session(link, PASSWORD)
            s.open()
            return s
        except UotaError:
            if attempt == 2 or transport == "tcp":
                raise
            RETRIES[0] += 1
    raise AssertionError("unreachable")


def variant(files: dict[str, bytes], run: int) -> dict[str, bytes]:
    """The payload with each file changed (same size), so every run sends all of it."""
    tag = f"# run {run:04d}\n".encode()
    return {rel: tag + data[len(tag):] for rel, data in files.items()}


def settle(board: VirtualBoard, transport: str, mark: int) -> None:
    board.expect("app started", timeout=60, since=mark)
    if transport == "tcp":
        wait_reachable(board.host, 2018)


def bench(tmp: Path, transport: str, label: str, files: dict[str, bytes], runs: int) -> dict[str, object]:
    size = sum(len(d) for d in files.values())
    baud = None if transport == "tcp" else 115200
    with VirtualBoard(tmp / f"b-{transport}-{len(files)}", mdns=False, erase=True, baud=baud) as board:
        project = make_project(tmp / f"p-{transport}-{len(files)}", board.host)
        (project / "app" / "app.py").write_text("import uota\n\ndef run():\n    print('app started')\n"
                                                "    uota.mark_healthy()\n")
        board.power_cut()
        install_offline(board.write_file, load_config(project))
        mark = board.console_mark()
        board.power_on()
        board.expect("listening on", timeout=30, since=mark)
        cfg = load_config(project)
        mark = board.console_mark()
        try:  # the project's own files first: not part of the figure
            with connect(board, transport) as s:
                push(s, cfg, "fast")
        except LinkError:  # right after boot the app may still hold the heap: once more
            with connect(board, transport) as s:
                push(s, cfg, "fast")
        settle(board, transport, mark)
        pushes, opens, wire = [], [], 0
        for run in range(runs):
            for rel, data in variant(files, run).items():
                (project / rel).write_bytes(data)
            mark = board.console_mark()
            t0 = time.perf_counter()
            with connect(board, transport) as s:
                result = push(s, cfg, "fast", version=f"r{run}")
                wire = s.link.bytes_sent + s.link.bytes_received  # type: ignore[attr-defined]
            pushes.append(time.perf_counter() - t0)
            assert result.bytes == size, (result.bytes, size)
            settle(board, transport, mark)
            mark = board.console_mark()
            t0 = time.perf_counter()
            with connect(board, transport) as s:
                assert s.ping()
            opens.append(time.perf_counter() - t0)
            if transport == "serial":
                settle(board, transport, mark)  # a serial session ends with a soft reset
    return {"tree": str(Path(uota_core.__file__).resolve().parent.parent), "transport": transport,
            "payload": label, "bytes": size, "wire_bytes": wire, "push_s": round(statistics.median(pushes), 3),
            "open_s": round(statistics.median(opens), 3), "runs": runs, "retried_starts": RETRIES[0]}


# the board's side of the record layer alone, in the MicroPython VM: seal and open 1 KB records
RECORD_PROBE = """
import sys, time
sys.path.insert(0, sys.argv[-1])
from uota import seal

class Pipe:
    def __init__(self):
        self.buf = bytearray()
        self.at = 0
    def write(self, data):
        self.buf += data
    def readinto(self, mv):
        n = min(len(mv), len(self.buf) - self.at)
        mv[:n] = self.buf[self.at:self.at + n]
        self.at += n
        return n

keys = seal.keys(bytes(32), "bench", "00" * 16, "11" * 16)
pipe = Pipe()
tx = seal.Sealed(pipe, keys)
rx = seal.Sealed(pipe, keys[2:] + keys[:2])
data = bytes(range(256)) * 4
buf = bytearray(1024)
mv = memoryview(buf)
sealing = opening = 0
n = 0
for batch in range(20):  # 20 records a batch: the pipe stays small in a 128 KB heap
    pipe.buf, pipe.at = bytearray(), 0
    t0 = time.ticks_us()
    for _ in range(20):
        tx.write(data)
    t1 = time.ticks_us()
    got = 0
    while got < 20 * 1024:
        got += rx.readinto(mv)
    t2 = time.ticks_us()
    sealing += time.ticks_diff(t1, t0)
    opening += time.ticks_diff(t2, t1)
    n += 20
print(sealing / n, opening / n)
"""


def record_cost(tree: Path) -> dict[str, object] | None:
    """Microseconds per 1 KB record sealed and opened by the device code in the unix VM
    (None for a tree without a record layer)."""
    import shutil
    import subprocess

    lib = tree / "device" / "lib"
    if not (lib / "uota" / "seal.py").exists():
        return None
    micropython = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    out = subprocess.run([micropython, "-X", "heapsize=128K", "-c", RECORD_PROBE, str(lib)], check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    return {"tree": str(tree), "vm_us_per_1k_record_sealed": round(float(out[0]), 1),
            "vm_us_per_1k_record_opened": round(float(out[1]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transports", default="tcp,serial")
    args = ap.parse_args()
    all_payloads = payloads()
    cost = record_cost(Path(uota_core.__file__).resolve().parent.parent)
    if cost:
        print(json.dumps(cost), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for transport in args.transports.split(","):
            for label in ROWS:
                print(json.dumps(bench(Path(tmp), transport, label, all_payloads[label], args.runs)), flush=True)


if __name__ == "__main__":
    main()
