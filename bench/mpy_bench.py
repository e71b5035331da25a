"""A module as .py vs as .mpy (mpyFiles) on a virtual board: flash used, import time and
heap kept, plus what the compile step costs a push on the host.

Run: python bench/mpy_bench.py [--imports N]

The module is a real one: the device's RemoteIO server (device/lib/uota/remoteio.py, 11 KB),
pushed as app/bench_mod.py. The board imports it N times (dropping it from sys.modules in
between) from a RemoteIO handler and reports each import's microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uota_core.bootstrap import install_offline  # noqa: E402
from uota_core.config import load_config, write_secrets  # noqa: E402
from uota_core.connect import open_session, wait_reachable  # noqa: E402
from uota_core.manifest import scan_project  # noqa: E402
from uota_core.mpy import MpyCache, plan_push  # noqa: E402
from uota_core.project import init_project  # noqa: E402
from uota_core.push import push  # noqa: E402
from uota_core.remoteio import RemoteIOClient  # noqa: E402
from uota_core.resources import device_dir  # noqa: E402
from uota_core.sim import VirtualBoard  # noqa: E402

MODULE = "app/bench_mod.py"
BENCH_APP = '''\
import gc, os, sys, time
import uota
import uota.remoteio as remoteio


@remoteio.on("imports")
def _(name, n):
    times, kept = [], []
    parent, _, leaf = name.rpartition(".")
    for _ in range(n):
        sys.modules.pop(name, None)
        if parent and hasattr(sys.modules[parent], leaf):
            delattr(sys.modules[parent], leaf)  # else the old module stays alive through it
        gc.collect()
        free = gc.mem_free()
        t0 = time.ticks_us()
        __import__(name)
        times.append(time.ticks_diff(time.ticks_us(), t0))
        gc.collect()
        kept.append(free - gc.mem_free())
    return [times, kept]


@remoteio.on("flash")
def _(path):
    # the blocks the file takes: LittleFS's own count for a copy written beside it
    with open(path, "rb") as f:
        data = f.read()
    before = os.statvfs("/")
    with open("/bench_copy", "wb") as f:
        f.write(data)
    after = os.statvfs("/")
    os.remove("/bench_copy")
    return [len(data), before[0], before[3] - after[3]]  # bytes, block size, blocks used


def run():
    print("app started")
    uota.mark_healthy()
    while True:
        time.sleep(1)
'''


def set_mpy_files(project: Path, globs: list[str]) -> None:
    path = project / "config" / "ota.json"
    cfg = json.loads(path.read_text())
    cfg["mpyFiles"] = globs
    path.write_text(json.dumps(cfg, indent=2))


def push_and_wait(board: VirtualBoard, project: Path, version: str) -> list[str]:
    cfg = load_config(project)
    mark = board.console_mark()
    with open_session(cfg) as s:
        result = push(s, cfg, "fast", version=version)
    board.expect("app started", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    return result.sent


def measure(board: VirtualBoard, path: str, imports: int) -> dict[str, float]:
    with RemoteIOClient(board.host, timeout=60) as rio:
        size, block, used = rio.call("flash", path=path)
        times, kept = rio.call("imports", name="app.bench_mod", n=imports)
    return {"bytes": size, "block": block, "blocks": used, "import_us": statistics.median(times),
            "import_us_min": min(times), "import_us_max": max(times), "heap_kept": statistics.median(kept)}


def host_compile_cost(project: Path) -> tuple[float, float, int]:
    """Seconds the compile step adds to a push, cold (empty cache) and warm (all cached),
    and how many .py files it compiles."""
    cfg = load_config(project)
    files = scan_project(cfg, "fast").files
    cold = warm = 0.0
    for cache_state in ("cold", "warm"):
        if cache_state == "cold":
            for entry in MpyCache.for_project(project).root.glob("*.mpy"):
                entry.unlink()
        t0 = time.perf_counter()
        plan_push(project, files, cfg["mpyFiles"], 6)
        dt = time.perf_counter() - t0
        cold, warm = (dt, warm) if cache_state == "cold" else (cold, dt)
    return cold, warm, sum(p.endswith(".py") for p in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imports", type=int, default=30, help="imports per variant (median reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with VirtualBoard(tmp / "board", name="mpybench", baud=None, mdns=False) as board:
            board.power_cut()
            project = tmp / "proj"
            init_project(project)
            write_secrets(project, {"otaPassword": "", "signingKey": ""})
            cfg_path = project / "config" / "ota.json"
            cfg = json.loads(cfg_path.read_text())
            cfg.update(hostname=board.host, healthyAfter=1, mpyFiles=[])
            cfg_path.write_text(json.dumps(cfg, indent=2))
            (project / "app" / "app.py").write_text(BENCH_APP)
            (project / MODULE).write_bytes((device_dir() / "lib" / "uota" / "remoteio.py").read_bytes())
            install_offline(board.write_file, load_config(project))
            board.power_on()
            wait_reachable(board.host, 2018)

            push_and_wait(board, project, "py")
            as_py = measure(board, "/" + MODULE, args.imports)
            set_mpy_files(project, [MODULE])
            sent = push_and_wait(board, project, "mpy")
            assert "app/bench_mod.mpy" in sent, sent
            as_mpy = measure(board, "/app/bench_mod.mpy", args.imports)
            cold, warm, sources = host_compile_cost(project)

    print(f"module: device/lib/uota/remoteio.py as {MODULE}, {args.imports} imports each, "
          f"virtual board (MicroPython unix VM, LittleFS {as_py['block']}-byte blocks)")
    rows = [
        ("file bytes", f"{as_py['bytes']:,}", f"{as_mpy['bytes']:,}", as_mpy["bytes"] / as_py["bytes"]),
        ("flash blocks", f"{as_py['blocks']}", f"{as_mpy['blocks']}", as_mpy["blocks"] / as_py["blocks"]),
        ("import µs, median", f"{as_py['import_us']:,.0f}", f"{as_mpy['import_us']:,.0f}",
         as_mpy["import_us"] / as_py["import_us"]),
        ("import µs, min-max", f"{as_py['import_us_min']:,}-{as_py['import_us_max']:,}",
         f"{as_mpy['import_us_min']:,}-{as_mpy['import_us_max']:,}", None),
        ("heap kept, bytes", f"{as_py['heap_kept']:,.0f}", f"{as_mpy['heap_kept']:,.0f}",
         as_mpy["heap_kept"] / as_py["heap_kept"] if as_py["heap_kept"] else None),
    ]
    print(f"{'':20}{'.py':>14}{'.mpy':>14}{'.mpy/.py':>10}")
    for name, a, b, ratio in rows:
        print(f"{name:20}{a:>14}{b:>14}{'' if ratio is None else f'{ratio:.0%}':>10}")
    print(f"host compile step of the push ({sources} .py files): cold cache {cold * 1000:.1f} ms, "
          f"warm {warm * 1000:.1f} ms")


if __name__ == "__main__":
    main()
