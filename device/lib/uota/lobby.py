# The lobby: who keeps a place among the unauthenticated connections on the OTA port
# (uota.transports.wifi_tcp) and among RemoteIO's strangers (uota.remoteio), and which
# addresses have proven the password lately (docs/protocol.md, "Framing").
#
# Progress through the handshake can't tell the owner from a stranger (anyone can send
# `hello` and `challenge`), and a stranger may have many source addresses. The one thing a
# stranger can't fake is the proof of the password, so an address that gave it lately is
# "known": a known address keeps its one place while others hold places (only one: a
# stranger churning from a known address, as behind the owner's NAT, gets no more than the
# per-address share, so it can't lock out the owner's new address). The known
# addresses are kept in a file so the owner stays known across the resets its pushes cause;
# it is written only when the list changes.
from uota import fs

KNOWN = 4  # addresses remembered, most recent first
PATH = "ota_known.json"  # a list of addresses (reserved: never pushed, served or moved)

_known = None  # loaded on first use


def _load():
    global _known
    if _known is None:
        k = fs.read_json(fs.full(PATH), [])
        _known = [a for a in k if isinstance(a, str) and len(a) <= 64][:KNOWN] if isinstance(k, list) else []
    return _known


def known(peer):
    return peer is not None and peer in _load()


def proved(peer):
    """`peer` has just proven the password: remember it (first in the list)."""
    if peer is None:
        return
    k = _load()
    if k and k[0] == peer:
        return  # unchanged: no flash write
    if peer in k:
        k.remove(peer)
    k.insert(0, peer)
    del k[KNOWN:]
    try:
        fs.write_json(fs.full(PATH), k)
    except OSError:
        pass  # kept in RAM for this boot all the same


def evictee(lobby, peer, rank):
    """Who leaves a full lobby of unauthenticated connections (oldest first, each with a
    `peer`) for a newcomer from `peer`.

    A known address holding a single place keeps it while anyone else holds one (a
    stranger can't fake the proof of the password, so its addresses have none kept).
    Among the rest, places are shared per source address: the newcomer takes one from the
    address holding the most (its own on a tie), so a stranger churning from one address
    only pushes out its own connections. Within that address the least advanced (lowest
    `rank`), oldest goes; with every address holding one place, the least advanced, oldest
    of all."""
    n = {}
    for c in lobby:
        n[c.peer] = n.get(c.peer, 0) + 1
    # a known address has one place kept: one that holds more (a stranger churning from it,
    # as from behind the owner's NAT or its old address) is on equal terms with the rest
    side = [c for c in lobby if n[c.peer] > 1 or not known(c.peer)] or lobby
    if len(side) < len(lobby):
        n = {}
        for c in side:
            n[c.peer] = n.get(c.peer, 0) + 1
    most = max(n.values())
    src = peer if n.get(peer, 0) + 1 >= most else None
    if src is None:
        for c in side:
            if n[c.peer] == most:
                src = c.peer
                break
    victim, low = None, 99
    for c in side:
        if c.peer == src and rank(c) < low:
            victim, low = c, rank(c)
    if victim is None:
        for c in side:
            if rank(c) < low:
                victim, low = c, rank(c)
    return victim
