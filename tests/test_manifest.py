"""Manifests: glob selection, the complete desired set, and the signing payload (host and
device must compute the same signature)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from uota_core.auth import delete_payload, delete_signature, manifest_signature, signing_payload
from uota_core.config import ConfigError, load_config
from uota_core.ignore import IgnoreError
from uota_core.manifest import ExcludedFileError, desired_files, local_manifest, matches, scan_project, select_files

KEY = "fd29d4815604b8c8c328954388e6aa773a7950f22eb957f7bd893f45b716a839"
PASSWORD = "45Qa9fkaMc1k7QD5R0z6EITf"

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
    assert found == ["app/a.py", "config/ota.json", "lib/drv.py"]  # main.py: the launcher


def test_local_manifest_fast_and_full(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ota.json").write_text(json.dumps({"signingKey": KEY, "ssid": "x"}))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.py").write_text("A")
    (tmp_path / "extra.py").write_text("E")
    cfg = load_config(tmp_path)
    fast = local_manifest(cfg, "fast")
    assert sorted(fast) == ["app/a.py", "config/ota.json"]
    assert KEY.encode() not in fast["config/ota.json"].data  # secrets never in a pushed file
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
    assert payload == b"15:uota-manifest-2,4:dev1,5:n0nce,1:7,3:1.2,1:1,4:a.py,2:aa,4:b.py,2:bb,"


def parse_netstrings(data: bytes) -> list[str]:
    """The fields back out of a payload; fails on anything but a run of netstrings."""
    fields = []
    while data:
        size, colon, rest = data.partition(b":")
        assert colon and size.isdigit() and rest[int(size):int(size) + 1] == b",", data[:40]
        fields.append(rest[: int(size)].decode())
        data = rest[int(size) + 1:]
    return fields


# what the fields may hold; the device refuses most of it in versions and paths, but the
# payload must stay unambiguous whatever a field holds
HOSTILE = st.text(st.sampled_from(list("ab:;,\n\r\"'\\/ 0é日\u2028")) | st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(dev=HOSTILE, nonce=HOSTILE, release=st.integers(-5, 10**12), version=HOSTILE, wipe=st.booleans(),
       files=st.dictionaries(HOSTILE, HOSTILE, max_size=5))
def test_the_signed_payload_decodes_to_exactly_its_fields(dev: str, nonce: str, release: int, version: str,
                                                         wipe: bool, files: dict[str, str]) -> None:
    # a payload that parses back to its own fields is one no other field values produce
    fields = parse_netstrings(signing_payload(dev, nonce, release, version, files, wipe))
    expect = ["uota-manifest-2", dev, nonce, str(release), version, "1" if wipe else "0"]
    for path in sorted(files):
        expect += [path, files[path]]
    assert fields == expect
    assert parse_netstrings(delete_payload(dev, nonce, release, version)) == ["uota-rm-2", dev, nonce, str(release), version]
    assert parse_netstrings(delete_payload(dev, nonce, release, None))[0] == "uota-wipe-2"


SHA_A, SHA_B = "a" * 64, "b" * 64
RESHAPES = [  # (version, files) pairs that signed the same bytes under v1's newline-joined payload
    (("1.0", {"app/app.py": SHA_A, "main.py": SHA_B}), (f"1.0\napp/app.py:{SHA_A}", {"main.py": SHA_B})),
    (("1.0", {"a:b.py": SHA_A}), ("1.0", {"a": f"b.py:{SHA_A}"})),
    (("1.0", {"a.py": SHA_A, "b.py": SHA_B}), (f"1.0\na.py:{SHA_A}\nb.py:{SHA_B}", {})),
]


@pytest.mark.parametrize(("one", "other"), RESHAPES, ids=["file-line-into-version", "colon-in-path", "every-file-into-version"])
def test_a_reshaped_manifest_signs_different_bytes(one: tuple, other: tuple) -> None:
    assert signing_payload("d", "n", 2, *one) != signing_payload("d", "n", 2, *other)
    assert manifest_signature("k", "d", "n", 2, *one) != manifest_signature("k", "d", "n", 2, *other)


def test_host_and_device_compute_the_same_signature(tmp_path: Path) -> None:
    micropython = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    # fields holding the characters a line-based payload would trip over: \n, :, ;, quotes,
    # commas, digits and non-ASCII (whose byte length differs from its character count)
    cases = [("v9", {"app/a.py": "a" * 64, "main.py": "b" * 64, "config/ota.json": "c" * 64}, False),
             ("1.0\napp/x.py:" + "a" * 64, {"a:b;c.py": "d" * 64, "q\"'.py": "e" * 64}, True),
             ("2,3:4", {"donn\u00e9es/\u65e5\u672c.py": "f" * 64, "12:x,": "0" * 64}, False)]
    script = tmp_path / "sig.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'device' / 'lib')!r})\nfrom uota import auth\n"
        f"for v, files, wipe in {cases!r}:\n"
        f"    h = auth.signed(b'k3y', 'uota-manifest-2', 'dev1', 'nonce', '3', v, '1' if wipe else '0')\n"
        f"    for p in sorted(files):\n"
        f"        auth.put(h, p)\n"
        f"        auth.put(h, files[p])\n"
        f"    print(h.hexdigest())\n"
        f"    print(auth.signed(b'k3y', 'uota-rm-2', 'dev1', 'nonce', '3', sorted(files)[-1]).hexdigest())\n"
        f"print(auth.signed(b'k3y', 'uota-wipe-2', 'dev1', 'nonce', '3', '').hexdigest())\n"
        f"print(auth.hmac_hex(b'x' * 100, b'msg'))\n")
    out = subprocess.run([micropython, str(script)], capture_output=True, text=True, check=True).stdout.split()
    want = []
    for version, files, wipe in cases:
        want.append(manifest_signature("k3y", "dev1", "nonce", 3, version, files, wipe))
        want.append(delete_signature("k3y", "dev1", "nonce", 3, sorted(files)[-1]))
    want.append(delete_signature("k3y", "dev1", "nonce", 3, None))
    assert out[:-1] == want
    import hashlib
    import hmac
    assert out[-1] == hmac.new(b"x" * 100, b"msg", hashlib.sha256).hexdigest()  # long keys are hashed first


def project(root: Path, files: dict[str, str], secrets: dict[str, str] | None = None, **config: object) -> Path:
    for rel, text in {"config/ota.json": json.dumps(config), **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if secrets is not None:
        (root / "config" / ".ota.secrets.json").write_text(json.dumps(secrets))
    return root


# the files the outside attack got pushed (issue 11), and their relatives
LEAKY = ["config/.ota.secrets.json.bak", "config/.ota.secrets.json~", ".ota.secrets.json~", "config/secrets.json",
         "app/My_Secret.py", "app/tls.key", "app/tls.pem", ".env", "app/.env.local", "app/a.py.bak", "app/a.py~",
         "app/.a.py.swp", "app/.a.py.swo", "app/.#a.py", "app/#a.py#", "app/a.py.orig", "app/x.tmp", ".DS_Store",
         "app/.DS_Store",
         # names round 5 got pushed (credentials by their usual names)
         "app/id_rsa", "app/id_ed25519.pub", "app/credentials.json", "app/wifi_password.txt", "app/Passwd.py",
         "app/client.p12", "app/client.pfx"]


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_secrets_and_backups_are_never_pushed_and_are_reported(tmp_path: Path, mode: str) -> None:
    root = project(tmp_path, {"app/a.py": "A", "app/main.py": "M", "app/secrets/wifi.py": "W",
                              **{rel: "copy" for rel in LEAKY}})
    scan = scan_project(load_config(root), mode)
    assert sorted(scan.files) == ["app/a.py", "app/main.py", "config/ota.json"]
    assert sorted(scan.excluded) == sorted(
        [rel for rel in LEAKY if mode == "full" or rel.startswith(("app/", "config/"))] + ["app/secrets/"])
    assert scan.excluded["config/secrets.json"] == "*secret* (built-in secrets list:1)"
    assert scan.excluded["app/a.py~"] == "*~ (built-in backup list:2)"


def test_uotaignore_adds_exclusions_and_can_undo_backup_defaults_but_not_secrets(tmp_path: Path) -> None:
    ignore = "\n".join(["# local notes and build output", "", "notes/", "/app/big_*.bin", "**/fixtures/**",
                        "!app/keep.orig", "!config/secrets.json", "!app/fixtures/tiny.py", "*.md"])
    root = project(tmp_path, {".uotaignore": ignore, "app/a.py": "A", "app/keep.orig": "K", "app/drop.orig": "D",
                              "app/notes/n.txt": "N", "app/big_1.bin": "B", "app/sub/big_2.bin": "B2",
                              "app/fixtures/tiny.py": "T", "app/fixtures/x.py": "X", "app/README.md": "R",
                              "config/secrets.json": "S"})
    scan = scan_project(load_config(root), "fast")
    assert sorted(scan.files) == ["app/a.py", "app/fixtures/tiny.py", "app/keep.orig", "app/sub/big_2.bin",
                                  "config/ota.json"]
    assert scan.excluded == {"app/notes/": "notes/ (.uotaignore:3)", "app/big_1.bin": "/app/big_*.bin (.uotaignore:4)",
                             "app/fixtures/x.py": "**/fixtures/** (.uotaignore:5)",
                             "app/README.md": "*.md (.uotaignore:9)", "app/drop.orig": "*.orig (built-in backup list:7)",
                             "config/secrets.json": "*secret* (built-in secrets list:1)"}


def test_a_bad_uotaignore_is_a_clear_error(tmp_path: Path) -> None:
    root = project(tmp_path, {".uotaignore": "*.bak\napp/[x.py\n", "app/a.py": "A"})
    with pytest.raises(IgnoreError, match=r"^\.uotaignore:2: 'app/\[x\.py': '\[' is never closed"):
        scan_project(load_config(root), "fast")
    (root / ".uotaignore").write_bytes(b"\xff\xfe*.bak\n")
    with pytest.raises(ConfigError, match="cannot read .uotaignore: .*fix or delete it"):
        scan_project(load_config(root), "fast")


def test_a_secrets_file_named_in_the_globs_is_refused_with_the_reason(tmp_path: Path) -> None:
    root = project(tmp_path, {"app/a.py": "A", "config/secrets.json": "{}"},
                   fastOtaFiles=["app/**", "/config/secrets.json"])
    with pytest.raises(ExcludedFileError) as info:
        local_manifest(load_config(root), "fast")
    assert str(info.value).startswith("/config/secrets.json is listed in the push globs, but uota never pushes a "
                                      "file that looks like a secret (it matches *secret* (built-in secrets list:1))")


@pytest.mark.parametrize(("where", "name"), [(10, "signingKey"), (65536 - 20, "signingKey"), (65536 * 2 + 3, "otaPassword")])
def test_a_file_holding_a_key_is_refused_wherever_the_key_sits(tmp_path: Path, where: int, name: str) -> None:
    secret = KEY if name == "signingKey" else PASSWORD
    body = "#" * where + secret + "\n" + "#" * 100  # across a read-block boundary too
    root = project(tmp_path, {"app/a.py": "A", "app/settings.py": body},
                   secrets={"signingKey": KEY, "otaPassword": PASSWORD})
    with pytest.raises(ExcludedFileError) as info:
        local_manifest(load_config(root), "full")
    assert str(info.value).startswith(f"app/settings.py contains the {name} from config/.ota.secrets.json, and "
                                      "uota never pushes a file holding a key")
    (root / ".uotaignore").write_text("settings.py\n")  # the way out the message offers
    assert sorted(local_manifest(load_config(root), "full")) == ["app/a.py", "config/ota.json"]


def test_excluded_files_on_the_board_are_neither_pushed_nor_dropped(tmp_path: Path) -> None:
    root = project(tmp_path, {"app/a.py": "A", ".uotaignore": "app/cal.dat\n"})
    scan = scan_project(load_config(root), "full")
    installed = {"app/a.py": "0" * 64, "app/cal.dat": "1" * 64, "app/a.py.bak": "2" * 64, "app/gone.py": "3" * 64}
    for mode in ("fast", "full"):
        desired = desired_files(scan.files, installed, mode, ["app/**"], scan.exclusions.excludes)
        assert desired == {"app/a.py": scan.files["app/a.py"].sha256, "app/cal.dat": "1" * 64,
                           "app/a.py.bak": "2" * 64, "config/ota.json": scan.files["config/ota.json"].sha256}


@pytest.mark.parametrize("path", [
    "boot.py", "main.py", "lib", "lib/uota", "lib/uota/session.py", "lib/x.py", "config", "config/ota.json",
    "config/.ota.secrets.json", "data", "data/log.txt", "ota_prev/main.py", "ota_version.json", "app/app.py",
    "library/x.py", "configs", "database.py",
])
def test_the_host_never_deletes_what_the_device_refuses_to(path: str) -> None:
    # the host's mirror of the device rule: a push that planned to drop such a path would be
    # refused by the board after the user waited for it
    import importlib.util

    from uota_core.manifest import protected_on_device
    from uota_core.resources import device_dir

    spec = importlib.util.spec_from_file_location("device_paths", device_dir() / "lib" / "uota" / "paths.py")
    assert spec and spec.loader
    device_paths = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(device_paths)
    assert protected_on_device(path) == (not device_paths.deletable(path))
