"""A signer attacks the board's protected directories and key files (issue 11, breaks 1 and
8): a signed manifest entry naming `config`, `lib`, `lib/uota` or `data` (a file where the
directory stands) used to be committed, moving the secrets, the OTA stack or the runtime data
to /ota_prev/; `get` served backups and copies of the secrets file. Now such entries are
refused before anything is staged, commit never turns a directory into a file or back, and
`get` refuses secrets-like names and any file holding the board's key material."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from attack_helpers import PASSWORD, SIGNING_KEY, flash_hashes, healthy_board, secret_forms
from test_attack_signing import lines_body, nothing_staged_after, offer, signed_header
from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.push import push
from uota_core.session import DeviceError
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(180)

BODY = b"print('a file where a directory stands')\n"
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory):
    with healthy_board(tmp_path_factory.mktemp("protected"), "protboard", password=PASSWORD,
                       signing_key=SIGNING_KEY) as board_and_project:
        yield board_and_project


def installed(board: VirtualBoard, project: Path) -> dict[str, str]:
    with open_session(load_config(project)) as s:
        return s.installed().files


def stack_and_secrets(board: VirtualBoard) -> dict[str, str]:
    return {p: h for p, h in flash_hashes(board).items()
            if p.startswith(("/lib/", "/config/", "/data/")) or p == "/boot.py"}


@pytest.mark.parametrize("entry", ["config", "lib", "lib/uota", "data", "boot.py", "lib/uota/session.mpy",
                                   "config/.ota.secrets.json", "ota_stage"])
def test_an_entry_naming_a_protected_path_is_refused_before_staging(signed: tuple[VirtualBoard, Path],
                                                                    entry: str) -> None:
    board, project = signed
    before = flash_hashes(board)
    files = {**installed(board, project), entry: SHA}
    with open_session(load_config(project)) as s:
        reply = offer(s, lines_body(signed_header(s.info, files), files))  # signed right: only the path is wrong
        assert reply.startswith(f"error: bad path {entry!r} in manifest: protected"), reply
        assert "uota bootstrap" in reply  # says what to do instead
        nothing_staged_after(s)
    assert flash_hashes(board) == before


KIND_CLASHES = {
    # a directory on the board named as a file
    "app": "app is a directory on the board; a file can't replace it",
    # a file on the board that would have to become a directory
    "app/app.py/evil.py": "app/app.py/evil.py needs app/app.py to be a directory, but it is a file on the board",
}


@pytest.mark.parametrize("entry", sorted(KIND_CLASHES))
def test_an_entry_that_would_change_a_file_into_a_directory_or_back_is_refused(
        signed: tuple[VirtualBoard, Path], entry: str) -> None:
    board, project = signed
    before = flash_hashes(board)
    # the set also drops what stands in the way: still refused, it must take two pushes
    top = entry.split("/")[0]
    files = {p: h for p, h in installed(board, project).items() if p != top and not p.startswith(top + "/")}
    files[entry] = SHA
    with open_session(load_config(project)) as s:
        reply = offer(s, lines_body(signed_header(s.info, files), files))
        assert reply.startswith("error: " + KIND_CLASHES[entry]), reply
        assert "in the next" in reply  # how to get there: two pushes
        nothing_staged_after(s)
    assert flash_hashes(board) == before


@pytest.mark.parametrize("entry,holder", [("config/.ota.secrets.json/x", "config/.ota.secrets.json"),
                                          ("boot.py/x", "boot.py"), ("main.py/evil.py", "main.py")])
def test_an_entry_below_a_protected_file_says_it_is_protected(signed: tuple[VirtualBoard, Path], entry: str,
                                                              holder: str) -> None:
    # the file in the way can never be dropped: "drop it in one push" would send the user
    # round in circles
    board, project = signed
    files = {**installed(board, project), entry: SHA}
    with open_session(load_config(project)) as s:
        reply = offer(s, lines_body(signed_header(s.info, files), files))
        assert reply.startswith(f"error: {entry} needs {holder} to be a directory, but it is a file on the board "
                                f"({holder} is protected"), reply
        assert "in one push" not in reply
        nothing_staged_after(s)


def test_a_set_with_a_file_and_files_below_it_is_refused(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    before = flash_hashes(board)
    files = {**installed(board, project), "tools": SHA, "tools-x": SHA, "tools.py": SHA, "tools/run.py": SHA}
    with open_session(load_config(project)) as s:
        reply = offer(s, lines_body(signed_header(s.info, files), files))
        assert reply.startswith("error: manifest lists tools and a file below it (tools/run.py)"), reply
        nothing_staged_after(s)
    assert flash_hashes(board) == before


def test_a_full_push_dropping_installed_entries_that_name_protected_dirs_moves_nothing(
        signed: tuple[VirtualBoard, Path]) -> None:
    """A board attacked before the fix has `config`, `lib/uota`, `data` entries in its
    installed manifest: the next `uota full` drops them, which moved the real directories
    (the OTA stack, the secrets) to /ota_prev/."""
    board, project = signed
    board.power_cut()
    board.write_file("/data/readings.csv", "t,v\n1,2\n")
    manifest = board.read_file("/ota_manifest.txt").decode().splitlines()
    manifest += [f"{p}:{SHA}" for p in ("config", "data", "lib", "lib/uota")]
    board.write_file("/ota_manifest.txt", "".join(line + "\n" for line in sorted(manifest)))
    mark = board.console_mark()
    board.power_on()
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    kept = stack_and_secrets(board)
    assert len([p for p in kept if p.startswith("/lib/uota/")]) > 5 and "/data/readings.csv" in kept
    cfg = load_config(project)
    mark = board.console_mark()
    with open_session(cfg) as s:
        assert push(s, cfg, "full", version="after-drop").committed
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    assert stack_and_secrets(board) == kept
    assert not any(p.startswith(("/ota_prev/lib", "/ota_prev/config", "/ota_prev/data")) for p in flash_hashes(board))
    got = installed(board, project)
    assert not {"config", "data", "lib", "lib/uota"} & set(got)
    # and the board still only takes signed sessions: the signing key is where it was
    with open_session(cfg) as s:
        assert s.info is not None and s.info.signed and s.version() == "after-drop"


def test_wipe_keeps_protected_directories(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    kept = stack_and_secrets(board)
    with open_session(load_config(project)) as s:
        s.wipe()
        assert "app/" not in s.ls("/")  # wiped, and its emptied directory pruned
        assert {"lib/", "config/"} <= set(s.ls("/"))
    assert stack_and_secrets(board) == kept
    cfg = load_config(project)
    mark = board.console_mark()
    with open_session(cfg) as s:
        assert push(s, cfg, "full", version="after-wipe").committed
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)


KEY_COPIES = ["config/.ota.secrets.json.bak", "config/.ota.secrets.json~", "config/secrets.json",
              "config/SECRET.txt", "app/backup/.ota.secrets.json"]


def test_get_never_reads_a_file_holding_a_key(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    secrets = board.read_file("/config/.ota.secrets.json")
    stored = json.loads(secrets)
    # what the board stores for the password (whatever the field is called)
    pw_key = max((v for k, v in stored.items() if k != "signingKey" and isinstance(v, str)), key=len)
    assert len(pw_key) >= 32
    board.power_cut()
    for path in KEY_COPIES:
        board.write_file("/" + path, secrets)
    # innocent names: the signing key across the 1 KB read boundary, the password key upper-cased
    board.write_file("/app/notes.txt", b"x" * 1010 + SIGNING_KEY.encode() + b"y" * 3000)
    board.write_file("/lib/settings.py", f"KEY = {pw_key.upper()!r}\n")
    board.write_file("/app/big.txt", b"z" * 5000)  # the control
    mark = board.console_mark()
    board.power_on()
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    with open_session(load_config(project)) as s:
        for path in KEY_COPIES + ["app/notes.txt", "lib/settings.py"]:
            with pytest.raises(DeviceError, match="protected"):
                s.get(path)
        assert s.get("app/big.txt") == b"z" * 5000
        assert s.ping()
        leaked = b"".join(s.get(p) for p in ("config/ota.json", "main.py"))
    for form in secret_forms(SIGNING_KEY):
        assert form not in leaked
