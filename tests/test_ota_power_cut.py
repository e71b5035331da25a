"""A power cut at any instant of a commit leaves exactly the old or exactly the new set."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.manifest import local_manifest
from uota_core.push import push
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(300)

FILES = 30


def write_set(project: Path, tag: str) -> None:
    app = project / "app"
    for stale in app.glob("only_*.py"):
        stale.unlink()
    for i in range(FILES):
        (app / f"f{i:02d}.py").write_text(f"TAG = {tag!r}\n" + "# padding\n" * 150)
    (app / f"only_{tag}.py").write_text(f"ONLY = {tag!r}\n")


def expected(project: Path) -> dict[str, str]:
    return {p: f.sha256 for p, f in local_manifest(load_config(project), "fast").items()}


def device_state(project: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """(version, installed manifest, sha256 of every file's actual content)."""
    with open_session(load_config(project)) as s:
        inst = s.installed()
        actual = {p: hashlib.sha256(s.get(p)).hexdigest() for p in inst.files}
        top = s.ls("/")
    assert "ota_journal.json" not in top  # a boot finishes any interrupted commit first
    return inst.version, inst.files, actual


def test_power_cut_during_commit(ota_board: VirtualBoard, ota_project: Path) -> None:
    # an app that returns from run(): a second live VM thread makes the virtual board's
    # flash and sockets flaky across power cycles (reported), and this test is about commits
    (ota_project / "app" / "app.py").write_text("def run():\n    print('app started')\n")
    write_set(ota_project, "A")
    push_all = lambda version: push(*_session(ota_project), "fast", version=version)  # noqa: E731
    push_all("A")
    sets = {"A": expected(ota_project)}
    write_set(ota_project, "B")
    sets["B"] = expected(ota_project)
    assert sets["A"] != sets["B"]

    outcomes = []
    delays = [0.0, 0.001, 0.003, 0.006, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.12]
    current = "A"
    for n, delay in enumerate(delays):
        target = "B" if current == "A" else "A"
        write_set(ota_project, target)
        cfg = load_config(ota_project)
        local = local_manifest(cfg, "fast")
        with open_session(cfg) as s:
            s.start_ota()
            s.send_manifest({p: f.sha256 for p, f in local.items()}, target)
            for path in s.need():
                f = local[path]
                s.send_file(path, f.size, f.sha256, f.open_chunks())
            s.link.write(b"end_ota\n")
            time.sleep(delay)  # the injected fault: cut power this long into the commit
            ota_board.power_cut()
        mark = ota_board.console_mark()
        ota_board.power_on()
        # let the app thread finish its imports before we use the flash: the virtual board's
        # flash block device isn't safe against two VM threads at once (reported)
        ota_board.expect("app started", timeout=30, since=mark)
        wait_reachable(ota_board.host, 2018, timeout=30)
        try:
            version, files, actual = device_state(ota_project)
        except Exception:
            print("running:", ota_board.running)
            raise
        assert version in ("A", "B"), version
        assert files == sets[version], f"cut after {delay}s: manifest is a mix"
        if actual != files:
            bad = {p: ("A" if actual[p] == sets["A"].get(p) else "B" if actual[p] == sets["B"].get(p) else "?")
                   for p in files if actual[p] != files[p]}
            print("MIX", n, delay, "version", version, "target", target, bad)
            ota_board.power_cut()
            print("FLASH", sorted(ota_board.listdir("/")), ota_board.listdir("/ota_prev") if "ota_prev" in ota_board.listdir("/") else None)
        assert actual == files, f"cut after {delay}s: file contents are a mix"
        outcomes.append(version == target)
        current = version
    # the sweep must have hit both sides of the commit point, or it proved nothing
    assert any(outcomes) and not all(outcomes), outcomes


def _session(project: Path):
    cfg = load_config(project)
    return open_session(cfg).__enter__(), cfg
