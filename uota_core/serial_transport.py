"""USB serial transport: raw REPL in, the device's own session code started on the UART.

    link = open_serial_link("/dev/ttyUSB0")          # an OTA Link, as TcpLink is
    rio = open_serial_remoteio("/dev/ttyUSB0")       # calls + print stream on one UART

Entering: Ctrl-C stops the running app's main loop, Ctrl-A gives the raw REPL, and a short
starter runs `uota.transports.uart.serve()`: the installed lib's if the board has it,
otherwise that module's source and the session modules are sent over, so a fresh
MicroPython board can be pushed to without `uota bootstrap`. Leaving: the board resets
after a commit; otherwise the host leaves the raw REPL and soft-resets, so the app runs again.
"""

from __future__ import annotations

import codecs
import json
import re
import secrets
import time
from pathlib import Path

import serial

from uota_core.errors import UotaError
from uota_core.mpy import compile_mpy, mpy_cross_version
from typing import TYPE_CHECKING

from uota_core.link import DEFAULT_TIMEOUT, LinkClosed, LinkError, LinkTimeout
from uota_core.rawrepl import RawRepl, RawReplError
from uota_core.resources import device_dir
from uota_core.serial_link import MAXP, PrintSink, SerialLink, close_frame, port_gone
from uota_core.serialport import open_port

if TYPE_CHECKING:
    from uota_core.remoteio import RemoteIOClient
    from uota_core.seal import Records, SessionKeys

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
UART_VERSION = 1  # device/lib/uota/transports/uart.py VERSION this host speaks

# modules the app may hold state in (RemoteIO handlers): never unloaded
# and our own transport, which the next session reuses rather than compiles again
# (uota.runtime too: the app thread runs in it; uota.boot_guard: its state says whether
# this boot was already healthy)
_KEEP = ("uota.remoteio", "uota.fs", "uota.runtime", "uota.boot_guard", "uota.transports",
         "uota.transports.uart")
# the stopped main loop's code and state in uota.runtime (its poll object holds the closed
# sockets): nothing runs it any more, so free it
_LOOP_CODE = ("main", "_serve", "_guard_tick", "_idle", "_transports", "_poll", "unload")
# what the board has: 2 = a lib with this serial transport, 1 = the session modules only
_PROBE = (
    # the interrupted main loop may have left session modules half loaded: free them first
    # (a package holds its submodules as attributes too: those references go as well)
    "import sys, gc\nfor _m in sorted([m for m in sys.modules if m[:5] == 'uota.' and m not in %r])[::-1]:\n"
    " del sys.modules[_m]\n _p, _, _n = _m.rpartition('.')\n try:\n  delattr(sys.modules[_p], _n)\n"
    " except Exception:\n  pass\nfor _n in %r:\n try:\n  delattr(sys.modules['uota.runtime'], _n)\n"
    " except Exception:\n  pass\nglobals().pop('serve', None)\ngc.collect()\n"
    "try:\n from uota.transports.uart import VERSION as _v\n _h = 2 if _v == %d else 1\n"
    "except ImportError:\n try:\n  import uota.session\n  _h = 1\n except ImportError:\n  _h = 0\n"
    "print('uota-has', _h, getattr(sys.implementation, '_mpy', 0) & 255)\n" % (_KEEP, _LOOP_CODE, UART_VERSION)
)
# printed text reaches RemoteIO listeners a line at a time; a line without its end after
# this long (a prompt, a progress dot) goes as it is
PARTIAL_LINE_WAIT = 0.1
PARTIAL_LINE_MAX = 1024
# device modules never injected: the boot-time stack, and what the serial session doesn't use
_NOT_INJECTED = {"runtime.py", "boot_guard.py", "remoteio.py", "health.py"}


class SerialTransportError(UotaError):
    """The board on the serial port could not be reached or would not start a session."""


