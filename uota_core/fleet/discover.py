"""`uota list`: find boards by mDNS, by probing a subnet's OTA port, and by USB serial port,
and merge what each way found into one row per board (same device id).

A probe only asks `hello`, the one command a board answers anyone (docs/protocol.md): it never
authenticates, so it tells a stranger's board nothing it doesn't announce already.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

from uota_core.errors import UotaError

OTA_PORT = 2018
SERVICE_TYPE = "_uota._tcp.local."
TRANSPORTS = {"wifi_tcp": ("mdns", "scan"), "serial": ("serial",), "all": ("mdns", "scan", "serial")}
WAY_NAMES = {"mdns": "mDNS", "scan": "the subnet probe", "serial": "the serial port list"}
MIN_PREFIX = 16  # a /16 is 65,534 probes: anything larger is a typo, not a LAN
PROBE_JOBS = 64  # connections in flight at once during a scan
CONNECT_TIMEOUT = 0.5  # a host on the LAN accepts in milliseconds; silence means no one is there
RESOLVE_MS = 1000  # to resolve a name the browse found (its records are usually cached by then)
HELLO_MIN = 0.5  # a board connected late in a scan still gets this long to answer
# tests and CI set this: a scan outside 127.0.0.0/8 is refused before any packet is sent
LOOPBACK_ONLY_ENV = "UOTA_SCAN_LOOPBACK_ONLY"


class DiscoveryError(UotaError):
    """Bad discovery input (a subnet), or no board found."""


@dataclass
class Board:
    """One board, as far as the ways that found it tell (None: not known)."""

    id: str = ""  # machine.unique_id() in hex; "" for a board only a serial port without id shows
    name: str = ""
    addresses: list[str] = field(default_factory=list)
    port: str = ""  # its USB serial port
    version: str | None = None
    release: int | None = None
    auth: bool | None = None
    signed: bool | None = None
    firmware: str = ""
    virtual: bool = False
    health: str | None = None  # only `list --health` asks (it authenticates)
    found_by: list[str] = field(default_factory=list)  # "mdns", "scan", "serial"

    @property
    def key(self) -> str:
        """What identifies the board across ways of finding it."""
        return self.id or (f"addr:{self.addresses[0]}" if self.addresses else f"port:{self.port}")

    @property
    def label(self) -> str:
        """A short human name for rows and errors."""
        return self.name or (self.addresses[0] if self.addresses else self.port) or self.id

    def merge(self, other: Board) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                mine.extend(x for x in theirs if x not in mine)
            elif f.name == "virtual":
                self.virtual = mine or theirs
            elif mine is None or (mine == "" and theirs):  # "" from a hello is a fact: no version yet
                setattr(self, f.name, theirs)

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- subnets ---------------------------------------------------------------------------------

def parse_subnet(text: str | None) -> ipaddress.IPv4Network:
    """The subnet to scan: `text` (CIDR), else the host's /24. Refuses what can't be meant."""
    if text is None:
        net = default_subnet()
    else:
        try:
            net = ipaddress.IPv4Network(text.strip(), strict=False)
        except ValueError:
            raise DiscoveryError(f"--subnet {text!r} is not an IPv4 subnet: give one in CIDR form, "
                                 "e.g. 192.168.1.0/24") from None
    if net.prefixlen < MIN_PREFIX:
        raise DiscoveryError(f"--subnet {net} has {net.num_addresses:,} addresses: scan at most a /{MIN_PREFIX} "
                             "(give the boards' own subnet, e.g. 192.168.1.0/24)")
    if os.environ.get(LOOPBACK_ONLY_ENV) and not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        raise DiscoveryError(f"--subnet {net} is not loopback, and {LOOPBACK_ONLY_ENV} allows loopback scans "
                             "only: scan 127.0.0.0/24, or unset it")
    return net


def default_subnet() -> ipaddress.IPv4Network:
    """The /24 of the address this host reaches the network from."""
    if os.environ.get(LOOPBACK_ONLY_ENV):
        return ipaddress.IPv4Network("127.0.0.0/24")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # a UDP connect only picks the route: nothing is sent
        addr = s.getsockname()[0]
    except OSError:
        addr = ""
    finally:
        s.close()
    if not addr or addr.startswith("0."):
        raise DiscoveryError("this host has no network route to take a subnet from: give --subnet, "
                             "e.g. --subnet 192.168.1.0/24")
    return ipaddress.IPv4Network(f"{addr}/24", strict=False)


# -- the hello probe -------------------------------------------------------------------------

def probe(addr: str, timeout: float = 3.0, port: int = OTA_PORT, until: float | None = None) -> Board | None:
    """The board at `addr` as its `hello` reply describes it, or None: no uota board there.
    The reply may take `timeout`, or until the monotonic time `until` (a scan's own end),
    but never less than HELLO_MIN after the connection is made."""
    deadline = time.monotonic() + timeout if until is None else until
    try:
        sock = socket.create_connection((addr, port), timeout=min(CONNECT_TIMEOUT, timeout))
    except OSError:
        return None
    deadline = max(deadline, time.monotonic() + HELLO_MIN)
    try:
        sock.sendall(b"hello\n")
        line = _read_line(sock, deadline)
    except OSError:
        return None
    finally:
        sock.close()
    return board_from_hello(line, addr)


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < 4096:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def board_from_hello(line: bytes, addr: str) -> Board | None:
    """A Board from a `hello` reply line; a micro-ota board (no `hello`) gets an id-less row."""
    text = line.decode(errors="replace").strip()
    if text.startswith("error: unknown command"):
        return Board(addresses=[addr], found_by=["scan"])  # speaks the documented set only
    if not text.startswith("hello "):
        return None
    try:
        data = json.loads(text[6:])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:  # whatever answers on 2018 may send anything: a row only from a well-formed hello
        return Board(id=str(data.get("id", ""))[:64], addresses=[addr], version=str(data.get("version", ""))[:64],
                     release=int(data.get("release", 0)), auth=bool(data.get("auth")),
                     signed=bool(data.get("signed")), firmware=str(data.get("firmware", ""))[:32], found_by=["scan"])
    except (TypeError, ValueError):
        return None


def scan(subnet: ipaddress.IPv4Network, timeout: float = 3.0, jobs: int = PROBE_JOBS) -> list[Board]:
    """Every uota board answering on the OTA port in `subnet`, at most `jobs` probes at once."""
    until = time.monotonic() + timeout  # the scan's end, whichever round a probe runs in
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="uota-scan") as pool:
        found = pool.map(lambda a: probe(str(a), timeout, until=until), subnet.hosts())
        return [b for b in found if b is not None]


# -- mDNS ------------------------------------------------------------------------------------

def browse_mdns(timeout: float = 3.0, hello: bool = True) -> list[Board]:
    """Boards announcing `_uota._tcp` within `timeout`; with `hello`, each probed for what
    it runs (an mDNS answer only names a board)."""
    from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

    from uota_core.mdns import interfaces

    names: list[str] = []
    lock = threading.Lock()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            with lock:
                if name not in names:
                    names.append(name)

    zc = Zeroconf(interfaces=interfaces(), ip_version=IPVersion.V4Only)
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        time.sleep(timeout)  # the browse window: answers come as they come, none says it was the last
        browser.cancel()
        with lock:
            found = list(names)

        def resolve(name: str) -> Board | None:
            info = ServiceInfo(SERVICE_TYPE, name)
            try:  # the browse answers usually carry the records already: ask only if they didn't
                if not info.load_from_cache(zc) and not info.request(zc, RESOLVE_MS):
                    return None
            except Exception:  # zeroconf's EventLoopBlocked on a starved machine: this name only
                return None
            props = {k.decode(): (v or b"").decode(errors="replace") for k, v in info.properties.items()}
            return Board(id=props.get("id", ""), name=name[: -len(SERVICE_TYPE) - 1],
                         addresses=info.parsed_addresses(IPVersion.V4Only), virtual=props.get("board") == "virtual",
                         found_by=["mdns"])

        with ThreadPoolExecutor(max_workers=PROBE_JOBS) as pool:
            boards = [b for b in pool.map(resolve, found) if b is not None]
    finally:
        zc.close()
    return add_hello(boards, timeout) if hello else boards


def add_hello(boards: list[Board], timeout: float) -> list[Board]:
    """`boards` with what their hello says, probed at once."""
    def one(board: Board) -> Board:
        for addr in board.addresses:
            details = probe(addr, timeout)
            if details is not None:
                details.found_by = []
                board.merge(details)
                break
        return board

    with ThreadPoolExecutor(max_workers=PROBE_JOBS) as pool:
        return list(pool.map(one, boards))


# -- serial ----------------------------------------------------------------------------------

def serial_boards(ports: Iterable[Any] | None = None, include_virtual: bool = True) -> list[Board]:
    """ESP32 USB serial ports (`ports`: pyserial ListPortInfo, default the system's), plus
    the virtual boards running on this host. Ports aren't opened: that would stop the app.
    Espressif's native USB gives the chip's MAC as its serial number, which is the board's
    id; a USB-UART bridge's serial number is the bridge's, so such a row has no id."""
    from serial.tools import list_ports

    from uota_core.serialport import esp_bridge

    boards = []
    for p in list_ports.comports() if ports is None else ports:
        bridge = esp_bridge(p.vid, p.pid)
        if bridge is None:
            continue
        mac = (p.serial_number or "").replace(":", "").replace("-", "").lower()
        native = p.vid == 0x303A and len(mac) == 12 and all(c in "0123456789abcdef" for c in mac)
        boards.append(Board(id=mac if native else "", port=p.device, found_by=["serial"]))
    if include_virtual:
        from uota_core.sim.registry import running_boards

        for vb in running_boards():
            boards.append(Board(id=vb["uid"], name=vb["hostname"], port=vb["serial"], virtual=True,
                                found_by=["serial"]))
    return boards


# -- all together ----------------------------------------------------------------------------

def merge(found: Iterable[Board]) -> list[Board]:
    """One Board per device id (or address/port where there is none), sorted by name."""
    rows: dict[str, Board] = {}
    for board in found:
        if board.key in rows:
            rows[board.key].merge(board)
        else:
            rows[board.key] = Board(**{**board.as_json(), "addresses": list(board.addresses),
                                       "found_by": list(board.found_by)})
    # an id-less row (a micro-ota board by address) joins the board that has the same address
    for key, board in list(rows.items()):
        if board.id:
            continue
        for other in rows.values():
            if other.id and set(other.addresses) & set(board.addresses):
                other.merge(board)
                del rows[key]
                break
    for board in rows.values():
        board.found_by.sort(key=TRANSPORTS["all"].index)
    return sorted(rows.values(), key=lambda b: (b.label, b.key))


def discover(transport: str = "all", subnet: str | None = None, timeout: float = 3.0,
             problems: list[str] | None = None) -> list[Board]:
    """Every board found by the ways `transport` allows, at once, merged: takes about `timeout`.
    A way that fails (mDNS with no usable interface, ...) leaves the others' boards, and
    says why in `problems`."""
    if transport not in TRANSPORTS:
        raise DiscoveryError(f"transport {transport!r} can't be listed: use wifi_tcp, serial or all")
    if timeout <= 0:
        raise DiscoveryError(f"--timeout {timeout:g}: give a positive number of seconds, e.g. 3")
    methods = TRANSPORTS[transport]
    net = parse_subnet(subnet) if "scan" in methods else None  # bad input fails before any wait
    # mDNS answers that the scan covers get their hello from the scan: one probe per board
    work = {"mdns": lambda: browse_mdns(timeout, hello=net is None), "serial": serial_boards}
    if net is not None:
        work["scan"] = lambda: scan(net, timeout)
    found: dict[str, list[Board]] = {}
    with ThreadPoolExecutor(max_workers=len(methods)) as pool:
        results = {m: pool.submit(work[m]) for m in methods}
        for method, job in results.items():
            try:
                found[method] = job.result()
            except Exception as e:  # one way failing must not hide what the others found
                if problems is not None:
                    problems.append(f"{WAY_NAMES[method]} failed: {e or type(e).__name__}")
    if net is not None and "mdns" in found:
        outside = [b for b in found["mdns"] if not any(ipaddress.IPv4Address(a) in net for a in b.addresses)]
        add_hello(outside, timeout)
    return merge(b for boards in found.values() for b in boards)
