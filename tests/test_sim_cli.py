"""`uota sim`: the ready line, clean shutdown, and host access to the flash."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

UOTA = [sys.executable, "-m", "uota_core.cli"]


def test_sim_run_prints_one_ready_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "cli-board"
    proc = subprocess.Popen(
        [*UOTA, "sim", "run", "--state", str(state), "--name", "clitest", "--no-mdns"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"serial=(\S+) host=(127\.\d+\.\d+\.\d+) hostname=clitest\.local state=(\S+)\n", line)
        assert m, line
        assert Path(m.group(1)).exists() and (state / "serial").resolve() == Path(m.group(1))
        assert Path(m.group(3)) == state.resolve()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line in all
    assert not (state / "serial").exists()


def test_sim_flash_commands(tmp_path: Path) -> None:
    state = tmp_path / "b"
    proc = subprocess.Popen([*UOTA, "sim", "run", "--state", str(state), "--no-mdns"],
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    local = tmp_path / "hello.py"
    local.write_text("print('hi')\n")
    run = lambda *a: subprocess.run([*UOTA, "sim", *a, "--state", str(state)], capture_output=True, text=True)
    assert run("put", str(local), "/app/hello.py").returncode == 0
    assert run("ls", "/app").stdout.split() == ["hello.py"]
    assert run("cat", "/app/hello.py").stdout == "print('hi')\n"
    assert run("rm", "/app/hello.py").returncode == 0
    missing = run("cat", "/app/hello.py")
    assert missing.returncode == 1 and "not on the board's flash" in missing.stderr


def test_sim_run_on_a_non_board_directory_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("keep me")
    res = subprocess.run([*UOTA, "sim", "run", "--state", str(tmp_path), "--no-mdns"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr.startswith("error: ") and "not a virtual board state directory" in res.stderr
    assert res.stdout == ""
