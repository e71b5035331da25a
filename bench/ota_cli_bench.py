"""`uota fast` over WiFi and the CLI's start-up, as a user meets them (run through
bench/ota_bench.py: `--cli-only`, `--breakdown`; docs/benchmarks.md has the figures).

- `uota fast --no-wait` over TCP as a subprocess of the real `uota` entry point, command start
  to exit: 20 files x 2 KB, one 50 KB file, no change
- `uota --version` / `uota --help` wall time, and the import time `python -X importtime`
  reports for `uota_core.cli`
- the phase breakdown of a 20 x 2 KB push and of a 50 KB one, in-process (after start-up)
- opening a session to a password-protected board: a project's first command (PBKDF2 on
  the host) against a later one (the derived key kept in .uota/keys.json)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ota_bench import make_project, provision, source_file, timed_push  # noqa: E402
from uota_core.config import load_config  # noqa: E402
from uota_core.connect import open_session, wait_reachable  # noqa: E402
from uota_core.push import push  # noqa: E402
from uota_core.sim import VirtualBoard  # noqa: E402


def valid_source(i: int, size: int) -> str:
    """`source_file` cut before a `def`, so it compiles (a push compiles every .py first)."""
    text = source_file(i, size + 200)
    return text[:text.rindex("\ndef ", 0, size) + 1]


def uota_command() -> list[str]:
    """The real `uota` entry point of this interpreter's environment (the console script),
    run with this tree first on the path so it measures this tree's code."""
    script = Path(sys.executable).parent / "uota"
    return [str(script)] if script.exists() else [sys.executable, "-m", "uota_core.cli"]


def uota_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def run_uota(args: list[str], cwd: Path | None = None) -> float:
    """Wall time of one `uota` command, process start to exit; fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.run(uota_command() + args, cwd=cwd, env=uota_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"uota {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed


def cli_import_ms(args: list[str]) -> float:
    """Cumulative import time of `uota_core.cli` (and all it pulls in) for `uota ARGS`, in ms."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "uota_core.cli"] + args, env=uota_env(),
                          capture_output=True, text=True, timeout=60)
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "uota_core.cli":
            return int(parts[1]) / 1000
    raise SystemExit(f"no uota_core.cli line in the importtime output of uota {' '.join(args)}")


