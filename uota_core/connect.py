"""Open a `Link` / OTA `Session` to the board a project's config points at."""

from __future__ import annotations

from typing import TYPE_CHECKING

from uota_core.config import Config
from uota_core.errors import UotaError
from uota_core.link import DEFAULT_TIMEOUT, HANDSHAKE_TRIES, Link, handshaken
from uota_core.session import Session

if TYPE_CHECKING:  # loaded by open_remoteio: a push without the health wait never needs it
    from uota_core.health import ConsoleQuery, RemoteIOQuery
    from uota_core.remoteio import RemoteIOClient


def open_serial(cfg: Config, port: int | str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Link:
    """The serial transport's Link; the port comes from --port, ota.json serialPort, or detection."""
    from uota_core.serial_transport import open_serial_link

    return open_serial_link(serial_port(cfg, port), cfg.get("serialBaud", 115200), timeout)


def serial_port(cfg: Config, port: int | str | None) -> str:
    """--port, else ota.json serialPort, else the one ESP32 USB-UART attached."""
    from uota_core.serialport import detect

    if isinstance(port, int):
        raise UotaError(f"--port {port} is a TCP port; with --transport serial give the serial device, "
                        "e.g. --port /dev/ttyUSB0")
    return port or cfg.get("serialPort") or detect()


def resolve_transport(cfg: Config, transport: str | None, port: int | str | None) -> str:
    """The transport a command uses: --transport, else serial for a --port path, else the
    first in ota.json `transports`."""
    if transport is None and isinstance(port, str):
        transport = "serial"  # --port /dev/ttyUSB0
    transport = transport or cfg["transports"][0]
    if transport != "serial" and isinstance(port, str):
        raise UotaError(f"--port {port} is a serial port, but the transport is {transport}: "
                        "add --transport serial, or give a TCP port number")
    if transport not in ("serial", "wifi_tcp"):
        raise UotaError(f"transport {transport!r} is not supported by this command yet: "
                        "use --transport wifi_tcp or --transport serial")
    return transport


def open_link(cfg: Config, transport: str | None = None, host: str | None = None, port: int | str | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> Link:
    transport = resolve_transport(cfg, transport, port)
    if transport == "serial":
        return open_serial(cfg, port, timeout)
    if transport == "wifi_tcp":
        from uota_core.tcp import TcpLink

        return TcpLink(host or cfg["hostname"], port or cfg["port"], timeout=timeout)
    raise AssertionError(transport)


def open_remoteio(cfg: Config, transport: str | None = None, host: str | None = None,
                  port: int | str | None = None, timeout: float = DEFAULT_TIMEOUT) -> RemoteIOClient:
    """A connected RemoteIO client: TCP (remoteioPort), or multiplexed on the serial port."""
    from uota_core.remoteio import RemoteIOClient

    if resolve_transport(cfg, transport, port) == "serial":
        from uota_core.serial_transport import open_serial_remoteio

        return open_serial_remoteio(serial_port(cfg, port), cfg.get("serialBaud", 115200), timeout, cfg.password,
                                    cfg.key_cache)
    return RemoteIOClient(host or cfg["hostname"], port or cfg["remoteioPort"], timeout=timeout,
                          password=cfg.password, key_cache=cfg.key_cache)


def app_query(cfg: Config, transport: str | None, host: str | None, port: int | str | None,
              release: int) -> RemoteIOQuery | ConsoleQuery:
    """How to ask the board how the app of `release` fares: RemoteIO over WiFi, the console
    over serial (asking over the UART would stop the boot it asks about). Close it after."""
    from uota_core.health import ConsoleQuery, RemoteIOQuery

    if resolve_transport(cfg, transport, port) == "serial":
        return ConsoleQuery(serial_port(cfg, port), int(cfg.get("serialBaud", 115200)), release)
    return RemoteIOQuery(lambda: open_remoteio(cfg, "wifi_tcp", host, None, timeout=3.0))


def open_session(cfg: Config, transport: str | None = None, host: str | None = None, port: int | str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> Session:
    """A connected, authenticated OTA session."""
    tries = HANDSHAKE_TRIES if resolve_transport(cfg, transport, port) == "wifi_tcp" else 1
    return handshaken(tries, lambda: Session(open_link(cfg, transport, host, port, timeout), cfg.password,
                                             cfg.signing_key, cfg.key_cache), Session.open)


def wait_reachable(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until `host:port` accepts a connection (e.g. a board coming back from a reset)."""
    from uota_core.tcp import TcpLink

    TcpLink(host, port, connect_timeout=timeout).close()
