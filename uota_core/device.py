"""`Device`: one board reached over one transport, with its print() output recorded.

The facade the pytest plugin's fixtures (and scripts) use instead of juggling sessions,
RemoteIO clients and print streams themselves:

    with Device(cfg, "wifi_tcp", host="192.168.1.42") as dev:
        dev.push()                                # the fast set, only what changed
        dev.call("set_led", state=True)           # a RemoteIO handler
        dev.expect(r"led on", timeout=2)          # the app's print() output

Over `wifi_tcp` the print output comes from a RemoteIO listener of its own (TCP 2019) that
follows the board across resets; over `serial` from the text the board prints between the
frames of the RemoteIO session on its UART. Over serial the OTA commands (`ls`, `get`,
`reset`, `push`) need the UART in OTA mode: the RemoteIO session is closed for them (the
board soft-resets, so the app starts again) and reopened by the next call.
"""

from __future__ import annotations

import json
import re
import select
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from uota_core.config import Config
from uota_core.connect import wait_reachable
from uota_core.errors import BoardError, UotaError, UotaWarning
from uota_core.link import Closing, LinkError, LinkTimeout
from uota_core.outputlog import OutputLog
from uota_core.push import PushResult, push
from uota_core.remoteio import RemoteIOClient
from uota_core.session import DeviceInfo, Session

SUPPORTED_TRANSPORTS = ("wifi_tcp", "serial")
MAX_OUTPUT = 4 * 1024 * 1024  # characters kept in memory per device
SETTLE_QUIET = 0.25  # a rebooting board that printed nothing for this long has finished boot.py
SETTLE_MAX = 5.0


class OutputTimeout(UotaError, AssertionError):
    """The expected text did not appear in the device's output in time."""


class DeviceOutput(OutputLog[str]):
    """Everything a device print()ed, as text: thread-safe, waitable, bounded."""

    def __init__(self) -> None:
        super().__init__("", MAX_OUTPUT)

    def append(self, text: str) -> None:
        if text:
            self._append(text.replace("\r\n", "\n"))

    def since(self, mark: int = 0) -> str:
        return self._since(mark)

    @property
    def text(self) -> str:
        return self.since(0)

    def wait_more(self, since: int, timeout: float) -> tuple[str, int]:
        """Output after offset `since`, waiting up to `timeout` for some: (text, new offset)."""
        with self._cond:
            self._wait(lambda: True if self.mark() > since else None, timeout)
            return self._since(since), self.mark()

    def wait(self, pattern: str, timeout: float, since: int = 0) -> tuple[re.Match[str], int]:
        """Wait for regex `pattern` after offset `since`: (the match, the offset just past it).

        A timeout raises OutputTimeout quoting the output seen since `since`.
        """
        found = self._search(re.compile(pattern), since, timeout)
        if found is None:
            seen = self._since(since)
            shown = seen if len(seen) <= 3000 else "...\n" + seen[-3000:]
            raise OutputTimeout(f"{pattern!r} not printed by the device within {timeout:g} s; "
                                f"its output so far:\n{shown or '(nothing)'}")
        return found


