"""RemoteIO over the serial transport: calls and the print stream multiplexed on the UART,
from the engine and from the CLI; and the RemoteIO line shell of `uota terminal` over TCP."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from uota_core.cli import cli

from uota_core.config import load_config
from uota_core.connect import open_session
from uota_core.push import push
from uota_core.remoteio import RemoteCallError
from uota_core.serial_transport import SerialTransportError, open_serial_remoteio
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(90)


TICKING_APP = ("import time\nimport uota.remoteio as remoteio\n\n"
               "@remoteio.on('add')\ndef _(a=0, b=0):\n    return a + b\n\n"
               "def run():\n    print('app started')\n    n = 0\n    while True:\n"
               "        print('tick', n)\n        n += 1\n        time.sleep(0.05)\n")


@pytest.fixture
def ticking_board(ota_board: VirtualBoard, ota_project: Path) -> VirtualBoard:
    """`ota_board` running an app that prints `tick N` every 50 ms and answers `add`;
    its ota.json names the board's serial port."""
    (ota_project / "app" / "app.py").write_text(TICKING_APP)
    cfg = load_config(ota_project)
    mark = ota_board.console_mark()
    with open_session(cfg) as s:
        push(s, cfg, "fast")
    ota_board.expect("tick", timeout=15, since=mark)
    cfg_path = ota_project / "config" / "ota.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "serialPort": ota_board.serial_port}))
    return ota_board


def ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"tick (\d+)\r?\n", text)]


def test_calls_and_prints_share_the_uart(ticking_board: VirtualBoard) -> None:
    with open_serial_remoteio(ticking_board.serial_port) as rio:
        assert rio.call("add", a=2, b=40) == 42
        assert rio.call("ping") == "pong"
        with pytest.raises(RemoteCallError, match="no handler"):
            rio.call("nope")
        seen = "".join(rio.listen(timeout=1.5))
        assert rio.call("add", a=1, b=1) == 2  # calls still answer after a stretch of prints
        seen += "".join(rio.listen(timeout=0.5))
    got = ticks(seen)
    # 2 s at one line per 50 ms: every line arrives, in order, none lost between the calls
    assert len(got) >= 15 and got == list(range(got[0], got[0] + len(got))), seen[-500:]


def test_remoteio_over_serial_needs_the_stack(board: VirtualBoard) -> None:
    board.wait_repl(timeout=10)
    with pytest.raises(SerialTransportError, match="needs the uota stack on the board"):
        open_serial_remoteio(board.serial_port)


def uota(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def test_cli_remoteio_call_over_serial(ota_board: VirtualBoard, ota_project: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ota_project)
    result = uota("remoteio", "call", "ping", "--port", ota_board.serial_port, "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == '{"result": "pong"}'


def test_cli_remoteio_transport_serial_uses_the_configured_port(ticking_board: VirtualBoard, ota_project: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ota_project)
    result = uota("remoteio", "call", "add", "a=20", "b=22", "--transport", "serial", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == '{"result": 42}'
    result = uota("remoteio", "listen", "--transport", "serial", "--timeout", "2")
    assert result.exit_code == 0, result.output
    got = ticks(result.stdout.replace("\r", ""))
    assert len(got) >= 10 and got == list(range(got[0], got[0] + len(got))), result.stdout[-500:]
    # a TCP port number where a serial port is needed: said plainly, nothing opened
    result = uota("remoteio", "call", "ping", "--transport", "serial", "--port", "2019")
    assert result.exit_code == 1 and "is a TCP port" in result.output


def test_terminal_over_tcp_is_a_remoteio_line_shell(ticking_board: VirtualBoard, ota_project: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ota_project)
    result = uota("terminal", "--transport", "wifi_tcp", stdin="add a=2 b=40\nnope\n\nadd a=1\n\x1d\nadd a=5\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "42" in lines and "1" in lines  # each call's result on a line of its own
    assert any(line.startswith("error:") and "no handler" in line for line in lines)  # the shell went on
    assert "5" not in lines  # Ctrl-] ended it: the last line was never sent
    assert ticks(result.stdout)  # the prints between calls were shown


def test_a_remoteio_session_that_interrupts_boot_still_finds_the_app(ota_board: VirtualBoard,
                                                                      ota_project: Path) -> None:
    (ota_project / "app" / "app.py").write_text(TICKING_APP)
    cfg = load_config(ota_project)
    with open_session(cfg) as s:
        push(s, cfg, "fast")
    ota_board.power_cut()
    # a boot.py that takes its time before it starts the app (as when WiFi is slow to join)
    boot = ota_board.read_file("/boot.py")
    ota_board.write_file("/boot.py", b"import time\nprint('boot waits')\ntime.sleep(5)\n" + boot)
    mark = ota_board.console_mark()
    ota_board.power_on()
    # once it sleeps (a Ctrl-C sooner lands in the compile of boot.py, a busy machine's case)
    ota_board.expect("boot waits", timeout=20, since=mark)
    with open_serial_remoteio(ota_board.serial_port) as rio:
        booted = ota_board.console[mark:]
        assert 'File "boot.py", line 3' in booted and "KeyboardInterrupt" in booted  # it stopped the sleep
        rio.expect("app started", timeout=10)  # the session started the app
        assert rio.call("add", a=2, b=40) == 42  # and its handlers answer
        assert ticks("".join(rio.listen(timeout=0.5)))
    # closing soft-resets the board, which boots in full again
    ota_board.expect("app started", timeout=20, since=mark + ota_board.console[mark:].rindex("raw REPL"))


def test_a_line_printed_in_pieces_reaches_the_listener_before_it_ends(ota_board: VirtualBoard,
                                                                      ota_project: Path) -> None:
    # a progress line: a dot every 20 ms and no newline, so more text keeps arriving
    (ota_project / "app" / "app.py").write_text(
        "import time\n\ndef run():\n    print('app started')\n    while True:\n"
        "        print('.', end='')\n        time.sleep(0.02)\n")
    cfg = load_config(ota_project)
    mark = ota_board.console_mark()
    with open_session(cfg) as s:
        push(s, cfg, "fast")
    ota_board.expect("app started", timeout=15, since=mark)
    with open_serial_remoteio(ota_board.serial_port) as rio:
        t0 = time.monotonic()
        first = next((chunk for chunk in rio.listen(timeout=5) if "." in chunk), "")
        # partial text goes out once it has waited 0.1 s, not when 1,024 characters piled up
        assert first and time.monotonic() - t0 < 1.0 and len(first) < 100, (time.monotonic() - t0, first)
