"""OTA over WiFi TCP against virtual boards: the engine calls the CLI and the plugin use."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attack_helpers import wait_until
from uota_core.config import load_config
from uota_core.connect import open_session, wait_reachable
from uota_core.push import PushError, push
from uota_core.remoteio import RemoteCallError, RemoteIOClient
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)


def do_push(project: Path, mode: str = "fast", board: VirtualBoard | None = None, up: str | None = "app started",
            **kw):
    """Push; with `board`, return once the new app has printed `up` after the reset.

    The virtual board's flash is not safe against two VM threads at once (reported to its
    owners): a session started while the fresh app thread is still importing can read
    garbage. Real boards serialize this under the GIL; here we wait for the app.
    """
    cfg = load_config(project)
    mark = board.console_mark() if board else 0
    with open_session(cfg) as s:
        result = push(s, cfg, mode, **kw)
    if board is not None and up is not None and result.committed:
        board.expect(up, timeout=20, since=mark)
    return result


def device_version(project: Path) -> str:
    with open_session(load_config(project)) as s:
        return s.version()


def test_push_then_call_a_custom_handler_then_incremental(ota_board: VirtualBoard, ota_project: Path) -> None:
    first = do_push(ota_project, board=ota_board)
    assert first.committed and "app/app.py" in first.sent and first.bytes > 0
    with RemoteIOClient(ota_board.host) as rio:
        assert rio.call("hello", name="board") == "hello board"
        assert rio.call("version") == {"version": "1.0.0"}
        assert rio.call("ping") == "pong"
    app = ota_project / "app" / "app.py"
    app.write_text(app.read_text().replace('"hello "', '"hi "'))
    second = do_push(ota_project, version="1.0.1", board=ota_board)
    assert second.sent == ["app/app.py"] and second.bytes == app.stat().st_size
    with RemoteIOClient(ota_board.host) as rio:
        assert rio.call("hello", name="board") == "hi board"
    third = do_push(ota_project, version="1.0.1")
    assert not third.committed and third.bytes == 0 and third.sent == []
    assert ota_board.read_file("/app/app.py") == app.read_bytes()


def test_remoteio_streams_prints_and_reports_handler_errors(ota_board: VirtualBoard, ota_project: Path) -> None:
    (ota_project / "app" / "app.py").write_text(
        "import time\nimport uota.remoteio as remoteio\n\n"
        "@remoteio.on('boom')\ndef _(why='x'):\n    raise ValueError('bad ' + why)\n\n"
        "def run():\n    n = 0\n    while True:\n        print('tick', n)\n        n += 1\n        time.sleep(0.05)\n")
    do_push(ota_project, board=ota_board, up="tick")
    with RemoteIOClient(ota_board.host) as rio:
        rio.expect("tick", timeout=10)
        with pytest.raises(RemoteCallError, match="ValueError: bad thing"):
            rio.call("boom", why="thing")
        with pytest.raises(RemoteCallError, match="no handler"):
            rio.call("nope")
        assert isinstance(rio.call("free_mem"), int)
        ticks = [c for c in rio.listen(timeout=1.0) if c.startswith("tick")]
        assert len(ticks) >= 3


def test_a_stalled_listener_never_blocks_the_app(ota_board: VirtualBoard, ota_project: Path) -> None:
    from uota_core.tcp import TcpLink

    (ota_project / "app" / "app.py").write_text(
        "import uota.remoteio as remoteio\nstate = {'n': 0}\n\n"
        "@remoteio.on('count')\ndef _():\n    return state['n']\n\n"
        "def run():\n    while True:\n        state['n'] += 1\n        print('x' * 200)\n")
    do_push(ota_project, board=ota_board, up="xxxxxxxx")
    stalled = TcpLink(ota_board.host, 2019)  # never reads what the board sends
    try:
        with RemoteIOClient(ota_board.host) as rio:
            first = rio.call("count")
            wait_until(lambda: rio.call("count") > first + 1000, 10, "the app to keep printing")
    finally:
        stalled.close()


def test_boot_guard_rolls_back_an_app_that_crashes_at_import(ota_board: VirtualBoard, ota_project: Path) -> None:
    do_push(ota_project, version="good", board=ota_board)
    (ota_project / "app" / "app.py").write_text("raise RuntimeError('broken build')\n")
    mark = ota_board.console_mark()
    do_push(ota_project, version="bad")
    # the bad app crashes, the board resets itself; after 3 unclean boots it restores "good"
    ota_board.expect(r"restoring the previous app set(.|\n)*app started", timeout=60, since=mark)
    assert ota_board.console[mark:].count("broken build") == 3
    wait_reachable(ota_board.host, 2018, timeout=30)
    assert device_version(ota_project) == "good"
    with RemoteIOClient(ota_board.host) as rio:
        assert rio.call("hello") == "hello world"


def test_a_256k_file_pushes_to_a_128k_heap(ota_board: VirtualBoard, ota_project: Path) -> None:
    assert ota_board.heap == 128 * 1024
    blob = os.urandom(256 * 1024)
    (ota_project / "app" / "blob.bin").write_bytes(blob)
    result = do_push(ota_project, board=ota_board)
    assert "app/blob.bin" in result.sent
    assert ota_board.read_file("/app/blob.bin") == blob


def install_pointing_at(board: VirtualBoard, project: Path, hostname: str) -> None:
    """Install the stack on a powered-off `board` with the project's hostname set, power on."""
    from uota_core.bootstrap import install_offline

    cfg_path = project / "config" / "ota.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["hostname"] = hostname
    cfg_path.write_text(json.dumps(cfg))
    install_offline(board.write_file, load_config(project))
    board.power_on()


