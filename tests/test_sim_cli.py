"""`uota sim`: the ready line, clean shutdown, and host access to the flash."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uota_core.sim.vm import process_stat

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


def _children(pid: int) -> dict[int, str]:
    """{pid: command name} of the processes whose parent is `pid`, alive (not zombies)."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        stat = process_stat(int(proc.name))  # None: it ended meanwhile
        if stat and stat[2] == pid and stat[1] != "Z":
            found[int(proc.name)] = stat[0]
    return found


def _alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[1] != "Z"


def test_a_killed_supervisor_takes_its_vm_with_it(tmp_path: Path, ota_project: Path) -> None:
    """SIGKILL leaves no clean-up to run: the VM must still not outlive its board's
    supervisor (it would hold the board's address and write its flash under the next one).
    The board runs the OTA stack and has gone quiet, so no write to a closed pipe ends it."""
    from uota_core.bootstrap import install_offline
    from uota_core.config import load_config
    from uota_core.sim import VirtualBoard

    state = tmp_path / "orphan"
    board = VirtualBoard(state, name="orphan", baud=None, mdns=False).start(power_on=False)
    install_offline(board.write_file, load_config(ota_project))
    board.write_file("/app/app.py", "import uota\n\ndef run():\n    uota.mark_healthy()\n")
    board.stop()

    proc = subprocess.Popen([*UOTA, "sim", "run", "--state", str(state), "--no-mdns"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("serial=")
        vms = [pid for pid, name in _children(proc.pid).items() if name == "micropython"]
        assert len(vms) == 1, _children(proc.pid)
        deadline = time.monotonic() + 20
        while "boot marked healthy" not in (state / "console.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, "the board did not boot healthy"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=20)
    deadline = time.monotonic() + 10
    try:
        while _alive(vms[0]):
            assert time.monotonic() < deadline, f"the VM (pid {vms[0]}) outlived its killed supervisor"
            time.sleep(0.05)
    finally:
        if _alive(vms[0]):
            os.kill(vms[0], signal.SIGKILL)  # don't leave it running on a failure
    # and the board starts again under a new supervisor
    again = subprocess.Popen([*UOTA, "sim", "run", "--state", str(state), "--no-mdns"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert again.stdout.readline().startswith("serial=")
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=20)
    assert again.returncode == 0
