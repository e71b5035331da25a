"""The board this pytest process tests: a virtual board it runs, or a real board it claimed.

Started once per process (per pytest-xdist worker), before the first device test; every
problem that would fail all device tests (no VM, a bad ota.json, an unreachable board)
is raised here as one `TargetError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from uota_core.boardpool import BoardClaim, claim_board
from uota_core.config import Config, load_config
from uota_core.device import SUPPORTED_TRANSPORTS, Device
from uota_core.errors import UotaError
from uota_core.push import PushResult
from uota_core.session import DeviceInfo
from uota_core.sim import VirtualBoard

from pytest_uota.options import Settings

BLE_REASON = "BLE transport not available in this version of uota"
HTTP_PULL_REASON = "http_pull is the device polling a server, not a link tests can talk over"
BOOT_TIMEOUT = 20.0


class TargetError(UotaError):
    """The board cannot be used at all: the session stops with this message."""


def load_project_config(settings: Settings) -> Config:
    """The project's config; its root is the directory above config/ota.json."""
    path = settings.config_path
    if not path.is_file():
        raise TargetError(f"{path} not found: run `uota init` in the firmware project, or point "
                          "--uota-config at its config/ota.json")
    root = path.parent.parent if path.parent.name == "config" and path.name == "ota.json" else None
    if root is None:
        raise TargetError(f"--uota-config {path}: expected a path ending in config/ota.json")
    return load_config(root)


def selected_transports(settings: Settings, cfg: Config | None) -> list[str]:
    """The transports tests run over: --uota-transport, else the config's (default wifi_tcp)."""
    if settings.transports:
        return list(dict.fromkeys(settings.transports))
    listed = list(cfg["transports"]) if cfg is not None else ["wifi_tcp"]
    return [t for t in dict.fromkeys(listed) if t != "http_pull"] or ["wifi_tcp"]


def worker_number(worker_id: str) -> int:
    """0 for `gw0` (pytest-xdist) or a plain run."""
    digits = "".join(ch for ch in worker_id if ch.isdigit())
    return int(digits) if digits else 0