def test_out_of_space_mid_push_keeps_the_old_version(tmp_path: Path, ota_project: Path) -> None:
    with VirtualBoard(tmp_path / "small", name="small", baud=None, mdns=False, flash_size=256 * 1024) as b:
        b.power_cut()
        install_pointing_at(b, ota_project, b.host)
        wait_reachable(b.host, 2018)
        do_push(ota_project, version="small-1", board=b)
        (ota_project / "app" / "huge.bin").write_bytes(os.urandom(400 * 1024))
        with pytest.raises(PushError, match="no space left on device.*nothing was installed"):
            do_push(ota_project, version="small-2")
        assert device_version(ota_project) == "small-1"
        with open_session(load_config(ota_project)) as s:
            assert "ota_stage/" not in s.ls("/")
            assert s.ping()


def test_remoteio_requires_the_password_when_the_device_has_one(ota_board: VirtualBoard,
                                                                 ota_project: Path) -> None:
    from uota_core.bootstrap import ota_key_secrets
    from uota_core.session import AuthError

    ota_board.power_cut()
    ota_board.write_file("/config/.ota.secrets.json", json.dumps(ota_key_secrets("pw")))
    ota_board.power_on()
    with pytest.raises(AuthError, match="requires the OTA password"):
        RemoteIOClient(ota_board.host)
    with pytest.raises(AuthError, match="wrong OTA password"):
        RemoteIOClient(ota_board.host, password="nope")
    with RemoteIOClient(ota_board.host, password="pw") as rio:
        assert rio.call("ping") == "pong"
    # a client that skips the handshake gets neither prints nor handler results
    from uota_core.tcp import TcpLink

    with TcpLink(ota_board.host, 2019) as raw:
        assert json.loads(raw.readline())["hello"]["auth"] is True
        raw.write(b'{"id": 1, "call": "ping", "args": {}}\n')
        assert json.loads(raw.readline()) == {"id": 1, "e": "auth required"}


def test_a_dot_local_hostname_resolves_over_mdns(tmp_path: Path, ota_project: Path, monkeypatch) -> None:
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    # a name of this run's own: the same name announced by another run on this machine (a
    # second test session, a CI job beside it) fails the probe (NonUniqueNameException)
    with VirtualBoard(tmp_path / "mdns", name=f"mdnsboard-{os.getpid()}", baud=None) as b:
        assert b.mdns_registered.wait(10), b._mdns and b._mdns.error
        b.power_cut()
        assert b.hostname.endswith(".local")
        install_pointing_at(b, ota_project, b.hostname)
        result = do_push(ota_project)
        assert result.committed


HANGING_APP = "import time\n\ndef run():\n    print('app up')\n    while True:\n        time.sleep(0.05)\n"


def test_unclean_boots_are_counted_until_healthy_after(ota_board: VirtualBoard, ota_project: Path) -> None:
    # healthyAfter is 2 s here (the ota_board fixture); this app never calls mark_healthy()
    do_push(ota_project, version="v1", board=ota_board)
    (ota_project / "app" / "app.py").write_text(HANGING_APP)
    do_push(ota_project, version="v2", board=ota_board, up="app up")

    def boot_and_wait(pattern: str) -> None:
        mark = ota_board.console_mark()
        ota_board.power_cut()
        ota_board.power_on()
        ota_board.expect(pattern, timeout=20, since=mark)

    # booted past healthyAfter every time: never counted, never rolled back
    for _ in range(4):
        boot_and_wait("boot marked healthy")
    wait_reachable(ota_board.host, 2018)
    assert device_version(ota_project) == "v2"
    # cut before healthyAfter three times running: the fourth boot restores v1
    for _ in range(3):
        boot_and_wait("app up")
    boot_and_wait("restoring the previous app set")
    wait_reachable(ota_board.host, 2018)
    assert device_version(ota_project) == "v1"
