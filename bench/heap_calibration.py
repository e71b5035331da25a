"""Heap calibration of the virtual board: what the 64-bit unix VM spends on the same objects
as a 32-bit MicroPython, and the smallest heap that imports a 23 KB module.

    python bench/heap_calibration.py [--mp32 DIR]

The 64-bit side is the VM the virtual board runs (`micropython`). The 32-bit side, if given,
is MicroPython's WebAssembly port (npm `@micropython/micropython-webassembly-pyscript`,
wasm32: 4-byte words and 16-byte GC blocks as on an ESP32) installed in DIR; it grows its
heap on demand, so only object sizes are measured there. docs/virtual-board.md ("Heap")
records the figures and the model built on them (uota_core/sim/vm.py HEAP_SCALE_PCT).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_sim_memory import firmware_module  # noqa: E402  (the same module the tests import)

from uota_core.sim.vm import find_micropython  # noqa: E402

# allocation -> bytes it takes, measured as a gc.mem_alloc() difference
OBJECTS = {
    "object()": "object()",
    "bytearray(1000)": "bytearray(1000)",
    "bytes(1000)": "bytes(1000)",
    "str of 1000": "'x' * 1000",
    "list of 100 ints": "[0] * 100",
    "dict of 100 ints": "{i: i for i in range(100)}",
    "10 small tuples": "[(i, i) for i in range(10)]",
}

PROBE = "import gc\n" + "".join(
    f"gc.collect(); a = gc.mem_alloc(); x = {expr}; print({name!r}, gc.mem_alloc() - a); x = None\n"
    for name, expr in OBJECTS.items())

NODE_DRIVER = """
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "fs";
let out = "";
const dec = (d) => typeof d === "string" ? d : Buffer.from(d).toString();
const mp = await loadMicroPython({ heapsize: 1 << 20, stdout: (d) => { out += dec(d); }, linebuffer: false });
mp.runPython(fs.readFileSync(process.argv[2], "utf8"));
process.stdout.write(out);
"""


def sizes(output: str) -> dict[str, int]:
    found = {}
    for line in output.splitlines():
        name, _, n = line.rpartition(" ")
        found[name.strip("'")] = int(n)
    return found


def vm64(script: Path, heap: int = 1 << 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_micropython(), "-X", f"heapsize={heap}", str(script)],
                          capture_output=True, text=True, cwd=script.parent, timeout=60)


def min_import_heap(tmp: Path) -> int:
    (tmp / "drivers.py").write_text(firmware_module(23 * 1024))
    probe = tmp / "imp.py"
    probe.write_text("import drivers\nprint('ok')\n")
    lo, hi = 16 * 1024, 1 << 20
    while hi - lo > 512:
        mid = (lo + hi) // 2
        if "ok" in vm64(probe, mid).stdout:
            hi = mid
        else:
            lo = mid
    return hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp32", type=Path, help="a directory with the wasm32 MicroPython npm package installed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        probe = tmp / "probe.py"
        probe.write_text(PROBE)
        s64 = sizes(vm64(probe).stdout)
        s32: dict[str, int] = {}
        if args.mp32:
            driver = args.mp32 / "mp32.mjs"
            driver.write_text(NODE_DRIVER)
            s32 = sizes(subprocess.run(["node", str(driver), str(probe)], capture_output=True, text=True,
                                       cwd=args.mp32, timeout=60).stdout)
        print(f"{'allocation':<20} {'64-bit VM':>10} {'32-bit':>10} {'ratio':>6}")
        for name in OBJECTS:
            a, b = s64[name], s32.get(name)
            print(f"{name:<20} {a:>10} {b if b else '-':>10} {f'{a / b:.2f}' if b else '-':>6}")
        need = min_import_heap(tmp)
        print(f"smallest -X heapsize importing a {len(firmware_module(23 * 1024))} byte module: "
              f"{need} ({need / 1024:.0f} KB; 72 KB on a 32-bit build per the issue: ratio {need / (72 * 1024):.2f})")


if __name__ == "__main__":
    main()
