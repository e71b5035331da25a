"""Manifests: glob selection, the complete desired set, and the signing payload (host and
device must compute the same signature)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from uota_core.auth import manifest_signature, signing_payload
from uota_core.config import load_config
from uota_core.manifest import desired_files, local_manifest, matches, select_files

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("path", "patterns", "hit"), [
    ("app/app.py", ["app/**"], True),
    ("app/sub/x.py", ["app/**"], True),
    ("apps/x.py", ["app/**"], False),
    ("main.py", ["*.py"], True),
    ("lib/main.py", ["*.py"], False),
    ("lib/x/__pycache__/a.pyc", ["**/__pycache__/**"], True),
    ("__pycache__/a.pyc", ["**/__pycache__/**"], True),
    ("anything/at/all", ["**"], True),
    ("a.txt", ["?.txt"], True),
    ("ab.txt", ["?.txt"], False),
])
def test_glob_semantics(path: str, patterns: list[str], hit: bool) -> None:
    assert matches(path, patterns) is hit


def test_selection_excludes_and_never_pushes_the_stack_or_secrets(tmp_path: Path) -> None:
    for rel in ("app/a.py", "lib/uota/session.py", "lib/drv.py", "boot.py", ".git/HEAD", "tests/t.py",
                "config/ota.json", "config/.ota.secrets.json", "main.py", "app/__pycache__/a.cpython.pyc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found = select_files(tmp_path, ["**"], [".git/**", "tests/**", "**/__pycache__/**"])
    assert found == ["app/a.py", "config/ota.json", "lib/drv.py", "main.py"]


def test_local_manifest_fast_and_full(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ota.json").write_text(json.dumps({"signingKey": "leak?", "ssid": "x"}))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.py").write_text("A")
    (tmp_path / "extra.py").write_text("E")
    cfg = load_config(tmp_path)
    fast = local_manifest(cfg, "fast")
    assert sorted(fast) == ["app/a.py", "config/ota.json"]
    assert b"leak?" not in fast["config/ota.json"].data  # secrets never in a pushed file
    assert sorted(local_manifest(cfg, "full")) == ["app/a.py", "config/ota.json", "extra.py"]


def test_fast_desired_set_keeps_installed_files_outside_its_scope() -> None:
    class F:
        def __init__(self, sha: str) -> None:
            self.sha256 = sha

    local = {"app/a.py": F("1" * 64)}
    installed = {"app/a.py": "0" * 64, "app/gone.py": "2" * 64, "lib/x.py": "3" * 64}
    assert desired_files(local, installed, "fast", ["app/**"]) == {"app/a.py": "1" * 64, "lib/x.py": "3" * 64}
    assert desired_files(local, installed, "full", ["app/**"]) == {"app/a.py": "1" * 64}


def test_signing_payload_is_sorted_and_covers_session_and_release() -> None:
    payload = signing_payload("dev1", "n0nce", 7, "1.2", {"b.py": "bb", "a.py": "aa"}, wipe=True)
    assert payload == b"uota-manifest-1 wipe\ndev1\nn0nce\n7\n1.2\na.py:aa\nb.py:bb\n"


def test_host_and_device_compute_the_same_signature(tmp_path: Path) -> None:
    micropython = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    files = {"app/a.py": "a" * 64, "main.py": "b" * 64, "config/ota.json": "c" * 64}
    script = tmp_path / "sig.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'device' / 'lib')!r})\nfrom uota import auth\n"
        f"print(auth.manifest_sig(b'k3y', 'dev1', 'nonce', 3, 'v9', {files!r}, False))\n"
        f"print(auth.hmac_hex(b'x' * 100, b'msg'))\n")
    out = subprocess.run([micropython, str(script)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == manifest_signature("k3y", "dev1", "nonce", 3, "v9", files)
    import hashlib
    import hmac
    assert out[1] == hmac.new(b"x" * 100, b"msg", hashlib.sha256).hexdigest()  # long keys are hashed first
