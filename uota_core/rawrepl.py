"""A raw-REPL client over a serial port (pyserial): what `uota bootstrap` and `uota info`
use over USB. Ctrl-C stops whatever runs (including the uota event loop), Ctrl-A enters
the raw REPL, code ends with Ctrl-D, and the board answers `OK<stdout>\\x04<stderr>\\x04>`."""

from __future__ import annotations

import binascii
import time

import serial

from uota_core.errors import UotaError
from uota_core.link import Closing


class RawReplError(UotaError):
    """The board did not enter the raw REPL, or the code it ran raised."""


class RawRepl(Closing):
    def __init__(self, port: str, baud: int = 115200, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self._rx = bytearray()
        try:
            self.serial = serial.Serial(port, baud, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError) as e:
            raise RawReplError(f"cannot open serial port {port}: {e}: check the cable and --port") from None

    def close(self) -> None:
        self.serial.close()

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        """Bytes up to and including `marker`; whatever came after stays buffered."""
        deadline = time.monotonic() + timeout
        while (i := self._rx.find(marker)) < 0:
            if time.monotonic() > deadline:
                raise RawReplError(f"{self.port}: no {marker!r} from the board within {timeout:.0f}s "
                                   f"(got {bytes(self._rx[-80:])!r})")
            self._rx += self.serial.read(max(1, self.serial.in_waiting))
        data = bytes(self._rx[: i + len(marker)])
        del self._rx[: i + len(marker)]
        return data

    def enter(self) -> None:
        """Interrupt the running program and switch to the raw REPL."""
        self.serial.write(b"\r\x03\x03")
        deadline = time.monotonic() + self.timeout
        self.serial.reset_input_buffer()
        self._rx.clear()
        while True:
            self.serial.write(b"\r\x01")
            try:
                self._read_until(b"raw REPL; CTRL-B to exit\r\n>", min(2.0, self.timeout))
                return
            except RawReplError:
                if time.monotonic() > deadline:
                    raise RawReplError(f"{self.port}: the board did not enter the raw REPL: is it a "
                                       "MicroPython board, and is no other program using the port?") from None
                self.serial.write(b"\x03")

    def exec(self, code: str | bytes, timeout: float | None = None) -> bytes:
        """Run `code`; its stdout. A traceback raises RawReplError with the last line."""
        if isinstance(code, str):
            code = code.encode()
        for i in range(0, len(code), 256):
            self.serial.write(code[i:i + 256])
        self.serial.write(b"\x04")
        self._read_until(b"OK", self.timeout)
        out = self._read_until(b"\x04", timeout or self.timeout)[:-1]
        err = self._read_until(b"\x04", self.timeout)[:-1]
        self._read_until(b">", self.timeout)
        if err:
            last = err.decode(errors="replace").strip().splitlines()[-1]
            raise RawReplError(f"the board raised: {last}")
        return out

    def eval(self, expr: str) -> str:
        return self.exec(f"print(repr({expr}))").decode().strip()

    def put_file(self, path: str, data: bytes, chunk: int = 2048) -> None:
        """Write `data` to the absolute device `path`, creating its directories."""
        parts = path.strip("/").split("/")
        dirs = ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
        self.exec(
            "import os\n"
            f"for d in {dirs!r}:\n"
            "  try: os.mkdir(d)\n"
            "  except OSError: pass\n"
            f"_f = open({path!r}, 'wb')\n"
            "from binascii import a2b_base64 as _d\n"
        )
        for i in range(0, len(data), chunk):
            b64 = binascii.b2a_base64(data[i:i + chunk], newline=False).decode()
            self.exec(f"_f.write(_d({b64!r}))")
        self.exec("_f.close(); del _f, _d")

    def hard_reset(self) -> None:
        """machine.reset(): there is no reply, the board reboots."""
        self.serial.write(b"import machine; machine.reset()\x04")
        # "OK" means the board has the whole command and runs it; closing the port before
        # that could drop it in transit
        self._read_until(b"OK", self.timeout)
