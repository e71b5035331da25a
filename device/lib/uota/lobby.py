# The lobby: who keeps a place among the unauthenticated connections on the OTA port
# (uota.transports.wifi_tcp) and among RemoteIO's strangers (uota.remoteio), and which
# addresses have proven the password lately (docs/protocol.md, "Framing").
#
# Progress through the handshake can't tell the owner from a stranger (anyone can send
# `hello` and `challenge`), and a stranger may have many source addresses. The one thing a
# stranger can't fake is the proof of the password, so an address that gave it lately is
# "known": a known address keeps one place while others hold places (only one: a stranger
# churning from a known address, as behind the owner's NAT, gets no more than the
# per-address share, so it can't lock out the owner's new address). The known addresses
# are kept in a file so the owner stays known across the resets its pushes cause.
from uota import fs

KNOWN = 4  # addresses remembered
PATH = "ota_known.json"  # [[address, proofs], ...] (reserved: never pushed, served or moved)

_known = None  # loaded on first use


def _load():
    global _known
    if _known is None:
        _known = []
        k = fs.read_json(fs.full(PATH), [])
        for e in k if isinstance(k, list) else ():
            if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], int):
                if len(e[0]) <= 64 and len(_known) < KNOWN:
                    _known.append(e)
    return _known


def known(peer):
    for e in _load():
        if e[0] == peer:
            return True
    return False


def proved(peer):
    """`peer` has just proven the password. The list keeps the addresses with the most
    proofs: a relay that passes the owner's handshake through from ever new addresses (the
    board can't tell it from the owner) only ever replaces the least proven entry, not an
    address the owner keeps using. Written when the list changes and when a count reaches
    a power of two: a few writes over a board's life, none per session."""
    if peer is None:
        return
    k = _load()
    for e in k:
        if e[0] == peer:
            e[1] += 1
            if e[1] & (e[1] - 1):
                return
            break
    else:
        if len(k) >= KNOWN:
            low = 0
            for i in range(len(k)):
                if k[i][1] < k[low][1]:
                    low = i
            k.pop(low)
        k.append([peer, 1])
    try:
        fs.write_json(fs.full(PATH), k)
    except OSError:
        pass  # kept in RAM for this boot all the same


def evictee(lobby, peer, waiting):
    """Who leaves a full lobby of unauthenticated connections (oldest first, each with a
    `peer`) for a newcomer from `peer`; `waiting(c)`: how long `c` has waited on its client
    since the board's last reply (ms; -1 while its input waits on the board).

    A known address keeps one place, its newest connection's, while anyone else holds
    one (a stranger can't fake the proof of the password, so its addresses have none
    kept).
    Among the rest, places are shared per source address: the newcomer takes one from the
    address holding the most (its own on a tie), so a stranger churning from one address
    only pushes out its own connections; with every address holding one place, from any.
    Of those, the one waiting longest on its client goes (the oldest on a tie). A stranger
    can fake every step of the handshake up to the board's proof, and then it waits: it
    can't send `auth`. An honest host answers each reply at once (its one slow step,
    deriving the key, is skipped from its second command on: the kept key)."""
    # a known address has one place kept, its newest connection's (the owner's previous
    # connection may linger until the board reads its end); a stranger churning from a
    # known address, as from behind the owner's NAT or its old lease, competes like anyone
    # with the rest of its connections
    newest = {}
    for c in lobby:
        newest[c.peer] = c
    side = [c for c in lobby if newest[c.peer] is not c or not known(c.peer)] or lobby
    n = {}
    for c in side:
        n[c.peer] = n.get(c.peer, 0) + 1
    most = max(n.values())
    if n.get(peer, 0) + 1 >= most:  # its own address on a tie; holding none: any address
        src = peer if peer in n else None
    else:
        for c in side:
            if n[c.peer] == most:
                src = c.peer
                break
    victim, longest = None, -2
    for c in side:
        if src is None or c.peer == src:
            w = waiting(c)
            if w > longest:
                victim, longest = c, w
    return victim
