"""Resolve `<name>.local` hostnames over mDNS (zeroconf): boards announce themselves that
way, and most systems' resolvers don't speak mDNS."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from uota_core.errors import UotaError

if TYPE_CHECKING:
    from zeroconf import InterfaceChoice

_cache: dict[str, str] = {}


class ResolveError(UotaError):
    """A hostname could not be resolved."""


def interfaces() -> list[str] | InterfaceChoice:
    # UOTA_MDNS_INTERFACES=127.0.0.1 keeps queries on loopback (tests, virtual boards)
    from zeroconf import InterfaceChoice

    raw = os.environ.get("UOTA_MDNS_INTERFACES", "").strip()
    return [x.strip() for x in raw.split(",") if x.strip()] or InterfaceChoice.All


def resolve(hostname: str, timeout: float = 3.0) -> str:
    """An IPv4 address for `hostname`: `.local` names over mDNS, others as usual."""
    if not hostname.endswith((".local", ".local.")):
        return hostname  # an IP or a DNS name: the socket layer resolves it
    if hostname in _cache:
        return _cache[hostname]
    from zeroconf import AddressResolverIPv4, IPVersion, Zeroconf

    zc = Zeroconf(interfaces=interfaces(), ip_version=IPVersion.V4Only)
    try:
        resolver = AddressResolverIPv4(hostname.rstrip(".") + ".")
        found = resolver.request(zc, int(timeout * 1000))
        addresses = resolver.parsed_addresses() if found else []
    finally:
        zc.close()
    if not addresses:
        try:  # some systems (nss-mdns, macOS) resolve .local themselves
            return socket.gethostbyname(hostname)
        except OSError:
            pass
        raise ResolveError(f"no board answered for {hostname} over mDNS within {timeout:.0f}s: check it is "
                           "on the same network, or set hostname in config/ota.json to its IP address")
    _cache[hostname] = addresses[0]
    return addresses[0]
