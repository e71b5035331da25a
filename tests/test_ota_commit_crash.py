"""The device's journaled commit and rollback, cut at every single filesystem write.

The device modules (device/lib/uota/commit.py and friends) run here under CPython on a
temp dir: the same code, with POSIX rename as atomic as LittleFS's. A fake power cut
raises at the k-th mutating call; the "next boot" then replays the journal. For every k
the result must be exactly the old set or exactly the new one. This covers every instant
deterministically; tests/test_ota_power_cut.py does the same with real SIGKILLs on a
virtual board.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

DEVICE_LIB = Path(__file__).resolve().parents[1] / "device" / "lib"

OLD = {"app/a.py": "A1", "app/b.py": "B1", "app/gone.py": "G", "settings.py": "M0"}
NEW = {"app/a.py": "A2", "app/b.py": "B1", "app/new.py": "N", "settings.py": "M1"}
OLD_MANAGED = ("app/a.py", "app/b.py", "app/gone.py")  # settings.py was put there over USB
NEW_MANAGED = ("app/a.py", "app/b.py", "app/new.py", "settings.py")


class PowerCut(Exception):
    pass


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _ilistdir(path: str) -> Iterator[tuple[str, int, int]]:
    # like MicroPython's: a missing directory raises OSError at the call, not on iteration
    names = os.listdir(path)
    return iter([(n, 0x4000 if os.path.isdir(os.path.join(path, n)) else 0x8000, 0) for n in names])


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The device's `uota` package, imported fresh, with fs.ROOT on a temp dir."""
    monkeypatch.syspath_prepend(str(DEVICE_LIB))
    monkeypatch.setattr(os, "ilistdir", _ilistdir, raising=False)
    saved = {k: v for k, v in sys.modules.items() if k == "uota" or k.startswith("uota.")}
    for k in saved:
        del sys.modules[k]
    import uota.boot_guard  # noqa: F401
    import uota.commit  # noqa: F401
    import uota.fs

    root = tmp_path / "flash"
    root.mkdir()
    uota.fs.ROOT = str(root)
    yield sys.modules["uota"]
    for k in [k for k in sys.modules if k == "uota" or k.startswith("uota.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def install_old(root: Path) -> None:
    for rel, text in OLD.items():
        write(root, rel, text)
    write(root, "ota_manifest.txt", "".join(f"{p}:{sha(OLD[p])}\n" for p in sorted(OLD_MANAGED)))
    write(root, "ota_version.json", json.dumps({"version": "old", "release": 1}))


def stage_new(root: Path) -> None:
    for rel in ("app/a.py", "app/new.py", "settings.py"):  # app/b.py is unchanged
        write(root, "ota_stage/" + rel, NEW[rel])
    write(root, "ota_pending.txt", "".join(f"{p}:{sha(NEW[p])}\n" for p in sorted(NEW_MANAGED)))


def state(root: Path, old_managed: tuple[str, ...] = OLD_MANAGED) -> str:
    """'old' or 'new' if the flash holds exactly that set, else a description of the mix."""
    version = json.loads((root / "ota_version.json").read_text())["version"]
    manifest = (root / "ota_manifest.txt").read_text()
    present = {rel: (root / rel).read_text() for rel in set(OLD) | set(NEW) if (root / rel).exists()}
    for name, files, managed in (("old", OLD, old_managed), ("new", NEW, NEW_MANAGED)):
        want_manifest = "".join(f"{p}:{sha(files[p])}\n" for p in sorted(managed))
        if version == name and manifest == want_manifest and present == files:
            return name
    return f"mix: version={version} files={present}"


@pytest.fixture
def cut_after(monkeypatch: pytest.MonkeyPatch):
    """cut_after(k): the k-th mutating filesystem call (0-based) raises PowerCut."""
    calls = {"n": 0, "limit": None}
    real_open = builtins.open

    def tick() -> None:
        if calls["limit"] is not None:
            if calls["n"] >= calls["limit"]:
                raise PowerCut()
            calls["n"] += 1

    def wrap(fn):
        def mutating(*args, **kwargs):
            tick()
            return fn(*args, **kwargs)
        return mutating

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            tick()
        return real_open(file, mode, *args, **kwargs)

    for name in ("rename", "remove", "rmdir", "mkdir"):
        monkeypatch.setattr(os, name, wrap(getattr(os, name)))
    monkeypatch.setattr(builtins, "open", guarded_open)

    def arm(k: int | None) -> None:
        calls["n"], calls["limit"] = 0, k

    return arm


def commit_cut_at(device: ModuleType, root: Path, k: int, cut_after: Callable[[int | None], None],
                  prepare: Callable[[Path], None] | None = None) -> bool:
    """The old set installed, the new one staged (and `prepare(root)`), then a commit with
    the power cut after write `k`; True if the commit completed before the cut."""
    for child in root.iterdir():
        _rmtree(child)
    install_old(root)
    stage_new(root)
    if prepare:
        prepare(root)
    cut_after(k)
    try:
        device.commit.begin("new", 2, False)
        return True
    except PowerCut:
        return False
    finally:
        cut_after(None)


def test_a_commit_cut_at_any_write_boots_into_exactly_the_old_or_the_new_set(
        device: ModuleType, tmp_path: Path, cut_after) -> None:
    root = tmp_path / "flash"
    outcomes = []
    k = 0
    while True:
        completed = commit_cut_at(device, root, k, cut_after)
        device.commit.apply()  # the next boot finishes a journaled commit
        result = state(root)
        assert result in ("old", "new"), f"cut at write {k}: {result}"
        assert not (root / "ota_journal.json").exists()
        outcomes.append(result)
        if completed:
            break
        k += 1
    assert outcomes[0] == "old" and outcomes[-1] == "new" and k > 10, outcomes
    # and what a commit kept in /ota_prev/ is exactly what a rollback needs
    assert (root / "ota_prev" / "app" / "gone.py").read_text() == "G"
    assert (root / "ota_prev" / "settings.py").read_text() == "M0"


def test_the_earlier_backup_goes_aside_whole_and_the_next_boot_clears_it(
        device: ModuleType, tmp_path: Path, cut_after) -> None:
    """The commit sets the previous push's /ota_prev/ aside in one rename (/ota_prev_old/)
    instead of emptying it file by file before its `ok`; the boot after it (boot_guard.settle)
    removes it. Cut at any write, the boot lands on exactly the old or the new set, the
    earlier backup was whole under one name or the other, and the boot leaves no
    /ota_prev_old/; after a finished commit /ota_prev/ holds exactly this commit's backup."""
    root = tmp_path / "flash"
    earlier = {"app/a.py": "A0", "app/x.py": "X0"}  # an earlier push's backup

    def earlier_backup(root: Path) -> None:
        for rel, text in earlier.items():
            write(root, "ota_prev/" + rel, text)
        write(root, "ota_prev/.manifest.txt", "".join(f"{p}:{sha(t)}\n" for p, t in sorted(earlier.items())))

    k = 0
    while True:
        completed = commit_cut_at(device, root, k, cut_after, earlier_backup)
        aside = root / "ota_prev_old"
        if aside.exists():  # never half of it
            assert {p: (aside / p).read_text() for p in earlier} == earlier, f"cut at write {k}"
        else:
            assert (root / "ota_prev" / "app" / "x.py").read_text() == "X0", f"cut at write {k}"
        assert device.boot_guard.settle() in ("ok", "committed")  # the next boot
        result = state(root)
        assert result in ("old", "new"), f"cut at write {k}: {result}"
        assert not aside.exists() and not (root / "ota_journal.json").exists()
        if completed:
            break
        k += 1
    assert result == "new" and k > 10
    prev = root / "ota_prev"
    assert (prev / "app" / "gone.py").read_text() == "G" and (prev / "app" / "a.py").read_text() == "A1"
    assert not (prev / "app" / "x.py").exists()  # nothing of the earlier backup is left in it
    assert device.commit.rollback() and state(root, OLD_MANAGED + ("settings.py",)) == "old"


def test_a_rollback_cut_at_any_write_boots_into_exactly_one_set(
        device: ModuleType, tmp_path: Path, cut_after) -> None:
    root = tmp_path / "flash"
    install_old(root)
    stage_new(root)
    device.commit.begin("new", 2, False)
    snapshot = tmp_path / "snapshot"
    _copytree(root, snapshot)
    k = 0
    while True:
        _rmtree(root)
        _copytree(snapshot, root)
        cut_after(k)
        try:
            device.commit.rollback()
            completed = True
        except PowerCut:
            completed = False
        cut_after(None)
        device.commit.apply()
        # the rolled-back manifest also lists settings.py: the update had replaced it, so the
        # saved old manifest recorded its old content to restore it (not delete it)
        result = state(root, OLD_MANAGED + ("settings.py",))
        assert result in ("old", "new"), f"rollback cut at write {k}: {result}"
        if completed:
            assert result == "old"
            # the release counter never goes back, so the old set can't be replayed over
            assert json.loads((root / "ota_version.json").read_text())["release"] == 2
            break
        k += 1
    assert k > 5


def _rmtree(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _rmtree(child)
        path.rmdir()
    elif path.exists():
        path.unlink()


def _copytree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        if child.is_dir():
            _copytree(child, dst / child.name)
        else:
            (dst / child.name).write_bytes(child.read_bytes())
