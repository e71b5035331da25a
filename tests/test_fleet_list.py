"""`uota list` and `uota fast --all` against three virtual boards on loopback.

Other virtual boards (other test runs on this machine) may answer too: every check looks
for this module's boards, picked by their names' random part, never for an exact total."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from serial.tools.list_ports_common import ListPortInfo

from attack_helpers import PASSWORD, SIGNING_KEY, make_project
from uota_core.bootstrap import install_offline
from uota_core.cli import cli
from uota_core.config import load_config
from uota_core.connect import wait_reachable
from uota_core.fleet import discover
from uota_core.fleet.discover import Board, DiscoveryError, merge, parse_subnet, serial_boards
from uota_core.sim import VirtualBoard

LOOPBACK = "127.0.0.0/24"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[VirtualBoard], Path, str]]:
    """Three boards with the stack and one project's secrets, announcing themselves over
    mDNS on 127.0.0.1; (boards, project, the names' shared prefix)."""
    tmp = tmp_path_factory.mktemp("fleet")
    prefix = f"fleet-{secrets.token_hex(3)}"
    project = make_project(tmp / "proj", password=PASSWORD, signing_key=SIGNING_KEY)
    boards: list[VirtualBoard] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
        mp.setenv(discover.LOOPBACK_ONLY_ENV, "1")
        try:
            for n in range(3):
                board = VirtualBoard(tmp / f"b{n}", name=f"{prefix}-{n}", baud=None)
                boards.append(board)
                board.start(power_on=False)
                install_offline(board.write_file, load_config(project))
                board.power_on()
            for board in boards:
                wait_reachable(board.host, 2018)
                assert board.mdns_registered.wait(20), "mDNS registration"
            yield boards, project, prefix
        finally:
            for board in boards:
                print(board.console[-3000:])
                board.stop()


def mine(found: list[Board], prefix: str, boards: list[VirtualBoard]) -> dict[str, Board]:
    ids = {b.uid for b in boards}
    return {b.id: b for b in found if b.id in ids}


@pytest.mark.timeout(60)
def test_each_way_finds_the_three_boards(fleet) -> None:
    boards, _, prefix = fleet
    by_mdns = mine(discover.browse_mdns(timeout=3), prefix, boards)
    by_scan = mine(discover.scan(parse_subnet(LOOPBACK), timeout=3), prefix, boards)
    by_serial = mine(serial_boards(ports=[]), prefix, boards)
    for way, found in (("mdns", by_mdns), ("scan", by_scan), ("serial", by_serial)):
        assert set(found) == {b.uid for b in boards}, way
    for b in boards:
        assert by_mdns[b.uid].name == by_serial[b.uid].name == b.hostname.removesuffix(".local")
        assert by_mdns[b.uid].addresses == by_scan[b.uid].addresses == [b.host]
        assert by_serial[b.uid].port == b.serial_port
        # what the hello says: the fleet's secrets are on the board, nothing pushed yet
        assert (by_scan[b.uid].auth, by_scan[b.uid].signed, by_scan[b.uid].version) == (True, True, "")
        assert by_mdns[b.uid].version == "" and by_mdns[b.uid].virtual


@pytest.mark.timeout(60)
def test_list_merges_the_ways_into_one_row_per_board(fleet, monkeypatch) -> None:
    boards, project, prefix = fleet
    monkeypatch.chdir(project)  # --health authenticates with the project's password
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    result = CliRunner().invoke(cli, ["list", "--subnet", LOOPBACK, "--timeout", "3", "--json", "--health",
                                      "--match", f"{prefix}-*"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(r["id"] for r in rows) == sorted(b.uid for b in boards)
    for row in rows:
        board = next(b for b in boards if b.uid == row["id"])
        assert row["found_by"] == ["mdns", "scan", "serial"]
        assert row["health"] in ("no app", "healthy", "starting"), row  # the board answered: auth worked
        assert (row["addresses"], row["port"], row["auth"], row["signed"]) == ([board.host], board.serial_port,
                                                                               True, True)
    table = CliRunner().invoke(cli, ["list", "--subnet", LOOPBACK, "--timeout", "1", "--match", f"{prefix}-1"])
    assert table.exit_code == 0, table.output
    assert f"{prefix}-1" in table.output and f"{prefix}-2" not in table.output


def test_health_words() -> None:
    from uota_core.fleet.health import describe

    assert describe({"app": "running", "healthy": True, "release": 3, "last": None}) == "healthy"
    assert describe({"app": "crashed-kept", "healthy": False, "release": 3}) == "crashed"
    assert describe({"app": "running", "healthy": True, "release": 2,
                     "last": {"release": 3, "restored": "1.0", "trace": "..."}}) == "rolled back to 1.0"
    assert describe({"app": "none", "healthy": True, "release": 0, "last": None}) == "no app"
    assert describe("nonsense") == "?"


def test_hello_replies_strangers_could_send() -> None:
    from uota_core.fleet.discover import board_from_hello

    good = board_from_hello(b'hello {"proto":5,"id":"24ab","auth":true,"signed":false,"version":"1.2","release":7}',
                            "10.0.0.9")
    assert good is not None and (good.id, good.version, good.release, good.auth, good.signed) == ("24ab", "1.2", 7,
                                                                                               True, False)
    legacy = board_from_hello(b"error: unknown command hello", "10.0.0.9")
    assert legacy is not None and (legacy.id, legacy.addresses, legacy.version) == ("", ["10.0.0.9"], None)
    for junk in (b"SSH-2.0-OpenSSH_9.6", b'hello {"release": "seven"}', b"hello [1, 2]", b"hello {", b""):
        assert board_from_hello(junk, "10.0.0.9") is None, junk


@pytest.mark.timeout(20)
def test_probe_of_a_silent_listener_ends_at_its_timeout() -> None:
    import socket
    import time

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts (the kernel does) and never answers
        started = time.monotonic()
        assert discover.probe("127.0.0.1", timeout=1.0, port=server.getsockname()[1]) is None
        assert time.monotonic() - started < 5


def test_merge_joins_an_idless_row_by_address() -> None:
    rows = merge([Board(id="24aa", name="a", addresses=["10.0.0.5"], found_by=["mdns"]),
                  Board(addresses=["10.0.0.5"], found_by=["scan"]),
                  Board(id="24aa", port="/dev/ttyACM0", found_by=["serial"]),
                  Board(port="/dev/ttyUSB0", found_by=["serial"])])
    assert [(r.id, r.addresses, r.port, r.found_by) for r in rows] == [
        ("", [], "/dev/ttyUSB0", ["serial"]),
        ("24aa", ["10.0.0.5"], "/dev/ttyACM0", ["mdns", "scan", "serial"])]


def _port(device: str, vid: int | None, pid: int | None, serial_number: str | None = None) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number = vid, pid, serial_number
    return info


def test_serial_keeps_esp32_usb_ids_and_takes_the_id_from_native_usb() -> None:
    ports = [_port("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001"),  # CP210x: the bridge's serial, not the chip's
             _port("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:01:02:03"),  # native USB: the MAC is the id
             _port("/dev/ttyACM1", 0x2341, 0x0043, "7"),  # an Arduino: not ours
             _port("/dev/ttyS0", None, None)]
    found = serial_boards(ports, include_virtual=False)
    assert [(b.port, b.id) for b in found] == [("/dev/ttyUSB0", ""), ("/dev/ttyACM0", "f412fa010203")]


@pytest.mark.parametrize("subnet, says", [
    ("10.1.2.0/24", "not loopback"),
    ("192.168.1.0/33", "not an IPv4 subnet"),
    ("nonsense", "CIDR form"),
    ("127.0.0.0/8", "scan at most a /16"),
])
def test_bad_subnets_are_refused_before_any_probe(subnet: str, says: str, monkeypatch) -> None:
    monkeypatch.setenv(discover.LOOPBACK_ONLY_ENV, "1")
    monkeypatch.setattr(discover, "probe", lambda *a, **k: pytest.fail("probed"))
    result = CliRunner().invoke(cli, ["list", "--transport", "wifi_tcp", "--subnet", subnet, "--timeout", "0.2"])
    assert result.exit_code == 1
    assert says in result.output and "error: " in result.output and len(result.output.strip().splitlines()) == 1


def test_tests_scan_loopback_by_default() -> None:
    import ipaddress

    assert parse_subnet(None) == ipaddress.IPv4Network("127.0.0.0/24")  # tests/conftest.py sets the guard


@pytest.mark.timeout(30)
def test_no_board_found_says_where_it_looked(monkeypatch) -> None:
    monkeypatch.setenv(discover.LOOPBACK_ONLY_ENV, "1")
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    result = CliRunner().invoke(cli, ["list", "--subnet", "127.0.0.0/30", "--timeout", "0.5", "--json",
                                      "--match", "no-such-board-*"])
    assert result.exit_code == 1
    assert result.stdout.strip() == "[]"
    assert "no boards matching 'no-such-board-*' found by mDNS, a scan of 127.0.0.0/30" in result.stderr


def test_a_way_that_fails_is_a_warning_not_the_end(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no port list here")

    monkeypatch.setattr(discover, "serial_boards", broken)
    problems: list[str] = []
    assert discover.discover("serial", None, 1.0, problems) == []
    assert problems == ["the serial port list failed: no port list here"]
    result = CliRunner().invoke(cli, ["list", "--transport", "serial"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["warning: the serial port list failed: no port list here",
                                          "error: no boards found on USB serial ports (ESP32 USB ids) or running as "
                                          "virtual boards: plug the board in and check the cable, or look over WiFi "
                                          "with --transport wifi_tcp"]


def test_bad_timeout_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="positive number of seconds"):
        discover.discover("serial", None, 0)


# -- `--all` ---------------------------------------------------------------------------------

def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.timeout(150)
def test_fast_all_pushes_every_board_then_nothing(fleet, monkeypatch) -> None:
    boards, project, prefix = fleet
    monkeypatch.chdir(project)
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    (project / "app" / "stamp.py").write_text(f"STAMP = {secrets.token_hex(8)!r}\n")  # new to every board
    args = ["fast", "--all", "--match", f"{prefix}-*", "--subnet", LOOPBACK, "--timeout", "2", "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json_lines(result.stdout)
    assert sorted(r["id"] for r in rows) == sorted(b.uid for b in boards)
    for row in rows:
        assert row["committed"] and row["sent"] >= 1 and row["app"] == "healthy" and row["error"] is None, row
        assert row["transport"] == "wifi_tcp"
    assert "3 of 3 boards ok" in result.stdout
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert [r["sent"] for r in json_lines(again.stdout)] == [0, 0, 0]
    assert "up to date" in again.stdout


@pytest.mark.timeout(150)
def test_a_board_cut_mid_push_is_reported_and_the_others_complete(fleet, monkeypatch) -> None:
    from uota_core.cli.fleet import find_boards
    from uota_core.fleet.push import push_all, target_of

    boards, project, prefix = fleet
    victim = boards[1]
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    for n in range(4):  # something to send, in several chunks
        (project / "app" / f"blob{n}.py").write_text(f"# {n}\n" + "x = 1\n" * 2000)
    targets = [target_of(b, None) for b in find_boards("wifi_tcp", LOOPBACK, 2, f"{prefix}-*")]
    assert sorted(t.board.id for t in targets) == sorted(b.uid for b in boards)

    def cut(target, path: str, n: int) -> None:
        if target.board.id == victim.uid and victim.running:
            victim.power_cut()  # after its first chunk went out, before the commit

    try:
        done = {d.target.board.id: d for d in push_all(load_config(project), targets, "fast", jobs=3, on_chunk=cut)}
        cut_one = done.pop(victim.uid)
        assert cut_one.exit_code == 1 and cut_one.error and cut_one.result is None, cut_one
        assert cut_one.as_json()["committed"] is False
        for d in done.values():
            assert d.exit_code == 0 and d.result.committed and d.health.app == "healthy", d
            assert {f"app/blob{n}.py" for n in range(4)} <= set(d.result.sent)
    finally:
        if not victim.running:
            victim.power_on()
            wait_reachable(victim.host, 2018)
        for n in range(4):
            (project / "app" / f"blob{n}.py").unlink()


@pytest.mark.timeout(120)
def test_fast_all_over_serial_finds_the_ports_and_pushes_through_them(fleet, monkeypatch) -> None:
    boards, project, prefix = fleet
    monkeypatch.chdir(project)
    (project / "app" / "stamp.py").write_text(f"STAMP = {secrets.token_hex(8)!r}\n")
    result = CliRunner().invoke(cli, ["fast", "--all", "--transport", "serial", "--match", f"{prefix}-*", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json_lines(result.stdout)}
    assert set(rows) == {b.uid for b in boards}
    for board in boards:
        row = rows[board.uid]
        assert (row["transport"], row["where"]) == ("serial", board.serial_port)
        assert row["committed"] and row["sent"] >= 1 and row["app"] == "healthy", row
    for board in boards:  # the next test's push must not race the new app's imports
        wait_reachable(board.host, 2018)


@pytest.mark.timeout(120)
def test_fast_all_reports_a_board_that_is_off_and_exits_1(fleet, monkeypatch) -> None:
    boards, project, prefix = fleet
    off = boards[2]
    monkeypatch.chdir(project)
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    (project / "app" / "stamp.py").write_text(f"STAMP = {secrets.token_hex(8)!r}\n")
    off.power_cut()  # still announced over mDNS (as a board that just lost power is, until its TTL)
    try:
        result = CliRunner().invoke(cli, ["fast", "--all", "--transport", "wifi_tcp", "--match", f"{prefix}-*",
                                          "--subnet", LOOPBACK, "--timeout", "2", "--json"], catch_exceptions=False)
    finally:
        off.power_on()
        wait_reachable(off.host, 2018)
    assert result.exit_code == 1, result.output
    rows = {r["id"]: r for r in json_lines(result.stdout)}
    assert set(rows) == {b.uid for b in boards}
    assert not rows[off.uid]["committed"] and f"cannot reach {off.host}:2018" in rows[off.uid]["error"]
    assert f"FAILED {off.hostname.removesuffix('.local')} ({off.host}): cannot reach" in result.stdout
    assert f"2 of 3 boards ok; failed: {off.hostname.removesuffix('.local')}" in result.stdout
    for board in boards[:2]:
        assert rows[board.uid]["committed"] and rows[board.uid]["app"] == "healthy", rows[board.uid]


@pytest.mark.timeout(90)
def test_fast_all_with_a_file_that_does_not_compile_sends_nothing_and_exits_2(fleet, monkeypatch) -> None:
    boards, project, prefix = fleet
    monkeypatch.chdir(project)
    monkeypatch.setenv("UOTA_MDNS_INTERFACES", "127.0.0.1")
    broken = project / "app" / "broken.py"
    broken.write_text("def f(:\n")
    try:
        result = CliRunner().invoke(cli, ["fast", "--all", "--transport", "wifi_tcp", "--match", f"{prefix}-*",
                                          "--subnet", LOOPBACK, "--timeout", "2", "--json"], catch_exceptions=False)
    finally:
        broken.unlink()
    assert result.exit_code == 2, result.output
    rows = json_lines(result.stdout)
    assert sorted(r["id"] for r in rows) == sorted(b.uid for b in boards)
    assert all(not r["committed"] and "app/broken.py:1" in r["error"] for r in rows), rows


def test_a_stopped_supervisor_leaves_no_serial_row(tmp_path: Path) -> None:
    from uota_core.sim import registry

    state = tmp_path / "gone"
    state.mkdir()
    (state / "lock").write_text("")  # nobody holds it: the supervisor was killed
    pty = tmp_path / "pty"
    pty.write_text("")  # its port still there: only the lock tells
    entry = registry.register("24dead000001", "gone", str(pty), "127.0.0.250", state)
    try:
        assert all(b["uid"] != "24dead000001" for b in registry.running_boards())
    finally:
        registry.unregister(entry)


def test_all_refuses_host_and_port(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(make_project(tmp_path / "p"))
    result = CliRunner().invoke(cli, ["fast", "--all", "--host", "127.0.0.5"])
    assert result.exit_code == 1 and "--all pushes to every board found: drop --host/--port" in result.output
