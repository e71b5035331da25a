"""The examples/ firmware projects' own test suites, run as their users run them: plain
`pytest` in the project directory, on a virtual board."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("project, expected", [("", "15 passed"), ("serial", "4 passed")])
def test_example_suite_passes(project: str, expected: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={tmp_path / 'junit.xml'}"], cwd=EXAMPLES / project, env=env,
                          capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert expected in proc.stdout.splitlines()[-1]
