"""Power cuts at random instants of a push (transfer, commit, the reboot after): every
boot runs exactly the old or exactly the new set (hash of every file), never a mix, and
the board always boots."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from attack_helpers import flash_hashes, make_project, secured_board
from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.errors import UotaError
from uota_core.manifest import local_manifest
from uota_core.push import push
from uota_core.sim import VirtualBoard

FILES = 12
APP = "import uota\n\ndef run():\n    print('app started')\n    uota.mark_healthy()\n"


def write_set(project: Path, tag: str) -> dict[str, str]:
    """Make the project's app set `tag`; its expected flash hashes, by absolute path."""
    app = project / "app"
    for stale in app.glob("only_*.py"):
        stale.unlink()
    for i in range(FILES):
        (app / f"f{i:02d}.py").write_text(f"TAG = {tag!r}\n" + f"# {tag} padding\n" * 120)
    (app / f"only_{tag}.py").write_text(f"ONLY = {tag!r}\n")
    local = local_manifest(load_config(project), "fast")
    return {"/" + p: f.sha256 for p, f in local.items()}


def app_set(board: VirtualBoard) -> dict[str, str]:
    return {p: h for p, h in flash_hashes(board).items() if p.startswith(("/app/", "/config/ota.json"))}


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("n", [pytest.param(6, id="sample"), pytest.param(200, id="soak", marks=pytest.mark.soak)])
def test_power_cut_at_a_random_instant_of_a_push(tmp_path: Path, n: int) -> None:
    project = make_project(tmp_path / "proj", app=APP)
    write_set(project, "A")
    with secured_board(tmp_path / "board", project, name="powerboard") as board:  # pushes set A
        board.expect(r"app started[\s\S]*boot marked healthy", timeout=30)  # the pushed app's boot
        sets = {"A": write_set(project, "A")}  # now with the board's address in ota.json
        assert app_set(board) == sets["A"]
        sets["B"] = write_set(project, "B")
        # how long a whole push + commit + reboot takes: cuts land anywhere in it
        cfg = load_config(project)
        started = time.monotonic()
        mark = board.console_mark()
        with open_session(cfg) as s:
            push(s, cfg, "fast", version="B")
        committed = time.monotonic() - started
        board.expect("boot marked healthy", timeout=30, since=mark)
        span = time.monotonic() - started
        wait_reachable(board.host, 2018)
        rng = random.Random(2024)
        current, outcomes, cut_at = "B", [], []
        for i in range(n):
            target = "A" if current == "B" else "B"
            write_set(project, target)
            cfg = load_config(project)
            # every other cut at a random byte of the transfer (before the commit, however
            # slow the machine), the rest at a random instant after the commit: both sides of
            # the commit point get hit, whatever share of the span the reboot takes
            early = i % 2 == 0
            delay = rng.random() if early else rng.uniform(committed, span * 1.1)
            cut_at.append(delay)
            left = [0.0]

            def plan(paths: list[str], total: int, fraction: float = delay) -> None:
                left[0] = total * fraction

            def chunk(path: str, nbytes: int) -> None:
                left[0] -= nbytes
                if left[0] <= 0 and board.running:
                    board.power_cut()

            timer = threading.Timer(delay, board.power_cut) if not early else None
            if timer:
                timer.start()
            try:
                with open_session(cfg, timeout=5) as s:
                    push(s, cfg, "fast", version=target, on_plan=plan if early else None,
                         on_chunk=chunk if early else None)
            except (UotaError, OSError):
                pass  # the cut came first: the push fails, as it would on a real board
            if timer:
                timer.join()
            board.power_cut()  # if the push finished first, cut the reboot after it
            mark = board.console_mark()
            board.power_on()
            board.expect("boot marked healthy", timeout=30, since=mark)  # never unbootable
            actual = app_set(board)
            assert "/ota_journal.json" not in flash_hashes(board)  # boot finished any commit
            version = "A" if actual == sets["A"] else "B" if actual == sets["B"] else None
            assert version is not None, f"cut {i} at {f'{delay:.0%} of the bytes' if early else f'{delay:.3f}s'} left a mix: " + str(
                {p: ("A" if h == sets["A"].get(p) else "B" if h == sets["B"].get(p) else "?")
                 for p, h in actual.items()})
            wait_reachable(board.host, 2018)
            with open_session(cfg) as s:
                assert s.version() == version  # the installed record agrees with the files
            outcomes.append(version == target)
            current = version
        print(f"power cuts: {n}, new set after {sum(outcomes)}, old after {n - sum(outcomes)}, "
              f"push+commit+reboot span {span:.2f}s")
        # the cuts must have hit both sides of the commit point, or they proved nothing
        assert any(outcomes) and not all(outcomes), outcomes
