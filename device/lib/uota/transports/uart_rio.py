# RemoteIO calls over the serial transport (uart.py): JSON lines as on TCP port 2019. The
# app's print() output needs nothing here: it reaches the host as bytes between frames.
# With an OTA password the host first runs port 2019's mutual handshake, and the calls and
# results then travel in the same records (uota.seal), as the serial OTA session's do.
import json
from uota.transports.uart import read_line


class _Peer:
    # what uota.seal's RemoteIO handshake keeps of its client
    authed = False
    hnonce = None

    def __init__(self, dev, nonce, hsum):
        self.dev = dev
        self.nonce = nonce
        self.hsum = hsum  # sha256 of the hello frame as sent: both proofs cover it


def _frame(t):
    try:
        frame = json.loads(read_line(t))
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}


def _secrets():
    # from the flash, as the OTA session reads them: a Ctrl-C during boot may have stopped
    # the runtime before it gave uota.remoteio its key
    from uota import fs

    sec = fs.read_json(fs.full(fs.SECRETS), {})
    if not isinstance(sec, dict):
        sec = {}
    key = sec.get("otaKey") or sec.get("otaPassword") or ""
    return key, (sec.get("otaSalt") or "") if sec.get("otaKey") else "", sec.get("otaIter") or 0


def _handshake(s, dev, key, salt, iters):
    """The mutual proof (docs/protocol.md "RemoteIO"); the records over `s` once the host
    proved the key, None (the session ends) if it didn't."""
    import binascii
    import hashlib
    import os
    from uota import load

    seal = load("uota.seal")
    nonce = binascii.hexlify(os.urandom(16)).decode()
    hello = {"proto": seal.PROTO, "id": dev, "nonce": nonce, "auth": True, "salt": salt, "iter": iters}
    line = json.dumps({"hello": hello}).encode() + b"\n"
    c = _Peer(dev, nonce, hashlib.sha256(line).digest())
    s.write(line)
    s.write(seal.rio_challenge(c, _frame(s).get("challenge"), key, salt))
    if c.hnonce is None:
        return None  # not a challenge: the host has no key for this board
    k = seal.rio_auth(c, _frame(s).get("auth"), key)
    if k is None:
        from uota import throttle

        s.write(b'{"e": "auth failed"}\n')
        throttle.failed(s)  # one host on the cable: the session waits out the pause itself
        return None
    s.write(b'{"auth": "ok"}\n')
    if s.qs != s.qe:
        return None  # bytes sent behind the proof, before the keys were agreed
    return seal.Sealed(s, k)


def run(s):
    import binascii
    import machine
    import sys
    from uota import remoteio

    dev = binascii.hexlify(machine.unique_id()).decode()
    key, salt, iters = _secrets()
    if key:
        t = _handshake(s, dev, key, salt, iters)
        if t is None:
            return
    else:
        t = s
        s.write(json.dumps({"hello": {"proto": 2, "id": dev, "auth": False}}).encode() + b"\n")
    rt = sys.modules.get("uota.runtime")
    if rt is None or rt._app["state"] == "starting":
        # this session's Ctrl-C stopped the launcher (main.py) before it started the app, or
        # a raw-REPL soft reset skipped it: start the app here, or no handler would answer
        # (the soft reset at the end boots the board properly)
        from uota.runtime import start_app

        start_app()
    while True:
        frame = _frame(t)
        if "call" in frame:
            t.write(json.dumps(remoteio._call(frame)).encode() + b"\n")
