"""The OTA protocol end to end: host `Session` ↔ the real device session code, run under
the MicroPython unix port against a temp dir (no virtual board needed)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from uota_core.auth import manifest_signature
from uota_core.bootstrap import ota_key_secrets
from uota_core.config import load_config
from uota_core.push import PushError, push
from uota_core.session import AuthError, DeviceError, SignatureError
from uota_core.seal import PROTO
from uota_core.link import LinkError
from fake_device import FakeDevice, device, installed, project  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(60)


def test_documented_commands_on_a_fresh_device(device: FakeDevice) -> None:
    (device.root / "hello.txt").write_bytes(b"hi there")
    with device.session() as s:
        assert s.ping()
        info = s.hello()
        assert info is not None and info.proto == PROTO and len(info.nonce) == 32 and not info.auth
        assert s.version() == ""
        assert "hello.txt" in s.ls("/")
        assert s.get("hello.txt") == b"hi there"
        s.rm("hello.txt")
        assert not (device.root / "hello.txt").exists()
        with pytest.raises(DeviceError, match="no such file"):
            s.get("hello.txt")
        with pytest.raises(DeviceError, match="unknown command"):
            s.request("frobnicate")


def test_incremental_push_sends_only_changes_and_deletes_dropped_files(device: FakeDevice, project: Path) -> None:
    cfg = load_config(project)
    with device.session() as s:
        s.open()
        first = push(s, cfg, "fast")
    assert first.committed and first.sent == ["app/app.py", "app/main.py", "app/util.py", "config/ota.json"]
    assert (device.root / "app" / "app.py").read_text() == "def run():\n    print('v1')\n"
    assert installed(device.root)["version"] == "1.0.0"
    assert not (device.root / "ota_stage").exists()

    (project / "app" / "app.py").write_text("def run():\n    print('v2')\n")
    (project / "app" / "util.py").unlink()
    with device.session() as s:
        s.open()
        second = push(s, cfg, "fast", version="1.0.1")
    assert second.sent == ["app/app.py"] and second.deleted == ["app/util.py"]
    assert second.bytes == len("def run():\n    print('v2')\n")
    assert not (device.root / "app" / "util.py").exists()
    assert (device.root / "ota_prev" / "app" / "util.py").read_text() == "X = 1\n"  # kept for rollback

    with device.session() as s:
        s.open()
        third = push(s, cfg, "fast", version="1.0.1")
    assert not third.committed and third.sent == [] and third.bytes == 0


def test_fast_push_leaves_files_outside_its_scope(device: FakeDevice, project: Path) -> None:
    (project / "lib").mkdir()
    (project / "lib" / "driver.py").write_text("D = 1\n")
    cfg = load_config(project)
    cfg.values["mpyFiles"] = []  # lib/** would go as .mpy by default: this test is about scope
    with device.session() as s:
        s.open()
        push(s, cfg, "full")
    (project / "lib" / "driver.py").unlink()
    with device.session() as s:
        s.open()
        result = push(s, cfg, "fast", version="2")
    assert result.deleted == [] and (device.root / "lib" / "driver.py").exists()
    with device.session() as s:
        s.open()
        result = push(s, cfg, "full", version="3")
    assert result.deleted == ["lib/driver.py"] and not (device.root / "lib" / "driver.py").exists()


def test_full_wipe_removes_unmanaged_files_but_keeps_protected_ones(device: FakeDevice, project: Path) -> None:
    for rel in ("stray.py", "data/log.txt", "lib/uota/ota.py", "boot.py"):
        (device.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (device.root / rel).write_text("keep?")
    device.secrets(signingKey="")
    cfg = load_config(project)
    with device.session() as s:
        s.open()
        result = push(s, cfg, "full", wipe=True)
    assert result.committed and len(result.sent) == 4
    assert not (device.root / "stray.py").exists()
    for rel in ("data/log.txt", "lib/uota/ota.py", "boot.py", "config/.ota.secrets.json"):
        assert (device.root / rel).exists(), rel


def test_secrets_are_stripped_from_the_pushed_config(device: FakeDevice, project: Path) -> None:
    (project / "config" / "ota.json").write_text(json.dumps({
        "version": "1", "signingKey": os.urandom(32).hex(), "otaPassword": "Xq7-" + os.urandom(9).hex()}))
    cfg = load_config(project)
    with device.session() as s:
        s.open()
        push(s, cfg, "fast")
    pushed = json.loads((device.root / "config" / "ota.json").read_text())
    assert pushed == {"version": "1"}


def test_password_auth(device: FakeDevice, project: Path) -> None:
    device.secrets(**ota_key_secrets("s3cret"))
    with device.session() as s:
        assert s.hello().auth
        with pytest.raises(AuthError, match="auth required"):
            s.version()
        assert s.ping()  # allowed before auth
    with device.session(password="wrong") as s, pytest.raises(AuthError, match="wrong OTA password"):
        s.open()
    with device.session() as s, pytest.raises(AuthError, match="requires an OTA password"):
        s.open()
    with device.session(password="s3cret") as s:
        s.open()
        assert s.version() == ""
        s.passwd("n3w")
    with device.session(password="s3cret") as s, pytest.raises(AuthError):
        s.open()
    with device.session(password="n3w") as s:
        s.open()
        assert s.ping()


def test_a_key_from_an_older_stack_asks_for_a_re_bootstrap(device: FakeDevice) -> None:
    # a board whose secrets hold only the old SHA256 key: locked, never weakly unlocked
    device.secrets(otaPassword=hashlib.sha256(b"s3cret").hexdigest())
    with device.session(password="s3cret") as s, pytest.raises(AuthError, match="re-run `uota bootstrap`"):
        s.open()
    with device.session() as s:
        assert s.hello().auth
        with pytest.raises(DeviceError, match="re-run uota bootstrap"):
            s.request("challenge " + "0" * 32)
        with pytest.raises(AuthError, match="auth required"):
            s.version()


def test_an_unauthenticated_manifest_body_is_never_parsed_as_commands(device: FakeDevice) -> None:
    device.secrets(**ota_key_secrets("pw"))
    (device.root / "victim.txt").write_text("x")
    with device.session() as s:
        s.hello()
        s.link.write(b"manifest 14\nrm victim.txt\n\n\n")
        assert s._reply() == "error: auth required"
    assert (device.root / "victim.txt").exists()


def test_signed_manifests(device: FakeDevice, project: Path) -> None:
    device.secrets(signingKey="sign-me")
    cfg = load_config(project)
    with device.session() as s:
        s.open()
        with pytest.raises(SignatureError, match="only accepts signed"):
            push(s, cfg, "fast")
    with device.session(signing_key="not-the-key") as s:
        s.open()
        with pytest.raises(SignatureError, match="doesn't match"):
            push(s, cfg, "fast")
    assert not (device.root / "app").exists() and not (device.root / "ota_stage").exists()

    # a signature made for another session's nonce is a replay
    with device.session(signing_key="sign-me") as s:
        old = s.hello()
    with device.session(signing_key="sign-me") as s:
        info = s.hello()
        files = {"app/main.py": hashlib.sha256(b"x").hexdigest()}
        sig = manifest_signature("sign-me", info.id, old.nonce, info.release + 1, "9", files)
        body = json.dumps({"version": "9", "files": files, "release": info.release + 1, "sig": sig}).encode()
        s.request("start_ota")
        s.link.write(f"manifest {len(body)}\n".encode() + body)
        assert s._reply() == "sig_mismatch"

    with device.session(signing_key="sign-me") as s:
        s.open()
        result = push(s, cfg, "fast")
    assert result.committed and installed(device.root)["release"] == 1


def test_interrupted_push_resumes_without_resending_staged_files(device: FakeDevice, project: Path) -> None:
    cfg = load_config(project)
    from uota_core.manifest import local_manifest

    local = local_manifest(cfg, "fast")
    files = {p: f.sha256 for p, f in local.items()}
    with device.session() as s:
        s.open()
        s.start_ota()
        s.send_manifest(files, "1.0.0")
        f = local["app/app.py"]
        s.send_file(f.path, f.size, f.sha256, f.open_chunks())
    # connection dropped before end_ota: nothing installed, the staged file kept
    assert not (device.root / "app").exists()
    with device.session() as s:
        s.open()
        result = push(s, cfg, "fast")
    assert "app/app.py" not in result.sent and "app/app.py" in result.skipped
    assert (device.root / "app" / "app.py").exists()


def test_bad_paths_and_protected_paths_are_refused(device: FakeDevice) -> None:
    sha = hashlib.sha256(b"").hexdigest()
    with device.session() as s:
        s.hello()
        s.start_ota()
        for bad in ("../etc/passwd", "/abs.py", "a//b.py", "a\\b.py", "lib/uota/session.py", "boot.py",
                    "config/.ota.secrets.json"):
            with pytest.raises(DeviceError, match="bad path"):
                s.send_manifest({bad: sha}, "1")
        s.send_manifest({"ok.py": sha}, "1")
        with pytest.raises(DeviceError, match="not in the manifest"):
            s.send_file("other.py", 3, sha, [b"abc"])
        assert s.ping()  # the body was drained: the stream is still in sync
        with pytest.raises(DeviceError, match="protected"):
            s.get("config/.ota.secrets.json")
        with pytest.raises(DeviceError, match="protected"):
            s.rm("lib/uota/session.py")
        with pytest.raises(DeviceError, match="missing ok.py"):
            s.end_ota()
        assert s.request("abort") == "aborted"


def test_a_file_that_vanishes_during_the_push_aborts_it(device: FakeDevice, project: Path, monkeypatch) -> None:
    cfg = load_config(project)
    import uota_core.push as push_mod

    real_write = push_mod._write

    def vanish_then_write(session, f, *rest):
        if f.path == "app/util.py":
            os.remove(f.source)
        return real_write(session, f, *rest)

    monkeypatch.setattr(push_mod, "_write", vanish_then_write)
    with device.session() as s:
        s.open()
        with pytest.raises(PushError, match="app/util.py could not be read.*nothing was installed"):
            push(s, cfg, "fast")
    assert not (device.root / "app").exists() and not (device.root / "ota_stage").exists()


def test_a_256k_file_streams_into_a_128k_heap(device: FakeDevice, project: Path) -> None:
    big = os.urandom(256 * 1024)
    (project / "app" / "blob.bin").write_bytes(big)
    cfg = load_config(project)
    with device.session() as s:
        s.open()
        result = push(s, cfg, "fast")
    assert "app/blob.bin" in result.sent
    assert (device.root / "app" / "blob.bin").read_bytes() == big


def test_a_client_without_hello_uses_the_documented_json_manifest(device: FakeDevice, project: Path) -> None:
    cfg = load_config(project)
    with device.session() as s:  # no hello: the micro-ota command set as documented
        result = push(s, cfg, "fast")
    assert result.committed and len(result.sent) == 4
    assert installed(device.root)["files"]["app/app.py"] == hashlib.sha256(b"def run():\n    print('v1')\n").hexdigest()


def test_the_signature_covers_the_wipe_flag(device: FakeDevice, project: Path) -> None:
    device.secrets(signingKey="k")
    (device.root / "stray.txt").write_text("x")
    with device.session(signing_key="k") as s:
        info = s.open()
        files = {"app/main.py": hashlib.sha256(b"x").hexdigest()}
        sig = manifest_signature("k", info.id, info.nonce, info.release + 1, "1", files, wipe=False)
        header = json.dumps({"version": "1", "release": info.release + 1, "wipe": True, "sig": sig})
        body = f"uota-manifest-lines 1 {header}\napp/main.py:{files['app/main.py']}\n".encode()
        s.start_ota()
        s.link.write(f"manifest {len(body)}\n".encode() + body)
        assert s._reply() == "sig_mismatch"  # a wipe smuggled into a session signed without one
    cfg = load_config(project)
    with device.session(signing_key="k") as s:
        s.open()
        assert push(s, cfg, "full", wipe=True).committed
    assert not (device.root / "stray.txt").exists()


def test_a_malformed_body_header_closes_the_connection_instead_of_running_the_body(device: FakeDevice) -> None:
    (device.root / "victim.txt").write_text("x")
    with device.session() as s:
        s.hello()
        s.start_ota()
        s.link.write(b"file a.py;notanumber;abc\nrm victim.txt\n")
        assert s._reply().startswith("error: bad request")
        with pytest.raises(LinkError):
            s.ping()
    assert (device.root / "victim.txt").exists()


def test_a_half_applied_commit_is_left_to_the_boot_replay(device: FakeDevice) -> None:
    # a journal means a commit is under way: abort must not discard its stage, and no new
    # session may start until a reset has replayed it
    (device.root / "ota_journal.json").write_text(json.dumps({"src": "ota_stage", "manifest": "ota_pending.txt"}))
    (device.root / "ota_stage").mkdir()
    (device.root / "ota_stage" / "main.py").write_text("new")
    with device.session() as s:
        s.hello()
        with pytest.raises(DeviceError, match="commit is in progress"):
            s.abort()
        with pytest.raises(DeviceError, match="commit is in progress"):
            s.start_ota()
    assert (device.root / "ota_stage" / "main.py").read_text() == "new"


def test_wipe_without_a_signing_key_is_the_documented_command(device: FakeDevice) -> None:
    (device.root / "stray.txt").write_text("x")
    with device.session() as s:
        s.open()
        s.wipe()
    assert not (device.root / "stray.txt").exists()


def test_wipe_is_signed_on_a_device_with_a_signing_key(device: FakeDevice) -> None:
    device.secrets(signingKey="k")  # before the first session: the device reads it per session
    (device.root / "stray.txt").write_text("x")
    (device.root / "data").mkdir()
    (device.root / "data" / "keep.txt").write_text("kept")
    with device.session() as s:
        s.open()
        with pytest.raises(SignatureError, match="`wipe` needs a signature"):
            s.wipe()  # the host without the key says so before sending
        s._send_line("wipe")
        assert s._reply().startswith("error: wipe needs a signature")
    assert (device.root / "stray.txt").exists()
    with device.session(signing_key="k") as s:
        s.open()
        s.wipe()
    assert not (device.root / "stray.txt").exists() and (device.root / "data" / "keep.txt").exists()
