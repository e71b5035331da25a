"""Commit and rollback never move a directory holding a protected path or a file no OTA
installed (a directory moves whole only when the new set replaces most of it), never turn a
file into a directory or back, and never write or restore a protected path: even when the stage, the pending manifest or
/ota_prev/ was tampered with (the manifest checks that refuse such sets up front are
attacked on a board in tests/test_attack_protected.py). The device modules run here under
CPython on a temp dir (see tests/test_ota_commit_crash.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from test_ota_commit_crash import device, sha, write  # noqa: F401  (device is a fixture)

SECRETS = '{"otaPassword": "0123456789abcdef0123456789abcdef", "signingKey": "k3y-that-must-never-leak"}'


def board(root: Path, manifest: dict[str, str]) -> None:
    """An installed board: the stack, the secrets, runtime data and `manifest`'s files."""
    write(root, "lib/uota/session.py", "stack")
    write(root, "config/.ota.secrets.json", SECRETS)
    write(root, "data/log.txt", "data")
    for p, text in manifest.items():
        write(root, p, text)
    write(root, "ota_manifest.txt", "".join(f"{p}:{sha(manifest[p])}\n" for p in sorted(manifest)))
    write(root, "ota_version.json", json.dumps({"version": "old", "release": 1}))


def pending(root: Path, files: dict[str, str]) -> None:
    write(root, "ota_pending.txt", "".join(f"{p}:{sha(files[p])}\n" for p in sorted(files)))


def protected_intact(root: Path) -> None:
    assert (root / "lib/uota/session.py").read_text() == "stack"
    assert (root / "config/.ota.secrets.json").read_text() == SECRETS
    assert (root / "data/log.txt").read_text() == "data"
    assert not (root / "ota_prev/lib").exists() and not (root / "ota_prev/config").exists()
    assert not (root / "ota_prev/data").exists()


def test_a_tampered_stage_naming_protected_dirs_replaces_nothing(device: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "flash"
    board(root, {"app/a.py": "A1"})
    new = {"app/a.py": "A2", "config": "X", "data": "X", "lib/uota": "X"}
    for p, text in new.items():
        write(root, "ota_stage/" + p, text)
    pending(root, new)
    device.commit.begin("new", 2, False)
    protected_intact(root)
    assert (root / "app/a.py").read_text() == "A2"  # the rest of the set went in
    assert not (root / "ota_stage").exists() and not (root / "ota_journal.json").exists()


def test_dropping_installed_entries_that_name_protected_dirs_moves_nothing(device: ModuleType,
                                                                            tmp_path: Path) -> None:
    # a board attacked before the fix: its installed manifest lists directories as files
    root = tmp_path / "flash"
    board(root, {"app/a.py": "A1", "app/gone.py": "G"})
    with open(root / "ota_manifest.txt", "a") as f:
        f.write("".join(f"{p}:{sha('X')}\n" for p in ("config", "data", "lib", "lib/uota")))
    lines = sorted((root / "ota_manifest.txt").read_text().splitlines())
    (root / "ota_manifest.txt").write_text("".join(line + "\n" for line in lines))
    pending(root, {"app/a.py": "A1"})
    device.commit.begin("new", 2, True)  # a full push with wipe, to make it worse
    protected_intact(root)
    assert not (root / "app/gone.py").exists() and (root / "ota_prev/app/gone.py").read_text() == "G"


def test_a_commit_never_turns_a_file_into_a_directory_or_back(device: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "flash"
    board(root, {"app/a.py": "A1", "tool": "T", "app/pkg/m.py": "M"})
    new = {"app/a.py": "A2", "tool/x.py": "X", "app/pkg": "P"}
    write(root, "ota_stage/app/a.py", "A2")
    write(root, "ota_stage/tool/x.py", "X")
    write(root, "ota_stage/app/pkg", "P")
    write(root, "ota_stage/app/b.py/inner.py", "D")  # a directory staged where a file is listed
    new["app/b.py"] = "D"
    pending(root, new)
    device.commit.begin("new", 2, False)  # finishes: a replay that raised would loop every boot
    assert not (root / "tool").exists()  # the set drops the file tool: not made a directory
    assert (root / "ota_prev/tool").read_text() == "T"
    assert not (root / "app/pkg").is_file()  # the set drops app/pkg/m.py: its dir isn't made a file
    assert (root / "ota_prev/app/pkg/m.py").read_text() == "M"
    assert not (root / "app/b.py").exists()
    assert (root / "app/a.py").read_text() == "A2"
    assert not (root / "ota_journal.json").exists()


def test_a_rollback_never_restores_a_protected_path(device: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "flash"
    board(root, {"app/a.py": "A1"})
    write(root, "ota_stage/app/a.py", "A2")
    pending(root, {"app/a.py": "A2"})
    device.commit.begin("new", 2, False)
    # /ota_prev/ as an attacker (or an older, unprotected commit) left it
    write(root, "ota_prev/config/.ota.secrets.json", '{"otaPassword": "", "signingKey": ""}')
    write(root, "ota_prev/lib/uota/session.py", "evil stack")
    write(root, "ota_prev/boot.py", "evil boot")
    write(root, "ota_prev/data/log.txt", "old data")  # runtime data is the app's: restorable
    assert device.commit.rollback()
    assert (root / "app/a.py").read_text() == "A1"
    assert (root / "lib/uota/session.py").read_text() == "stack"
    assert (root / "config/.ota.secrets.json").read_text() == SECRETS
    assert not (root / "boot.py").exists()
    assert not (root / "ota_prev").exists()


def test_rmtree_and_walk_empty_deep_and_wide_trees(device: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "flash"
    for i in range(50):
        write(root, f"ota_prev/a/b{i % 3}/c/f{i}.txt", "x")
    write(root, "ota_prev/top.txt", "x")
    found = sorted(device.tree.walk(str(root / "ota_prev")))
    assert len(found) == 51 and "a/b0/c/f0.txt" in found
    device.tree.rmtree(str(root / "ota_prev"))
    assert not (root / "ota_prev").exists()


def test_a_directory_goes_whole_only_when_each_file_in_it_belongs_to_a_set(device: ModuleType,
                                                                         tmp_path: Path) -> None:
    root = tmp_path / "flash"
    old = {"app/a.py": "A1", "app/b.py": "B1", "app/c.py": "C1", "app/keep.py": "K"}
    new = {"app/a.py": "A2", "app/b.py": "B2", "app/c.py": "C2", "app/keep.py": "K"}
    for usb in (False, True):
        for child in list(root.iterdir()) if root.exists() else []:
            _rmtree(child)
        board(root, old)
        if usb:
            write(root, "app/usb.txt", "put over USB")  # in no set: it must stay where it is
        for p in ("app/a.py", "app/b.py", "app/c.py"):
            write(root, "ota_stage/" + p, new[p])
        pending(root, new)
        staged_dir = (root / "ota_stage/app").stat().st_ino
        device.commit.begin("new", 2, False)
        swapped = (root / "app").stat().st_ino == staged_dir
        assert swapped != usb, "the staged directory should go whole exactly when no USB file is in the way"
        assert {p: (root / p).read_text() for p in new} == new
        assert sorted(f.name for f in (root / "ota_prev/app").iterdir()) == ["a.py", "b.py", "c.py"]
        assert (root / "app/usb.txt").exists() == usb
        protected_intact(root)
        device.commit.rollback()
        assert {p: (root / p).read_text() for p in old} == old
        assert (root / "app/usb.txt").exists() == usb
        assert sorted(f.name for f in (root / "app").iterdir()) == sorted(
            ["a.py", "b.py", "c.py", "keep.py"] + (["usb.txt"] if usb else []))


def _rmtree(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _rmtree(child)
        path.rmdir()
    else:
        path.unlink()