class _Repl(RawRepl):
    """The raw REPL client over a port we opened (so busy/missing ports get our errors)."""

    def __init__(self, ser: serial.Serial, port: str, timeout: float) -> None:  # noqa: super not called: adopts ser
        self.port = port
        self.timeout = timeout
        self._rx = bytearray()
        self.serial = ser
        self.mpy_version = 0
        self.key = secrets.randbits(31)  # this session's CRC key (see uart.py)


def _strip(source: bytes) -> bytes:
    """Source without comment-only and blank lines: fewer bytes over a slow line, same code."""
    return b"\n".join(ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")) + b"\n"


def _readable(data: bytes) -> bool:
    return sum(32 <= b < 127 or b in (9, 10, 13) for b in data) >= 0.7 * len(data)


def _diagnose(port: str, seen: bytes, baud: int) -> SerialTransportError:
    if not seen:
        return SerialTransportError(
            f"the board on {port} is not responding: is it powered, running MicroPython, and the right "
            "port? (press its reset button, or reflash MicroPython)")
    if not _readable(seen):
        return SerialTransportError(
            f"{port} answers with unreadable bytes at {baud} baud: wrong baud rate? ESP32 MicroPython "
            "uses 115200 (pass --baud 115200)")
    text = seen.decode(errors="replace").strip()[-120:]
    return SerialTransportError(
        f"the board on {port} does not enter MicroPython's raw REPL (it printed {text!r}): is it running "
        "MicroPython, and is no other program using the port?")


def enter_raw_repl(repl: RawRepl, baud: int, timeout: float = 6.0, patience: float = 30.0) -> None:
    """Interrupt what runs and enter the raw REPL, with a diagnosis if the board won't.

    A board that stays silent for `timeout` s fails; one that keeps printing (a slow boot, a
    busy app, a loaded machine) gets up to `patience` s."""
    ser = repl.serial
    ser.reset_input_buffer()
    ser.write(b"\r\x03")  # stop the app's main loop (the OTA event loop on a uota board)
    seen = bytearray()
    started = time.monotonic()
    deadline = started + timeout
    unstuck = False
    while time.monotonic() < deadline:
        ser.write(b"\r\x01")
        wait_until = time.monotonic() + 0.4
        while time.monotonic() < wait_until:
            got = ser.read(max(1, ser.in_waiting))
            if got:
                seen += got
                if _readable(got):  # garbage (a wrong baud rate) earns no extra time
                    deadline = min(max(deadline, time.monotonic() + timeout), started + patience)
            i = seen.rfind(RAW_BANNER)
            if i >= 0:
                repl._rx = bytearray(seen[i + len(RAW_BANNER):])
                return
        if not unstuck:
            # a serial session of an earlier, interrupted run may still own the UART (Ctrl-C
            # is data there): fill any half-read frame with spaces, then tell it to close
            ser.write(b" " * (MAXP + 10) + close_frame(0) * 2)
            unstuck = True
        if not seen.endswith(b">>> "):
            # no prompt yet: interrupt again (more Ctrl-Cs than needed can land in the
            # app's cleanup and leave it half-done)
            ser.write(b"\x03")
    raise _diagnose(repl.port, bytes(seen), baud)


def _source(name: str) -> bytes:
    return _strip((device_dir() / "lib" / "uota" / "transports" / name).read_bytes())


def _inject_plan(mpy_version: int = 0) -> list[tuple[str, bytes]]:
    """(path, code) of the session modules, each after the modules it imports at load time;
    as .mpy bytecode if the board loads `mpy_version` (compiling 30 KB of source on the
    board would need more heap than it has), else as source."""
    lib = device_dir() / "lib" / "uota"
    sources = {f"uota/{p.name}": p.read_bytes() for p in sorted(lib.glob("*.py")) if p.name not in _NOT_INJECTED}
    deps = {}
    for path, src in sources.items():
        names = set(re.findall(rb"^from uota\.(\w+) import", src, re.M))
        for group in re.findall(rb"^from uota import ([\w, ]+)", src, re.M):
            names.update(n.strip() for n in group.split(b","))
        deps[path] = {f"uota/{n.decode()}.py" for n in names} & sources.keys()
    order: list[str] = ["uota/__init__.py"] if "uota/__init__.py" in sources else []
    while len(order) < len(sources):
        ready = [p for p in sources if p not in order and deps[p] <= set(order)]
        if not ready:
            raise UotaError(f"circular imports among device modules: {sorted(set(sources) - set(order))}")
        order.extend(ready)
    if mpy_version and mpy_cross_version() == mpy_version:
        return [(p[:-3] + ".mpy", compile_mpy(p, sources[p])) for p in order]
    return [(p, _strip(sources[p])) for p in order]


def _launch(repl: _Repl, baud: int, timeout: float, mode: str) -> int:
    """Enter the raw REPL and start serve(); what the board has (see _PROBE).

    The raw REPL has no checksum: a noisy line can garble the code, which then fails to
    compile or raises. That is retried; from serve() on, frames are checked and resent.
    """
    last = ""
    for _ in range(6):  # a noisy line garbles the unchecked raw REPL code now and then
        try:
            enter_raw_repl(repl, baud)
            has, mpy_version = (int(w) for w in repl.exec(_PROBE).decode().split()[-2:])
            if has < 2 and mode != "ota":
                repl.serial.write(b"\x02\x04")  # leave the raw REPL; soft reset: the app runs again
                raise SerialTransportError(f"{repl.port}: RemoteIO over serial needs the uota stack on the "
                                           "board: install it with `uota bootstrap`")
            if has < 2:
                # no serial transport on the board: run ours from source in the REPL's globals
                repl.exec(_source("uart.py") + (_source("uart_inject.py") if has == 0 else b""))
                starter = b"serve(%d, inject)" if has == 0 else b"serve(%d)"
            else:
                starter = b"from uota.transports.uart import serve\nserve(%d)"
            repl.serial.write(starter % repl.key + b"\x04")
            repl._read_until(b"OK", timeout)
            repl.mpy_version = mpy_version
            return has
        except (RawReplError, ValueError) as e:
            last = str(e)
            if "MemoryError" in last:
                # what an earlier session left behind fragments the heap: a soft reset gives
                # a fresh one (in raw mode: boot.py runs, main.py's OTA loop doesn't)
                repl.serial.write(b"\x04")
    raise SerialTransportError(f"{repl.port}: could not start the serial session ({last}): the line seems to "
                               "garble data: check the cable, then retry")


def _start(port: str, baud: int, mode: str, timeout: float, on_print: PrintSink | None,
           link_cls: type[SerialLink]) -> SerialLink:
    ser = open_port(port, baud)
    try:
        repl = _Repl(ser, port, timeout)
        try:
            has = _launch(repl, baud, timeout, mode)
        except (serial.SerialException, OSError) as e:  # unplugged while entering the raw REPL
            raise SerialTransportError(port_gone(port, e)) from None
        link = link_cls(ser, f"board on {port}", timeout, on_print, bytes(repl._rx), repl.key)
        try:
            link.wait_ready(timeout)
            if has == 0:
                for path, src in _inject_plan(repl.mpy_version):
                    link.write(f"mod {path} {len(src)}\n".encode() + src)
                    if link.readline(timeout) != b"ok\n":
                        raise SerialTransportError(f"{port}: the board could not load {path}")
            link.write(f"run {mode}\n".encode())
        except LinkError as e:
            raise SerialTransportError(f"{port}: could not start the session code on the board: {e}") from None
        return link
    except BaseException:
        ser.close()
        raise


class BoardSerialLink(SerialLink):
    """A SerialLink that, when closed, leaves the board running its app again."""

    def _await(self, marker: bytes, timeout: float) -> None:
        seen = bytearray()
        deadline = time.monotonic() + timeout
        self.ser.timeout = 0.05
        while marker not in seen and time.monotonic() < deadline:
            seen += self.ser.read(max(1, self.ser.in_waiting))

    def close(self) -> None:
        try:
            if not self.peer_resets and self.finish():
                # serve() returned to the raw REPL: back to the friendly REPL, clear any
                # stray input from its line (Ctrl-D soft-resets only on an empty line), then
                # a soft reset in friendly mode, which runs boot.py and main.py (the OTA loop
                # and the app) again
                self.ser.write(b"\x02\x03\x04")
                self.ser.flush()
                self._await(b"soft reboot", 1.5)  # closing at once could discard the Ctrl-D
        except (LinkError, serial.SerialException, OSError):
            pass  # the board may be gone; nothing else to do
        super().close()


def open_serial_link(port: str, baud: int = 115200, timeout: float = DEFAULT_TIMEOUT,
                     on_print: PrintSink | None = None) -> SerialLink:
    """An OTA `Link` to the board on `port` (the device session runs on its UART)."""
    return _start(port, baud, "ota", timeout, on_print, BoardSerialLink)


class RemoteIOSerialLink(BoardSerialLink):
    """RemoteIO over the UART: call/result lines come in frames; the app's print() output,
    which arrives between frames, is turned into the `{"p": text}` lines RemoteIOClient reads.
    After the handshake with a password-protected board, the frames carry records."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._records: Records | None = None
        self._plain = bytearray()  # opened records' plaintext, not read yet
        self._text = ""  # printed text not yet handed out: a line may arrive in pieces
        self._text_since = 0.0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.on_print = self._keep

    def _keep(self, data: bytes) -> None:
        if not self._text:
            self._text_since = time.monotonic()
        self._text += self._decoder.decode(data)

    def _printed(self) -> str:
        """Whole lines of printed text; a partial line once it has waited PARTIAL_LINE_WAIT."""
        cut = self._text.rfind("\n") + 1
        if not cut and self._text and (time.monotonic() - self._text_since >= PARTIAL_LINE_WAIT
                                       or len(self._text) >= PARTIAL_LINE_MAX):
            cut = len(self._text)
        if not cut:
            return ""
        text, self._text = self._text[:cut], self._text[cut:]
        self._text_since = time.monotonic()  # what is left started arriving after the cut
        return text.replace("\r\n", "\n")

    def sealed(self, keys: SessionKeys) -> RemoteIOSerialLink:
        # the records travel in the frames; print output stays between them (it is the
        # app's own UART output, which this link can't seal)
        from uota_core.seal import Records

        self._records = Records(keys, self.name)
        return self

    def write(self, data: bytes) -> None:
        super().write(data if self._records is None else self._records.seal(data))

    def _lines(self) -> bytearray:
        """Call/result bytes received: the framed bytes, or the plaintext of whole records."""
        if self._records is None:
            return self._buf
        r = self._records
        while len(self._buf) >= 2 and len(self._buf) >= r.size(bytes(self._buf[:2])):
            k = r.size(bytes(self._buf[:2]))
            self._plain += r.open(bytes(self._buf[:k]))
            del self._buf[:k]
        return self._plain

    def readline(self, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        while True:
            if self.inq:
                self._buf += self.inq
                self.inq.clear()
            lines = self._lines()
            i = lines.find(b"\n")
            if i >= 0:
                line = bytes(lines[:i + 1])
                del lines[:i + 1]
                return line
            text = self._printed()
            if text:
                return json.dumps({"p": text}).encode() + b"\n"
            if self.peer_closed:
                raise LinkClosed(self._ended())
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"{self.name}: nothing from the board in time")
            self._pump(min(deadline, self._text_since + PARTIAL_LINE_WAIT) if self._text else deadline)


def open_serial_remoteio(port: str, baud: int = 115200, timeout: float = DEFAULT_TIMEOUT,
                         password: str = "", key_cache: Path | None = None) -> "RemoteIOClient":
    """A RemoteIOClient whose calls and print stream share the board's UART (needs the uota
    lib); with the board's OTA password, the calls and results travel in records."""
    from uota_core.remoteio import RemoteIOClient

    link = _start(port, baud, "rio", timeout, None, RemoteIOSerialLink)
    return RemoteIOClient(link=link, timeout=timeout, password=password, key_cache=key_cache)
