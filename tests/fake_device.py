"""A device OTA session without a board: the real device session code (device/lib/uota)
under the plain MicroPython unix port, serving a temp dir instead of flash over TCP."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from uota_core.session import Session
from uota_core.tcp import TcpLink

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("mp_session_runner.py")
MICROPYTHON = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))

class FakeDevice:
    """A device session process; each `session()` is one TCP connection to it."""

    def __init__(self, root: Path, heap: str = "128K", lib: Path = REPO / "device" / "lib") -> None:
        self.root = root
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        port = self.server.getsockname()[1]
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", f"heapsize={heap}", str(RUNNER), str(lib), str(root), str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def session(self, password: str = "", signing_key: str = "") -> Session:
        conn, _ = self.server.accept()
        return Session(TcpLink.adopt(conn, "fake-device", timeout=20), password, signing_key)

    def secrets(self, **values: str | int) -> None:
        path = self.root / "config" / ".ota.secrets.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
        # the device reads its secrets when a connection opens, and it has one open ahead:
        # end that one, so the next session surely sees these
        conn, _ = self.server.accept()
        conn.close()

    def close(self) -> str:
        self.server.close()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace")


@pytest.fixture
def device(tmp_path: Path):
    root = tmp_path / "flash"
    root.mkdir()
    dev = FakeDevice(root)
    yield dev
    output = dev.close()
    assert "Traceback" not in output, output


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "config").mkdir(parents=True)
    (proj / "app").mkdir()
    (proj / "config" / "ota.json").write_text(json.dumps({"version": "1.0.0", "ssid": "lab"}))
    (proj / "app" / "app.py").write_text("def run():\n    print('v1')\n")
    (proj / "app" / "util.py").write_text("X = 1\n")
    (proj / "app" / "main.py").write_text("from app import app\napp.run()\n")
    return proj


def installed(root: Path) -> dict:
    info = json.loads((root / "ota_version.json").read_text())
    lines = (root / "ota_manifest.txt").read_text().splitlines()
    return {**info, "files": dict(line.rsplit(":", 1) for line in lines)}
