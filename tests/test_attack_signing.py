"""Attacks on signed updates (DESIGN.md "Signed sessions"): unsigned, wrongly signed,
tampered, replayed, downgraded and cross-device sessions are refused before a byte is
staged, and the signing key can't be read back or leak into a pushed file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from attack_helpers import PASSWORD, SIGNING_KEY, TapProxy, first_push, flash_hashes, healthy_board, secret_forms, wait_until
from uota_core.auth import delete_signature, manifest_signature
from uota_core.config import ConfigError, load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.link import LinkError
from uota_core.push import push
from uota_core.session import AuthError, DeviceError, DeviceInfo, Session
from uota_core.sim import VirtualBoard
from uota_core.tcp import TcpLink

pytestmark = pytest.mark.timeout(180)

NEW_APP = b"print('attacker code')\n"
NEW_SHA = hashlib.sha256(NEW_APP).hexdigest()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory):
    with healthy_board(tmp_path_factory.mktemp("signing"), "signboard", password=PASSWORD,
                       signing_key=SIGNING_KEY) as board_and_project:
        yield board_and_project


def lines_body(header: dict, files: dict[str, str]) -> bytes:
    lines = ["uota-manifest-lines 1 " + json.dumps(header)] + [f"{p}:{files[p]}" for p in sorted(files)]
    return ("\n".join(lines) + "\n").encode()


def offer(s: Session, body: bytes) -> str:
    """start_ota + a raw manifest body; the device's reply line."""
    s.start_ota()
    s.link.write(f"manifest {len(body)}\n".encode() + body)
    return s._reply(timeout=30)


def signed_header(info: DeviceInfo, files: dict[str, str], *, key: str = SIGNING_KEY, dev: str | None = None,
                  nonce: str | None = None, release: int | None = None, version: str = "evil",
                  wipe: bool = False) -> dict:
    release = info.release + 1 if release is None else release
    sig = manifest_signature(key, info.id if dev is None else dev, info.nonce if nonce is None else nonce,
                             release, version, files, wipe)
    return {"version": version, "release": release, "wipe": wipe, "sig": sig}


def nothing_staged_after(s: Session) -> None:
    """After a refused manifest, no `file` is accepted and nothing waits to be committed."""
    with pytest.raises(DeviceError, match="send start_ota and manifest first"):
        s.send_file("app/app.py", len(NEW_APP), NEW_SHA, [NEW_APP])
    with pytest.raises(DeviceError, match="send start_ota and manifest first"):
        s.end_ota()
    assert s.ping()


Forge = Callable[[DeviceInfo], bytes]
FILES = {"app/app.py": NEW_SHA}


def _tampered_hash(info: DeviceInfo) -> bytes:
    header = signed_header(info, FILES)
    return lines_body(header, {"app/app.py": hashlib.sha256(b"other").hexdigest()})


def _tampered_field(field: str, value: object) -> Forge:
    def forge(info: DeviceInfo) -> bytes:
        header = signed_header(info, FILES)
        header[field] = value
        return lines_body(header, FILES)
    return forge


