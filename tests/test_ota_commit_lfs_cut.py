"""The device's commit and its replay on a real LittleFS, cut after every block write.

tests/test_ota_commit_crash.py cuts between filesystem calls on a POSIX dir; this runs the
same device code under the MicroPython unix port on vfs.VfsLfs2, so a cut can also land
inside one LittleFS rename: between the commit that adds the file to its new directory and
the one that deletes it from the old. Until the next write after power-on fixes that
half-done move, LittleFS hides the following entry of the old directory too; a replay that
trusted that read skipped the file, then emptied the stage: one file lost (the many-files
attack test saw 299 of 300).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DEVICE_LIB = TESTS.parent / "device" / "lib"
MICROPYTHON = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["new dir", "replace", "drop"])
def test_a_commit_cut_after_any_block_write_replays_into_exactly_the_old_or_the_new_set(mode: str) -> None:
    # "replace": the live directory holds the old files and one the new set keeps, so the
    # commit swaps the whole directory (a cut between its moves must still land on one set);
    # "drop": the new set drops the directory's old files, keeps one and adds one (a swap too)
    files = 6
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=64M", str(TESTS / "mp_commit_cut.py"), str(DEVICE_LIB),
                          str(files)] + ([mode] if mode in ("replace", "drop") else []),
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines and lines[-1].startswith("done "), out.stdout + out.stderr
    assert int(lines[-1].split()[1]) > 2 * files, "too few cuts: the commit can't have run"
    assert lines[:-1] == [], "\n".join(lines)
