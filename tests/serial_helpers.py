"""Byte-level serial helpers for tests that check the REPL protocol itself."""

from __future__ import annotations

import subprocess
import sys
import time

import serial

from uota_core.sim import VirtualBoard


def open_port(board: VirtualBoard, baud: int | None = None) -> serial.Serial:
    return serial.Serial(board.serial_port, baud or board.baud or 115200, timeout=0.1)


def read_until(port: serial.Serial, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until `marker` arrives; on timeout fail showing what did arrive."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while not data.endswith(marker):
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} not received within {timeout} s; got {bytes(data)[-500:]!r}")
        data += port.read(1)
    return bytes(data)


def enter_raw(board: VirtualBoard, port: serial.Serial) -> None:
    """Interrupt whatever runs and enter the raw REPL (as mpremote does, without soft reset)."""
    port.write(b"\r\x03\x03")
    board.wait_repl(timeout=10)
    port.reset_input_buffer()
    port.write(b"\r\x01")
    read_until(port, b"raw REPL; CTRL-B to exit\r\n>")


def raw_exec(port: serial.Serial, code: str, timeout: float = 10.0) -> tuple[bytes, bytes]:
    """Run code in the raw REPL; returns (output, error text)."""
    port.write(code.encode() + b"\x04")
    read_until(port, b"OK", timeout)
    out = read_until(port, b"\x04", timeout)[:-1]
    err = read_until(port, b"\x04", timeout)[:-1]
    read_until(port, b">", timeout)
    return out, err


def mpremote(board: VirtualBoard, *args: str, timeout: float = 60) -> str:
    """Run mpremote from PyPI against the board's serial port; its stdout. A board that never
    gives mpremote its raw REPL fails here within `timeout`, with what mpremote printed."""
    try:
        res = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", board.serial_port, *args],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        said = (e.stdout or b"") + (e.stderr or b"")  # bytes, whatever text= said
        raise AssertionError(f"mpremote {' '.join(args)} still waiting after {timeout:.0f} s "
                             f"(it printed {said!r})") from None
    assert res.returncode == 0, f"mpremote {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout
