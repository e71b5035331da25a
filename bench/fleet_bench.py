"""Fleets: `uota fast --all` to 1, 4 and 8 virtual boards, and `uota list` against its
--timeout (docs/benchmarks.md "Fleets").

- `uota fast --all --no-wait` (20 files x 2 KB changed on every board each run) as a
  subprocess of the real `uota` entry point: wall time for 1, 4 and 8 boards, and its ratio to
  one board (target: 8 boards <= 2.5x one board on 2 cores). The command's time includes
  its discovery (--timeout); the push phase alone (`fleet.push.push_all`, in-process, the
  same changes) is measured too.
- the CPU seconds of the push phase: this process (push threads and the boards'
  supervisors) per fleet size, and one board's VM for its push
- `uota list --transport wifi_tcp` with the 8 boards up: wall time against --timeout 1 and 3
  (mDNS listens the whole window; the subnet probe runs meanwhile), and whether it found all 8.

Boards are unthrottled, with the stack installed as .mpy (as `uota bootstrap` does) and no
password, as in the other push figures. Only loopback is scanned (127.0.0.0/24).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ota_bench import make_project  # noqa: E402
from ota_cli_bench import uota_command, uota_env, valid_source  # noqa: E402
from uota_core.bootstrap import install_offline  # noqa: E402
from uota_core.config import load_config  # noqa: E402
from uota_core.connect import wait_reachable  # noqa: E402
from uota_core.sim import VirtualBoard  # noqa: E402

SIZES = (1, 4, 8)
SUBNET = "127.0.0.0/24"


def env() -> dict[str, str]:
    return {**uota_env(), "UOTA_MDNS_INTERFACES": "127.0.0.1", "UOTA_SCAN_LOOPBACK_ONLY": "1"}


def change_files(project: Path) -> None:
    """20 x 2 KB, all different from what the boards hold."""
    token = secrets.token_hex(4)
    for i in range(20):
        (project / "app" / f"mod{i}.py").write_text(f"TOKEN = {token!r}\n" + valid_source(i, 2048 - 20))


def settle(boards: list[VirtualBoard], marks: list[int]) -> None:
    """After a push: every board rebooted into the new app and serves its OTA port again
    (the next push must not race the app thread's imports)."""
    for board, mark in zip(boards, marks):
        board.expect("app started", timeout=60, since=mark)
        wait_reachable(board.host, 2018, timeout=30)


def pattern(prefix: str, n: int) -> str:
    return f"{prefix}-[0-{n - 1}]"


def uota(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(uota_command() + args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)
    return time.perf_counter() - t0, proc


def bench_cli_all(boards: list[VirtualBoard], project: Path, prefix: str, runs: int, timeout: float) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {n: [] for n in SIZES}
    for _ in range(runs):
        for n in SIZES:  # interleaved: a load swing hits every size alike
            change_files(project)
            marks = [b.console_mark() for b in boards[:n]]
            secs, proc = uota(["fast", "--all", "--no-wait", "--match", pattern(prefix, n), "--subnet", SUBNET,
                               "--timeout", str(timeout), "--json"], project)
            rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or len(rows) != n or not all(r["committed"] for r in rows):
                raise SystemExit(f"uota fast --all to {n} boards failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
            out[n].append(secs)
            settle(boards[:n], marks)
    return out


def host_cpu() -> float:
    """CPU seconds of this process: the push threads and the boards' supervisors."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def vm_cpu(board: VirtualBoard) -> float:
    """CPU seconds the board's running VM has used (0 if it is gone)."""
    vm = board._vm  # a benchmark may look inside: the supervisor keeps no public pid
    try:
        fields = Path(f"/proc/{vm.pid}/stat").read_text().rsplit(")", 1)[1].split() if vm else []
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def bench_push_phase(boards: list[VirtualBoard], project: Path, runs: int,
                     cpu: dict[str, list[float]]) -> dict[int, list[float]]:
    """Wall time of push_all per fleet size; `cpu` gets the host's CPU seconds per size and
    the one board's VM CPU seconds (its push ends at the commit, before the VM resets)."""
    from uota_core.fleet.discover import Board
    from uota_core.fleet.push import Target, push_all

    out: dict[int, list[float]] = {n: [] for n in SIZES}
    for _ in range(runs):
        for n in SIZES:
            change_files(project)
            cfg = load_config(project)
            targets = [Target(Board(id=b.uid, name=b.name, addresses=[b.host]), "wifi_tcp", b.host, None)
                       for b in boards[:n]]
            marks = [b.console_mark() for b in boards[:n]]
            c0, v0, t0 = host_cpu(), vm_cpu(boards[0]), time.perf_counter()
            done = push_all(cfg, targets, "fast", jobs=8, wait=False)
            out[n].append(time.perf_counter() - t0)
            cpu.setdefault(f"host {n}", []).append(host_cpu() - c0)
            if n == 1:
                cpu.setdefault("vm 1", []).append(vm_cpu(boards[0]) - v0)
            bad = [d.error for d in done if d.exit_code or not d.result or not d.result.committed]
            if bad:
                raise SystemExit(f"push_all to {n} boards failed: {bad}")
            settle(boards[:n], marks)
    return out


def bench_list(boards: list[VirtualBoard], project: Path, prefix: str, runs: int) -> dict[float, list[tuple[float, int]]]:
    out: dict[float, list[tuple[float, int]]] = {}
    ids = {b.uid for b in boards}
    for timeout in (1.0, 3.0):
        out[timeout] = []
        for _ in range(runs):
            secs, proc = uota(["list", "--transport", "wifi_tcp", "--subnet", SUBNET, "--timeout", str(timeout),
                               "--json", "--match", f"{prefix}-*"], project)
            found = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else []
            out[timeout].append((secs, len({r["id"] for r in found} & ids)))
            if out[timeout][-1][1] < len(ids) or proc.stderr.strip():
                print(f"  list --timeout {timeout:g} (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1.0, help="--timeout of `uota fast --all` (discovery)")
    args = ap.parse_args()
    prefix = f"fb-{secrets.token_hex(3)}"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"cores {os.cpu_count()}, load average at start {load:.1f}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        project = make_project(tmp / "proj", "127.0.0.1")
        boards = [VirtualBoard(tmp / f"b{i}", name=f"{prefix}-{i}", baud=None) for i in range(max(SIZES))]
        try:
            for board in boards:
                board.start(power_on=False)
                install_offline(board.write_file, load_config(project))
                board.power_on()
            for board in boards:
                wait_reachable(board.host, 2018, timeout=60)
                board.mdns_registered.wait(30)
            change_files(project)  # the first push also carries the app: not measured
            _, proc = uota(["fast", "--all", "--no-wait", "--match", f"{prefix}-*", "--subnet", SUBNET,
                            "--timeout", "2"], project)
            if proc.returncode != 0:
                raise SystemExit(f"first push failed: {proc.stdout}{proc.stderr}")
            settle(boards, [0] * len(boards))

            cli = bench_cli_all(boards, project, prefix, args.runs, args.timeout)
            cpu: dict[str, list[float]] = {}
            phase = bench_push_phase(boards, project, args.runs, cpu)
            one_cli, one_phase = statistics.median(cli[1]), statistics.median(phase[1])
            for n in SIZES:
                c, p = statistics.median(cli[n]), statistics.median(phase[n])
                print(f"fast --all, {n} board{'s' if n > 1 else ' '}: command {c:.2f} s (min {min(cli[n]):.2f}, "
                      f"x{c / one_cli:.2f} one board); push phase {p:.2f} s (min {min(phase[n]):.2f}, "
                      f"x{p / one_phase:.2f} one board)  [--timeout {args.timeout:g}, {args.runs} runs]")
            print("push phase CPU seconds (median): " + ", ".join(
                f"{k} board{'s' if not k.endswith(' 1') else ''} {statistics.median(v):.2f}" for k, v in cpu.items()))
            for timeout, results in bench_list(boards, project, prefix, args.runs).items():
                secs = [s for s, _ in results]
                print(f"list --timeout {timeout:g}, 8 boards up: median {statistics.median(secs):.2f} s "
                      f"(min {min(secs):.2f}, max {max(secs):.2f}), found {[n for _, n in results]} of 8")
        finally:
            for board in boards:
                board.stop()
    try:
        print(f"load average at end {os.getloadavg()[0]:.1f}")
    except OSError:
        pass


if __name__ == "__main__":
    main()
