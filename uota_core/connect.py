"""Open a `Link` / OTA `Session` to the board a project's config points at."""

from __future__ import annotations

from uota_core.config import Config
from uota_core.errors import UotaError
from uota_core.link import DEFAULT_TIMEOUT, Link
from uota_core.session import Session


def open_link(cfg: Config, transport: str | None = None, host: str | None = None, port: int | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> Link:
    transport = transport or cfg["transports"][0]
    if transport == "wifi_tcp":
        from uota_core.tcp import TcpLink

        return TcpLink(host or cfg["hostname"], port or cfg["port"], timeout=timeout)
    raise UotaError(f"transport {transport!r} is not supported by this command yet: use --transport wifi_tcp")


def open_session(cfg: Config, transport: str | None = None, host: str | None = None, port: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> Session:
    """A connected, authenticated OTA session."""
    session = Session(open_link(cfg, transport, host, port, timeout), cfg.password, cfg.signing_key)
    try:
        session.open()
    except BaseException:
        session.close()
        raise
    return session


def wait_reachable(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until `host:port` accepts a connection (e.g. a board coming back from a reset)."""
    from uota_core.tcp import TcpLink

    TcpLink(host, port, connect_timeout=timeout).close()