class Target:
    def __init__(self, settings: Settings, cfg: Config, worker_id: str = "master") -> None:
        self.settings = settings
        self.cfg = cfg
        self.worker_id = worker_id
        self.transports = selected_transports(settings, cfg)
        self.unavailable: dict[str, str] = {}
        self.board: VirtualBoard | None = None
        self.host: str | None = None
        self.serial_port: str | None = None
        self.baud: int | None = None
        self.info: DeviceInfo | None = None
        self.pushed: PushResult | None = None
        self.startup_seconds = 0.0
        self._claim: BoardClaim | None = None
        self._state_dir: Path | None = None
        self.devices: list[Device] = []

    @property
    def is_virtual(self) -> bool:
        return not self.settings.wants_real_board

    # -- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        try:
            if self.is_virtual:
                self._start_virtual()
            else:
                self._claim_real()
            self._check_transports()
            self._prepare()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _start_virtual(self) -> None:
        from uota_core.bootstrap import install_offline

        self._state_dir = Path(tempfile.mkdtemp(prefix=f"uota-{self.worker_id}-"))
        board = VirtualBoard(self._state_dir / "board", name=f"uota-{self.worker_id}", mdns=False)
        board.start(power_on=False)
        self.board = board
        install_offline(board.write_file, self.cfg)  # what `uota bootstrap` installs over USB
        board.power_on(BOOT_TIMEOUT)
        self.host, self.serial_port, self.baud = board.host, board.serial_port, board.baud

    def _claim_real(self) -> None:
        slots = self.settings.slots
        names = [" ".join(x for x in slot if x) for slot in slots]
        claim = claim_board(names, preferred=worker_number(self.worker_id))
        self._claim = claim
        port, host = slots[claim.index]
        self.serial_port = port or self.cfg.get("serialPort")
        self.host = host or str(self.cfg["hostname"])
        self.baud = int(self.cfg.get("serialBaud", 115200))

    def _check_transports(self) -> None:
        for transport in self.transports:
            reason = self._why_unavailable(transport)
            if reason:
                self.unavailable[transport] = reason
        usable = [t for t in self.transports if t not in self.unavailable]
        if not usable:
            why = "; ".join(f"{t}: {r}" for t, r in self.unavailable.items())
            raise TargetError(f"the board cannot be reached over any selected transport: {why}")
        if not self.is_virtual and self.settings.hosts and "wifi_tcp" in self.unavailable:
            raise TargetError(self.unavailable["wifi_tcp"])  # the board asked for by --uota-host

    def _why_unavailable(self, transport: str) -> str | None:
        if transport == "ble":
            return BLE_REASON
        if transport == "http_pull":
            return HTTP_PULL_REASON
        if transport == "serial":
            if not self.serial_port:
                return "no serial port: pass --uota-port (or set serialPort in config/ota.json)"
            if not os.path.exists(self.serial_port):
                return f"serial port {self.serial_port} does not exist: check the cable and --uota-port"
            return None
        if transport == "wifi_tcp":
            if self.board is not None and "wifi_tcp" not in self.cfg["transports"]:
                return ("the board runs no TCP server: add wifi_tcp to transports in config/ota.json")
            from uota_core.connect import wait_reachable

            wait = BOOT_TIMEOUT if self.board is not None else 5.0
            try:
                wait_reachable(str(self.host), int(self.cfg["port"]), wait)
            except UotaError as e:
                return str(e)
            return None
        return f"unknown transport {transport!r}"

    def _prepare(self) -> None:
        """The once-per-session push (--uota-push), and the device's hello for the header."""
        usable = [t for t in SUPPORTED_TRANSPORTS if t in self.transports and t not in self.unavailable]
        device = self.open_device(usable[0])
        try:
            if self.settings.push != "none":
                self.pushed = device.push(mode=self.settings.push)
            self.info = device.info()
        except UotaError as e:
            raise TargetError(f"the board did not take the session's push over {device.transport}: {e}") from None
        finally:
            self.close_device(device)

    def stop(self) -> None:
        for device in list(self.devices):
            self.close_device(device)
        if self.board is not None:
            self.board.stop()
            self.board = None
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    # -- devices ------------------------------------------------------------------------

    def open_device(self, transport: str, timeout: float = 10.0) -> Device:
        if transport not in SUPPORTED_TRANSPORTS:
            raise TargetError(f"transport {transport!r} is not available")
        device = Device(self.cfg, transport, host=self.host, serial_port=self.serial_port, baud=self.baud,
                        timeout=timeout, name=self.board_name)
        self.devices.append(device)
        return device

    def close_device(self, device: Device) -> None:
        if device in self.devices:
            self.devices.remove(device)
        device.close()

    # -- description ----------------------------------------------------------------------

    @property
    def board_name(self) -> str:
        if self.board is not None:
            return f"virtual board {self.board.name}"
        return " ".join(x for x in (self.serial_port, self.host) if x) or "board"

    def describe(self) -> str:
        """One line for the session header: board, firmware, version, transports."""
        where = ", ".join(x for x in (self.host, self.serial_port) if x)
        info = self.info
        firmware = f"MicroPython {info.firmware}" if info and info.firmware else "firmware unknown"
        version = (self.pushed.version if self.pushed and self.pushed.committed else (info.version if info else ""))
        parts = [f"{self.board_name} ({where})", firmware, f"app version {version or 'unknown'}"]
        transports = ", ".join(t + (" (skipped: unavailable)" if t in self.unavailable else "")
                               for t in self.transports)
        line = "uota: " + "; ".join(parts) + f"; transports: {transports}; ready in {self.startup_seconds:.1f} s"
        if self.pushed is not None:
            line += f"; push {self.settings.push}: {self.pushed.summary()}"
        return line