def bench_cli_startup(runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for args in (["--version"], ["--help"]):
        key = " ".join(args)
        out[f"wall {key}"] = [run_uota(args) for _ in range(runs)]
        out[f"imports {key}"] = [cli_import_ms(args) for _ in range(runs)]
    return out


def bench_wifi_cli_push(tmp: Path, runs: int) -> dict[str, list[float]]:
    """`uota fast --no-wait` over TCP, as a user runs it; each run changes every file so all
    of them are sent, and the board is reachable again (after its commit reset) before the next."""
    out: dict[str, list[float]] = {"20 x 2 KB": [], "50 KB": [], "no change": []}
    with VirtualBoard(tmp / "cliboard", name="cli", baud=None, mdns=False) as board:
        board.power_cut()
        project = make_project(tmp / "cliproj", board.host)
        provision(board, project, mpy=True)  # the stack as `uota bootstrap` installs it by default
        board.power_on()
        wait_reachable(board.host, 2018)
        run_uota(["fast", "--no-wait"], cwd=project)  # the project's own app/ and config/ first
        for r in range(runs):
            wait_reachable(board.host, 2018)
            for i in range(20):
                (project / "app" / f"mod{i:02d}.py").write_text(f"# run {r}\n" + valid_source(i, 2048))
            out["20 x 2 KB"].append(run_uota(["fast", "--no-wait"], cwd=project))
            wait_reachable(board.host, 2018)
            out["no change"].append(run_uota(["fast", "--no-wait"], cwd=project))
            for i in range(20):
                (project / "app" / f"mod{i:02d}.py").unlink()
            (project / "app" / "big.py").write_text(f"# run {r}\n" + valid_source(r, 50 * 1024))
            wait_reachable(board.host, 2018)
            out["50 KB"].append(run_uota(["fast", "--no-wait"], cwd=project))
            (project / "app" / "big.py").unlink()
    return out


def bench_password_no_change(tmp: Path, runs: int) -> dict[str, list[float]]:
    """Opening an authenticated session to a board with a password (the default 200,000
    PBKDF2 iterations), as every command does: without the kept key (a project's first
    command) and with it. In-process, with the in-memory memo cleared, so each figure is
    what a new `uota` process pays."""
    from uota_core.auth import KEY_CACHE, derive_key
    from uota_core.config import write_secrets

    out: dict[str, list[float]] = {"key derived": [], "key kept": []}
    with VirtualBoard(tmp / "pwboard", name="pw", baud=None, mdns=False) as board:
        board.power_cut()
        project = make_project(tmp / "pwproj", board.host)
        write_secrets(project, {"otaPassword": "bench-Password-kept-0"})
        provision(board, project, mpy=True)
        board.power_on()
        wait_reachable(board.host, 2018)
        cfg = load_config(project)
        for _ in range(runs):
            for label in out:
                if label == "key derived":
                    (project / KEY_CACHE).unlink(missing_ok=True)
                derive_key.cache_clear()
                t0 = time.perf_counter()
                open_session(cfg).close()
                out[label].append(time.perf_counter() - t0)
    return out


PHASES = ("hello", "scan", "compile", "installed", "start_ota", "manifest", "need", "files", "commit")


def bench_breakdown(tmp: Path, runs: int, big: bool = False) -> dict[str, list[float]]:
    """Phase times (ms) of a 20 x 2 KB push (`big`: one 50 KB file) in this process: each
    engine step wrapped with a clock. "files" is from the `need` reply to the `end_ota` request (the files and their
    replies), "commit" the `end_ota` wait (the board's journalled commit)."""
    import functools

    import uota_core.push as push_mod
    from uota_core.session import Session

    stamps: list[tuple[str, float, float]] = []

    def timed(owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stamps.append((label, t, time.perf_counter()))

        setattr(owner, attr, wrapper)

    for attr, label in (("open", "hello"), ("installed", "installed"), ("start_ota", "start_ota"),
                        ("send_manifest", "manifest"), ("need", "need"), ("end_ota", "commit")):
        timed(Session, attr, label)
    timed(push_mod, "scan_project", "scan")
    timed(push_mod, "plan_push", "compile")
    out: dict[str, list[float]] = {k: [] for k in PHASES + ("total",)}
    tmp.mkdir(parents=True, exist_ok=True)
    with VirtualBoard(tmp / "phaseboard", name="phase", baud=None, mdns=False) as board:
        board.power_cut()
        project = make_project(tmp / "phaseproj", board.host)
        provision(board, project, mpy=True)
        board.power_on()
        wait_reachable(board.host, 2018)
        timed_push(project, "0")
        for r in range(runs):
            wait_reachable(board.host, 2018)
            if big:
                (project / "app" / "big.py").write_text(f"# run {r}\n" + valid_source(r, 50 * 1024))
            else:
                for i in range(20):
                    (project / "app" / f"mod{i:02d}.py").write_text(f"# run {r}\n" + valid_source(i, 2048))
            cfg = load_config(project)
            stamps.clear()
            t0 = time.perf_counter()
            with open_session(cfg) as s:
                push(s, cfg, "fast", version=str(r + 1))
            out["total"].append((time.perf_counter() - t0) * 1000)
            got = {label: (a, b) for label, a, b in stamps}
            for label in PHASES:
                if label == "files":
                    out[label].append((got["commit"][0] - got["need"][1]) * 1000)
                else:
                    out[label].append((got[label][1] - got[label][0]) * 1000)
    return out


def report_cli(runs: int, tmp: Path) -> None:
    for key, values in bench_cli_startup(runs).items():
        unit, scale = ("ms", 1000) if key.startswith("wall") else ("ms", 1)
        what = f"uota {key[5:]} command start to exit" if key.startswith("wall") else \
            f"imports of uota_core.cli for uota {key[8:]} (-X importtime)"
        print(f"{what}: median {statistics.median(values) * scale:.0f} {unit} ({runs} runs)")
    for label, secs in bench_password_no_change(tmp, runs).items():
        print(f"session open to a board with a password, {label}: median "
              f"{statistics.median(secs) * 1000:.0f} ms, min {min(secs) * 1000:.0f} ms ({runs} runs)")
    for label, secs in bench_wifi_cli_push(tmp, runs).items():
        print(f"uota fast --no-wait over TCP, {label}: median {statistics.median(secs):.3f} s, "
              f"min {min(secs):.3f} s ({runs} runs, command start to exit)")