FORGERIES: dict[str, Forge] = {
    "unsigned": lambda info: lines_body({"version": "evil", "release": info.release + 1}, FILES),
    "unsigned-json": lambda info: json.dumps({"version": "evil", "files": FILES, "release": info.release + 1}).encode(),
    "empty-sig": lambda info: lines_body({**signed_header(info, FILES), "sig": ""}, FILES),
    "non-string-sig": lambda info: lines_body({**signed_header(info, FILES), "sig": 0}, FILES),
    "wrong-key": lambda info: lines_body(signed_header(info, FILES, key="guessed-key"), FILES),
    "tampered-file-hash": _tampered_hash,
    "tampered-file-added": lambda info: lines_body(signed_header(info, FILES), {**FILES, "app/x.py": NEW_SHA}),
    "tampered-file-removed": lambda info: lines_body(signed_header(info, {**FILES, "app/x.py": NEW_SHA}), FILES),
    "tampered-version": _tampered_field("version", "other"),
    "tampered-release": _tampered_field("release", 10**6),
    "tampered-wipe": _tampered_field("wipe", True),
    "replayed-nonce": lambda info: lines_body(signed_header(info, FILES, nonce="0" * 32), FILES),
    "downgraded-same-release": lambda info: lines_body(signed_header(info, FILES, release=info.release), FILES),
    "downgraded-older-release": lambda info: lines_body(signed_header(info, FILES, release=info.release - 1), FILES),
    "cross-device": lambda info: lines_body(signed_header(info, FILES, dev="a0b1c2d3e4f5"), FILES),
    "signed-json-wrong-nonce": lambda info: json.dumps(
        {**signed_header(info, FILES, nonce="f" * 32), "files": FILES}).encode(),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_sessions_are_refused_before_a_byte_is_staged(signed: tuple[VirtualBoard, Path], name: str) -> None:
    board, project = signed
    before = flash_hashes(board)
    with open_session(load_config(project)) as s:
        assert s.info is not None and s.info.signed and s.info.release >= 1
        assert offer(s, FORGERIES[name](s.info)) == "sig_mismatch"
        nothing_staged_after(s)
    assert flash_hashes(board) == before  # not even a pending manifest or an empty stage dir


def test_the_same_forgery_signed_right_is_accepted(signed: tuple[VirtualBoard, Path]) -> None:
    # the control: what the forgeries change is exactly what makes them fail
    board, project = signed
    with open_session(load_config(project)) as s:
        assert offer(s, lines_body(signed_header(s.info, FILES), FILES)) == "ok"
        assert s.need() == ["app/app.py"]
        # file content that doesn't match the signed hash is never staged
        with pytest.raises(DeviceError, match="sha256 mismatch"):
            s.send_file("app/app.py", len(NEW_APP), NEW_SHA, [NEW_APP.upper()])
        with pytest.raises(DeviceError, match="not in the manifest"):
            s.send_file("app/app.py", 5, hashlib.sha256(b"hello").hexdigest(), [b"hello"])
        with pytest.raises(DeviceError, match="missing app/app.py"):
            s.end_ota()
        assert "ota_stage" not in s.ls("/") or "app/" not in s.ls("ota_stage")
        assert s.request("abort") == "aborted"
    assert "/ota_stage/app/app.py" not in flash_hashes(board)


def test_a_captured_session_replayed_byte_for_byte_is_refused(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    cfg = load_config(project)
    app = project / "app" / "app.py"
    app.write_text(app.read_text() + "# release captured by the attacker\n")
    with TapProxy((board.host, 2018)) as tap:
        mark = board.console_mark()
        with Session(TcpLink(*tap.addr), cfg.password, cfg.signing_key) as s:
            s.open()
            plain = bytearray()  # what went into the encrypted records: a thief of the password has it
            sealed_write = s.link.write
            s.link.write = lambda data: (plain.extend(data), sealed_write(data))[1]  # type: ignore[method-assign]
            assert push(s, cfg, "fast", version="captured").committed
        captured = bytes(tap.to_server)
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    # the owner moves on to a newer release; the attacker replays the old session
    app.write_text(app.read_text() + "# newer\n")
    mark = board.console_mark()
    with open_session(cfg) as s:
        assert push(s, cfg, "fast", version="newer").committed
    board.expect("boot marked healthy", timeout=30, since=mark)
    wait_reachable(board.host, 2018)
    before = flash_hashes(board)
    boots = board.console.count("rst:")

    # 1. the whole capture, as is: its auth response was for another nonce
    with TcpLink(board.host, 2018) as link:
        link.write(captured)
        replies = []
        try:
            while True:
                replies.append(link.readline(timeout=3).decode().strip())
        except LinkError:
            pass
    assert "error: auth failed" in replies and "ok" not in replies, replies
    # 2. the captured manifest inside a session the attacker authenticated (a stolen password)
    start = plain.index(b"manifest ")
    size_end = plain.index(b"\n", start)
    body = bytes(plain[size_end + 1: size_end + 1 + int(plain[start + 9: size_end])])
    assert b'"sig":' in body
    with open_session(cfg) as s:
        assert offer(s, body) == "sig_mismatch"
        nothing_staged_after(s)
    assert flash_hashes(board) == before
    assert board.console.count("rst:") == boots
    with open_session(cfg) as s:
        assert s.version() == "newer"


SECRET_PATHS = ["config/.ota.secrets.json", "/config/.ota.secrets.json", "//config/.ota.secrets.json",
                "config//.ota.secrets.json", "./config/.ota.secrets.json", "config/./.ota.secrets.json",
                "app/../config/.ota.secrets.json", "config/.ota.secrets.json/", "config\\.ota.secrets.json",
                "config/.ota.secrets.json\x00", " config/.ota.secrets.json ", "ota_boot.json", "ota_manifest.txt"]


def test_the_signing_key_is_never_readable_with_get(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    assert SIGNING_KEY.encode() in board.read_file("/config/.ota.secrets.json")  # it is on the board
    with open_session(load_config(project)) as s:
        for path in SECRET_PATHS:
            with pytest.raises(DeviceError, match="protected|bad path|no such file"):
                s.get(path)
        assert s.ping()
        # and nothing else the device serves carries it: walk every readable file
        seen = 0
        todo = [""]
        while todo:
            d = todo.pop()
            for name in s.ls(d or "/"):
                rel = f"{d}/{name}" if d else name
                if name.endswith("/"):
                    todo.append(rel.rstrip("/"))
                    continue
                try:
                    data = s.get(rel)
                except DeviceError as e:
                    assert "protected" in str(e), e
                    continue
                seen += 1
                for form in secret_forms(SIGNING_KEY):
                    assert form not in data, rel
        assert seen >= 10  # the walk really read the stack, the app and the config
        listing = s._blob("files")
        assert SIGNING_KEY.encode() not in listing


def test_the_signing_key_is_never_in_a_pushed_file(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    cfg_path = project / "config" / "ota.json"
    saved = cfg_path.read_text()
    careless = json.loads(saved)
    careless.update(signingKey=SIGNING_KEY, otaPassword=PASSWORD)  # secrets put in the wrong file
    cfg_path.write_text(json.dumps(careless))
    try:
        cfg = load_config(project)
        with TapProxy((board.host, 2018)) as tap:
            mark = board.console_mark()
            with Session(TcpLink(*tap.addr), cfg.password, cfg.signing_key) as s:
                s.open()
                result = push(s, cfg, "full", version="careless")
            assert result.committed and "config/ota.json" in result.sent
            board.expect("boot marked healthy", timeout=30, since=mark)
            captured = bytes(tap.to_server)
    finally:
        cfg_path.write_text(saved)
    for form in secret_forms(SIGNING_KEY) + secret_forms(PASSWORD):
        assert form not in captured
    pushed = board.read_file("/config/ota.json")
    assert SIGNING_KEY.encode() not in pushed and PASSWORD.encode() not in pushed
    assert json.loads(pushed)["version"] == careless["version"]
    wait_reachable(board.host, 2018)


def test_an_unsigned_host_is_told_what_is_wrong(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    with Session(TcpLink(board.host, 2018), PASSWORD, "") as s:
        s.open()
        with pytest.raises(DeviceError, match="only accepts signed"):
            push(s, load_config(project), "fast", version="unsigned-host")
    with Session(TcpLink(board.host, 2018), "", SIGNING_KEY) as s:
        with pytest.raises(AuthError):
            s.open()
    assert wait_until(lambda: board.running, 1, "the board to stay up")


# -- issue 11, break 4: a signed manifest can't be reshaped ------------------------------

def raw(s: Session, line: str) -> str:
    """One command line as a raw client sends it; the reply line, errors included."""
    s._send_line(line)
    return s._reply(timeout=30)


def test_a_file_line_moved_into_the_version_is_refused(signed: tuple[VirtualBoard, Path]) -> None:
    """The owner's signature over {app/app.py, main.py}, reshaped by someone on the path
    (who has the password, not the key): app/app.py's line moved into the version. With
    the newline-joined v1 payload the signed bytes stayed identical and the board
    committed a set without app/app.py."""
    board, project = signed
    before = flash_hashes(board)
    with open_session(load_config(project)) as s:
        installed = s.installed().files
        first = sorted(installed)[0]
        header = signed_header(s.info, installed, version="reshaped")
        rest = {p: h for p, h in installed.items() if p != first}
        header["version"] = f"reshaped\n{first}:{installed[first]}"
        reply = offer(s, lines_body(header, rest))
        assert reply.startswith("error: bad version"), reply
        nothing_staged_after(s)
    assert flash_hashes(board) == before


HOSTILE_VERSIONS = ["1.0\nx", "1.0:x", "1.0;x", '1.0"x', "1.0'x", "1.0 x", "1.0,x", "1.0\u00e9", "1.0\x00",
                    "", "x" * 33, "\u2028"]


def test_versions_outside_the_charset_are_refused_even_signed(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    cfg = load_config(project)
    before = flash_hashes(board)
    for version in HOSTILE_VERSIONS:
        with open_session(cfg) as s:
            reply = offer(s, lines_body(signed_header(s.info, FILES, version=version), FILES))
            assert reply.startswith("error: bad version"), (version, reply)
            nothing_staged_after(s)
        # the host says so before it starts an OTA session at all
        with open_session(cfg) as s, pytest.raises(ConfigError, match="bad version.*1 to 32 characters"):
            push(s, cfg, "fast", version=version)
    assert flash_hashes(board) == before
    with open_session(cfg) as s:  # the control: the longest, widest legal version is accepted
        assert offer(s, lines_body(signed_header(s.info, FILES, version="09AZaz._+-" * 3 + "v1"), FILES)) == "ok"
        assert s.request("abort") == "aborted"


ODD_NAMES = ["app/a:b.py", "app/q\"uo'te.txt", "app/sp ace,comma.txt", "app/donn\u00e9es_\u65e5\u672c.txt", "app/12:x,.txt"]


def test_paths_holding_colons_quotes_and_non_ascii_push_exactly(signed: tuple[VirtualBoard, Path]) -> None:
    board, project = signed
    cfg = load_config(project)
    for i, name in enumerate(ODD_NAMES):
        (project / name).write_text(f"X = {i}\n")
    try:
        mark = board.console_mark()
        with open_session(cfg) as s:
            result = push(s, cfg, "fast", version="odd-names")
        assert result.committed and set(ODD_NAMES) <= set(result.sent)
        board.expect("boot marked healthy", timeout=30, since=mark)
        wait_reachable(board.host, 2018)
        with open_session(cfg) as s:
            assert s.version() == "odd-names"
            files = s.installed().files
        for i, name in enumerate(ODD_NAMES):
            assert files[name] == hashlib.sha256(f"X = {i}\n".encode()).hexdigest()
            assert board.read_file("/" + name) == f"X = {i}\n".encode()
        # ";" and newlines never make a path: refused even when signed (JSON carries the newline)
        with open_session(cfg) as s:
            for bad in ("app/a;b.py", "app/a\nb.py"):
                bad_files = {bad: NEW_SHA}
                body = json.dumps({**signed_header(s.info, bad_files), "files": bad_files}).encode()
                assert offer(s, body).startswith("error: bad path"), bad
                nothing_staged_after(s)
    finally:
        for name in ODD_NAMES:
            (project / name).unlink()


# -- issue 11, break 2: the password alone can't delete, so can't force a downgrade ------

def test_deletes_need_a_signature_bound_to_the_session(signed: tuple[VirtualBoard, Path]) -> None:
    """`rm app/app.py` then `reset` crashed the app and the boot guard restored the older
    set. With a signing key, rm and wipe need the owner's signature for this session,
    device, release and path; a holder of the password gets a clear refusal."""
    board, project = signed
    cfg = load_config(project)
    extra = project / "app" / "extra.txt"
    extra.write_text("delete me\n")
    try:
        first_push(project, board, "boot marked healthy", version="with-extra")
        before = flash_hashes(board)
        with open_session(cfg) as s:
            i = s.info
            assert i is not None and i.signed
            other = manifest_signature(SIGNING_KEY, i.id, i.nonce, i.release, "x", {})  # a manifest's
            forged = {  # signatures the attacker could have captured, or guessed
                "rm app/app.py": "rm needs a signature",
                "rm app/app.py;": "rm needs a signature",
                "rm app/app.py;" + "0" * 64: "rm signature refused",
                "rm app/app.py;" + delete_signature(SIGNING_KEY, i.id, i.nonce, i.release, "app/extra.txt"):
                    "rm signature refused",
                "rm app/app.py;" + delete_signature(SIGNING_KEY, i.id, "f" * 32, i.release, "app/app.py"):
                    "rm signature refused",
                "rm app/app.py;" + delete_signature(SIGNING_KEY, i.id, i.nonce, i.release - 1, "app/app.py"):
                    "rm signature refused",
                "rm app/app.py;" + delete_signature(SIGNING_KEY, "a0b1c2d3e4f5", i.nonce, i.release, "app/app.py"):
                    "rm signature refused",
                "rm app/app.py;" + delete_signature(SIGNING_KEY, i.id, i.nonce, i.release, None): "rm signature refused",
                "rm app/app.py;" + other: "rm signature refused",
                "wipe": "wipe needs a signature",
                "wipe " + delete_signature(SIGNING_KEY, i.id, i.nonce, i.release, "app/app.py"): "wipe signature refused",
                "wipe " + delete_signature(SIGNING_KEY, i.id, "f" * 32, i.release, None): "wipe signature refused",
                "wipe " + delete_signature("guessed-key", i.id, i.nonce, i.release, None): "wipe signature refused",
            }
            for line, why in forged.items():
                assert raw(s, line).startswith(f"error: {why}"), line
            assert "signingKey" in raw(s, "rm app/app.py")  # says what to do
        with Session(TcpLink(board.host, 2018), PASSWORD, "") as s:
            s.open()  # the host without the key says so before sending anything
            with pytest.raises(DeviceError, match="needs a signature.*signingKey"):
                s.rm("app/app.py")
            with pytest.raises(DeviceError, match="needs a signature"):
                s.wipe()
            mark = board.console_mark()
            s.reset()  # and the reset that followed the rm in the attack changes nothing
        board.expect("boot marked healthy", timeout=30, since=mark)
        wait_reachable(board.host, 2018)
        after = flash_hashes(board)
        assert {p: h for p, h in after.items() if p != "/ota_boot.json"} == \
            {p: h for p, h in before.items() if p != "/ota_boot.json"}
        # the owner's host signs its deletes
        with open_session(cfg) as s:
            assert s.version() == "with-extra"
            s.rm("/app/extra.txt")
            assert "app/extra.txt" not in s.installed().files
            with pytest.raises(DeviceError, match="no such file"):
                s.get("app/extra.txt")
        assert "restoring the previous app set" not in board.console
    finally:
        extra.unlink()
