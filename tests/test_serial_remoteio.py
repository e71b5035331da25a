"""RemoteIO over the serial transport: calls on the UART (the print stream between frames is
covered by test_serial_push's printing-app test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from uota_core.config import load_config
from uota_core.connect import open_session
from uota_core.push import push
from uota_core.remoteio import RemoteCallError
from uota_core.serial_transport import SerialTransportError, open_serial_remoteio
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(90)


def test_calls_over_the_uart(ota_board: VirtualBoard, ota_project: Path) -> None:
    (ota_project / "app" / "app.py").write_text(
        "import time\nimport uota.remoteio as remoteio\n\n"
        "@remoteio.on('add')\ndef _(a=0, b=0):\n    return a + b\n\n"
        "def run():\n    print('app started')\n    n = 0\n    while True:\n"
        "        print('tick', n)\n        n += 1\n        time.sleep(0.05)\n")
    cfg = load_config(ota_project)
    mark = ota_board.console_mark()
    with open_session(cfg) as s:
        push(s, cfg, "fast")
    ota_board.expect("tick", timeout=15, since=mark)
    with open_serial_remoteio(ota_board.serial_port) as rio:
        assert rio.call("add", a=2, b=40) == 42
        assert rio.call("ping") == "pong"
        with pytest.raises(RemoteCallError, match="no handler"):
            rio.call("nope")


def test_remoteio_over_serial_needs_the_stack(board: VirtualBoard) -> None:
    board.wait_repl(timeout=10)
    with pytest.raises(SerialTransportError, match="needs the uota stack on the board"):
        open_serial_remoteio(board.serial_port)


def test_cli_remoteio_call_over_serial(ota_board: VirtualBoard, ota_project: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from uota_core.cli import cli

    monkeypatch.chdir(ota_project)
    result = CliRunner().invoke(cli, ["remoteio", "call", "ping", "--port", ota_board.serial_port, "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == '{"result": "pong"}'