class Device(Closing):
    """One board over one transport (`wifi_tcp` or `serial`)."""

    def __init__(self, cfg: Config, transport: str, host: str | None = None, serial_port: str | None = None,
                 baud: int | None = None, timeout: float = 10.0, name: str = "") -> None:
        if transport not in SUPPORTED_TRANSPORTS:
            raise UotaError(f"transport {transport!r} is not supported: use one of {', '.join(SUPPORTED_TRANSPORTS)}")
        if transport == "serial" and not serial_port:
            raise UotaError("the serial transport needs a serial port (e.g. /dev/ttyUSB0)")
        self.cfg = cfg
        self.transport = transport
        self.host = host or str(cfg["hostname"])
        self.serial_port = serial_port
        self.baud = baud or int(cfg.get("serialBaud", 115200))
        self.timeout = timeout
        self.name = name or (serial_port if transport == "serial" else self.host) or "board"
        self.output = DeviceOutput()
        self.cursor = 0  # where the next expect() starts looking
        self._rio: RemoteIOClient | None = None
        self._io = threading.Lock()  # one user of the RemoteIO client at a time
        self._state = threading.Lock()
        self._callers = 0
        self._closed = threading.Event()
        self._listening = threading.Event()
        target = self._listen_tcp if transport == "wifi_tcp" else self._pump_serial
        self._reader = threading.Thread(target=target, name=f"uota-output-{self.name}", daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<Device {self.name} over {self.transport}>"

    @property
    def log(self) -> str:
        """All print() output recorded so far."""
        return self.output.text

    def close(self) -> None:
        self._closed.set()
        with self._using_rio():
            self._drop_rio()
        self._reader.join(timeout=2)

    # -- print output -------------------------------------------------------------------

    def expect(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Wait for regex `pattern` in the output after the previous match (or the cursor)."""
        self.stream()
        m, self.cursor = self.output.wait(pattern, timeout, self.cursor)
        return m

    def stream(self) -> None:
        """Make sure print output flows into `output` (over serial it only does while a
        RemoteIO session runs on the UART; over TCP the listener is always on)."""
        if self.transport == "serial" and self._rio is None:
            with self._using_rio():
                self._remoteio()

    def _listen_tcp(self) -> None:
        """Keep a RemoteIO listener connected (across resets), recording every print."""
        port = int(self.cfg["remoteioPort"])
        while not self._closed.is_set():
            try:
                client = RemoteIOClient(self.host, port, timeout=2.0, password=self.cfg.password,
                                        key_cache=self.cfg.key_cache)
            except (LinkError, OSError):
                self._closed.wait(0.1)  # the board is resetting or not up yet: retry
                continue
            except UotaError as e:  # a wrong password: retrying would not help
                self.output.append(f"[uota: RemoteIO listener stopped: {e}]\n")
                return
            self._listening.set()
            try:
                self._record_frames(client)
            finally:
                self._listening.clear()
                client.close()

    def _record_frames(self, client: RemoteIOClient) -> None:
        while not self._closed.is_set():
            try:
                line = client.link.readline(0.2)
            except LinkTimeout:
                continue
            except LinkError:
                return  # the board reset or went away: reconnect
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if isinstance(frame, dict) and "p" in frame:
                self.output.append(str(frame["p"]))

    def _pump_serial(self) -> None:
        """Collect what the board prints on its UART between RemoteIO calls."""
        while not self._closed.is_set():
            rio = self._rio
            if rio is None or self._callers:
                self._closed.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([rio.link.ser], [], [], 0.05)  # type: ignore[attr-defined]
            except (OSError, ValueError):
                ready = []  # the port was closed under us: look again
            if not ready or self._callers:
                continue
            with self._io:
                if self._rio is rio and not self._callers:
                    self._collect(rio, 0.005)

    def _collect(self, rio: RemoteIOClient, timeout: float) -> None:
        try:
            for chunk in rio.listen(timeout):
                self.output.append(chunk)
        except LinkError:
            pass  # the next call reports a dead link

    # -- RemoteIO -----------------------------------------------------------------------

    @contextmanager
    def _using_rio(self) -> Iterator[None]:
        with self._state:
            self._callers += 1
        try:
            with self._io:
                yield
        finally:
            with self._state:
                self._callers -= 1

    def _remoteio(self) -> RemoteIOClient:
        if self._rio is None:
            if self.transport == "serial":
                from uota_core.serial_transport import open_serial_remoteio

                assert self.serial_port
                self._rio = open_serial_remoteio(self.serial_port, self.baud, self.timeout, self.cfg.password,
                                                 self.cfg.key_cache)
            else:
                self._rio = RemoteIOClient(self.host, int(self.cfg["remoteioPort"]), timeout=self.timeout,
                                           password=self.cfg.password, key_cache=self.cfg.key_cache)
        return self._rio

    def _drop_rio(self) -> None:
        if self._rio is not None:
            rio, self._rio = self._rio, None
            if self.transport == "serial":
                self._collect(rio, 0.005)
            rio.close()
            if self.transport == "serial":
                self._settle()

    def _settle(self) -> None:
        """Closing a serial session soft-resets the board: record what it prints while it
        boots (expect() sees the app's start-up lines) until it has gone quiet, so the next
        session doesn't cut boot.py short either."""
        from uota_core.serialport import open_port

        assert self.serial_port
        try:
            ser = open_port(self.serial_port, self.baud)
        except UotaError:
            return  # the next session reports the port's problem
        try:
            now = time.monotonic()
            deadline, quiet_since = now + SETTLE_MAX, now
            while now < deadline and now - quiet_since < SETTLE_QUIET:
                data = ser.read(max(1, ser.in_waiting))
                now = time.monotonic()
                if data:
                    self.output.append(data.decode(errors="replace"))
                    quiet_since = now
        finally:
            ser.close()

    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Run RemoteIO handler `name` on the device; its return value."""
        with self._using_rio():
            for attempt in (1, 2):
                rio = self._remoteio()
                try:
                    result = rio.call(name, **kwargs)
                    break
                except LinkTimeout:
                    raise
                except LinkError:
                    # the board reset since the last call (a push, reset(), a crash): reconnect once
                    self._drop_rio()
                    if attempt == 2:
                        raise
                    self._wait_transport(self.timeout)
            if self.transport == "serial":
                self._collect(rio, 0.002)
            else:
                rio._prints.clear()  # the listener connection records these prints
            return result

    # -- OTA commands ---------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An authenticated OTA session (over serial, the RemoteIO session is closed first)."""
        with self._using_rio():
            if self.transport == "serial":
                from uota_core.serial_transport import open_serial_link

                self._drop_rio()
                assert self.serial_port
                link = open_serial_link(self.serial_port, self.baud, self.timeout,
                                        on_print=lambda b: self.output.append(b.decode(errors="replace")))
            else:
                from uota_core.tcp import TcpLink

                link = TcpLink(self.host, int(self.cfg["port"]), timeout=self.timeout)
            try:
                with Session(link, self.cfg.password, self.cfg.signing_key, self.cfg.key_cache) as s:
                    s.open()
                    yield s
            finally:
                if self.transport == "serial":
                    self._settle()

    def info(self) -> DeviceInfo | None:
        """The device's hello: id, firmware, installed version (None for a pre-hello device)."""
        with self.session() as s:
            return s.info

    def ping(self) -> bool:
        if self.transport == "serial":
            return self.call("ping") == "pong"  # RemoteIO's builtin: no OTA session needed
        with self.session() as s:
            return s.ping()

    def version(self) -> str:
        if self.transport == "serial":
            return str(self.call("version").get("version", ""))
        with self.session() as s:
            return s.version()

    def ls(self, path: str = "/") -> list[str]:
        with self.session() as s:
            return s.ls(path)

    def get(self, path: str) -> bytes:
        with self.session() as s:
            return s.get(path)

    def reset(self, timeout: float = 15.0) -> None:
        """machine.reset() on the device; returns once it is ready again."""
        with self.session() as s:
            s.reset()
        self.wait_ready(timeout)

    def push(self, files: list[str] | None = None, mode: str = "fast", version: str | None = None,
             wipe: bool = False, wait: bool = True) -> PushResult:
        """Push the project's `mode` set (or only `files`, project-relative globs); after a
        commit, waits until the app is healthy (with `wait`: AppNotHealthy, with the board's
        traceback, if it crashed or was rolled back) and the board answers again."""
        cfg = self.cfg
        if files is not None:
            globs = list(files)
            cfg = replace(cfg, values={**cfg.values, "fastOtaFiles": globs, "fullOtaFiles": globs})
        mark = self.output.mark()
        with self.session() as s:
            result = push(s, cfg, mode, version, wipe=wipe)
        for warning in result.warnings:  # e.g. mpyFiles sent as .py: shown in pytest's summary
            warnings.warn(warning, UotaWarning, stacklevel=2)
        if result.committed:
            if wait and result.release:
                self._check_app(result, mark)
            self.wait_ready()
        return result

    def _check_app(self, result: PushResult, mark: int) -> None:
        """Wait for the verdict on the app `result` installed (uota_core.health)."""
        from uota_core.health import HEALTHY, AppNotHealthy, ConsoleQuery, wait_for_app

        healthy_after = float(self.cfg.get("healthyAfter", 10))
        if self.transport == "serial":
            assert self.serial_port
            with self._using_rio():  # the port is ours: a RemoteIO session would stop the boot
                query = ConsoleQuery(self.serial_port, self.baud, result.release, seen=self.output.since(mark),
                                     sink=self.output.append)
                try:
                    health = wait_for_app(query, result.release, result.version, healthy_after)
                finally:
                    query.close()
        else:
            health = wait_for_app(lambda: self.call("uota_health"), result.release, result.version, healthy_after)
        if health.app != HEALTHY:
            raise AppNotHealthy(health)

    # -- readiness ----------------------------------------------------------------------

    def _wait_transport(self, timeout: float) -> None:
        if self.transport == "wifi_tcp":
            wait_reachable(self.host, int(self.cfg["port"]), timeout)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until the board answers again (after a reset, a push, a power cycle)."""
        deadline = time.monotonic() + timeout
        if self.transport == "wifi_tcp":
            wait_reachable(self.host, int(self.cfg["port"]), timeout)
            if not self._listening.wait(max(0.0, deadline - time.monotonic())):
                raise BoardError(f"{self.host}: RemoteIO (port {self.cfg['remoteioPort']}) did not come up "
                                 f"within {timeout:g} s")
            return
        while True:
            try:
                if self.ping():
                    return
            except UotaError as e:
                if time.monotonic() >= deadline:
                    raise BoardError(f"the board on {self.serial_port} is not ready after {timeout:g} s: {e}") from None
                with self._using_rio():
                    self._drop_rio()
                self._closed.wait(0.2)  # the board is still booting: ask again shortly
