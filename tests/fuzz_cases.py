"""Hypothesis strategies for malformed OTA traffic (tests/test_attack_fuzz.py): command lines,
`file`/`manifest` headers with bad sizes and bodies, hostile paths, binary junk, and
damaged serial frames."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

# a manifest the fuzzer may get accepted (so `file` reaches the path checks); no fuzzed
# body ever has this content, so nothing can be committed
STAGE_PATH = "fz/a.py"
STAGE_SHA = hashlib.sha256(b"never sent by the fuzzer").hexdigest()

HOSTILE_PATHS = [
    "..", "../x", "../../boot.py", "app/../../boot.py", "a/../b", "./x", "a/./b", "a//b", "/", "//",
    "/abs.py", "/lib/uota/runtime.py", "lib/uota/runtime.py", "lib/uota/new.py", "lib/uota", "lib/uota/",
    "boot.py", "config/.ota.secrets.json", "config/.ota.secrets.json.tmp", "ota_manifest.txt",
    "ota_boot.json", "ota_journal.json", "ota_stage/../boot.py", "ota_prev/main.py", "a\\b", "..\\boot.py",
    "C:\\boot.py", "a\x00b", "boot.py\x00.txt", "\x00", "a;b", "a\nb", "a\rb", "\x7f", "x" * 129, "x" * 1000,
    "d/" * 70 + "f", " ", "é/ü.py", "\u202e.py", "%2e%2e/boot.py",
]
# commands that change nothing by themselves when given a hostile argument; `wipe`, `reset`
# and `end_ota` (which commits a fuzzed manifest that happens to be valid, e.g. an empty
# set) are only sent unauthenticated, where they must be refused
COMMANDS = ["version", "ls", "get", "rm", "start_ota", "need", "abort", "passwd", "files",
            "hello", "challenge", "auth", "manifest", "file", "frobnicate", "PING", "", "get\x00", "ls\t"]
SIZES = ["-1", "0", "1", "17", "1024", "99999999999999999999", "-99999999999", "abc", "", "1e9", "0x10", " 5",
         "5 ", "+5", "٣", "1_000"]
HEXES = ["", "0" * 64, STAGE_SHA, "g" * 64, "0" * 63, "0" * 65, "A" * 64]


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


paths = st.one_of(st.sampled_from(HOSTILE_PATHS), st.text(max_size=40),
                  st.lists(st.sampled_from(["..", ".", "", "lib", "uota", "config", "a", "\\", "ota_x"]),
                           min_size=1, max_size=8).map("/".join))
sizes = st.one_of(st.sampled_from(SIZES), st.integers(-10, 10**13).map(str))


@st.composite
def command_lines(draw: st.DrawFn, unauthenticated: bool, with_body: bool = True) -> bytes:
    names = COMMANDS + (["wipe", "reset", "end_ota"] if unauthenticated else [])
    if not with_body:  # no `file`/`manifest` header whose body would be the next items, and no
        # `hello` (it drops the authentication, so a later exact `file` would end the session)
        names = [n for n in names if n not in ("file", "manifest", "hello")]
    cmd = draw(st.sampled_from(names) | st.text(max_size=12).filter(lambda c: c not in ("file", "manifest", "hello")))
    arg = draw(st.one_of(paths, st.text(max_size=80), st.sampled_from(["", " ", ";", ";;", "a;b"])))
    if cmd == "rm" and not unauthenticated:
        arg = draw(st.sampled_from(HOSTILE_PATHS))  # only paths that may never be deleted
    if cmd in ("wipe", "reset", "end_ota") and not unauthenticated:
        cmd = "version"
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\n", b"\r"]))
    return _enc(f"{cmd} {arg}" if arg else cmd) + end


@st.composite
def file_commands(draw: st.DrawFn) -> bytes:
    path = draw(paths | st.just(STAGE_PATH))
    head = f"file {path};{draw(sizes)};{draw(st.sampled_from(HEXES))}"
    if draw(st.booleans()):
        head += ";" + draw(st.text(max_size=10))  # extra fields
    body = draw(st.binary(max_size=300))
    return _enc(head) + b"\n" + body


@st.composite
def manifest_commands(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "lines", "junk", "json-huge"]))
    if kind == "json":
        files = draw(st.dictionaries(paths, st.sampled_from(HEXES), max_size=4))
        header = draw(st.dictionaries(st.sampled_from(["version", "release", "wipe", "sig", "x"]),
                                      st.one_of(st.none(), st.integers(), st.text(max_size=10), st.booleans()),
                                      max_size=4))
        body = json.dumps({**header, "files": draw(st.sampled_from([files, [], "x", None, 5]))}).encode()
    elif kind == "json-huge":
        body = b'{"files": {' + b'"a": "b", ' * draw(st.integers(0, 50)) + b'"c": 1}, "version": "x"}'
    elif kind == "lines":
        head = draw(st.sampled_from(['{"version":"x","release":1}', "{", "[]", '"x"', '{"release":"1"}',
                                     '{"release":1e99}', '{"version":5}', ""]))
        entries = draw(st.lists(st.tuples(paths, st.sampled_from(HEXES)), max_size=5))
        lines = ["uota-manifest-lines " + draw(st.sampled_from(["1 ", "2 ", "1", ""])) + head]
        lines += [f"{p}:{h}" for p, h in entries]
        body = _enc("\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"])))
    else:
        body = draw(st.binary(max_size=300))
    declared = draw(st.one_of(st.just(str(len(body))), sizes,
                              st.integers(-5, 5).map(lambda d: str(len(body) + d))))
    return b"manifest " + _enc(declared) + b"\n" + body


junk = st.binary(min_size=1, max_size=700)
overlong = st.integers(513, 4000).map(lambda n: b"get " + b"a" * n + b"\n")
items_any = st.one_of(junk, overlong, file_commands(), manifest_commands())


@dataclass
class Case:
    """One fuzz case: how far the connection gets legitimately, then the malformed items."""

    auth: bool  # authenticate first (so mutating commands reach their argument checks)
    staged: bool  # start_ota + an accepted manifest first (so `file` reaches its path checks)
    items: list[bytes] = field(default_factory=list)

    def __repr__(self) -> str:  # shown by hypothesis on failure: keep it readable
        return f"Case(auth={self.auth}, staged={self.staged}, items={[i[:120] for i in self.items]!r})"


@st.composite
def cases(draw: st.DrawFn) -> Case:
    auth = draw(st.booleans())
    staged = auth and draw(st.booleans())
    item = st.one_of(command_lines(unauthenticated=not auth), items_any)
    return Case(auth, staged, draw(st.lists(item, min_size=1, max_size=4)))


# -- serial frames --------------------------------------------------------------------------

Damage = Callable[[int], bytes]


@st.composite
def frame_damage(draw: st.DrawFn) -> Damage:
    """Bytes to write straight onto the serial line between the link's own frames, as a
    function of the session key (drawn before the session exists, so replays are stable)."""
    kind = draw(st.sampled_from(["junk", "sync-junk", "bad-crc", "stale-key", "truncated", "bad-len",
                                 "odd-type", "zeros"]))
    if kind == "junk":
        data = draw(st.binary(min_size=1, max_size=300))
        return lambda key: data
    if kind == "sync-junk":
        data = b"\xa5\x5a" + draw(st.binary(max_size=130))
        return lambda key: data
    if kind == "zeros":
        data = bytes(draw(st.integers(1, 300)))
        return lambda key: data
    payload = draw(st.binary(max_size=118))
    t = draw(st.integers(0, 255)) if kind == "odd-type" else draw(st.sampled_from([1, 2, 3, 4]))
    seq, ack = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    length = draw(st.integers(119, 255)) if kind == "bad-len" else len(payload)
    head = bytes((t, seq, ack, length)) + payload
    other_key = draw(st.integers(1, 2**31 - 1))
    flip = draw(st.integers(0, 31))
    cut = draw(st.floats(0.05, 0.95))

    def build(key: int) -> bytes:
        crc = zlib.crc32(head, (other_key if other_key != key else key + 1) if kind == "stale-key" else key)
        if kind == "bad-crc" or (kind == "odd-type" and t in (1, 2, 3, 4, 5)):
            crc ^= 1 << flip  # a valid DATA/ACK/NAK/POLL/CLOSE would be real traffic, not damage
        frame = b"\xa5\x5a" + head + crc.to_bytes(4, "little")
        return frame[: max(1, int(len(frame) * cut))] if kind == "truncated" else frame

    return build


# -- serial cases -----------------------------------------------------------------------
# Over serial there is no half-close to end a body, so every item keeps the stream framed
# (no `file`/`manifest` header whose body would swallow what follows), the damage goes into
# the serial frames themselves, and about one case in ten ends with input on which the board
# ends the session (a line too long or not UTF-8, a header it can't parse, a `file` before
# auth): the session after it must start and answer as before.

def _utf8_lines(item: bytes) -> bool:
    try:
        item.decode()
    except UnicodeDecodeError:
        return False
    return all(len(line) < 400 for line in item.split(b"\n"))


@st.composite
def exact_file_commands(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=300))
    path = draw(paths | st.just(STAGE_PATH)).replace("\n", "").replace("\r", "").replace(";", "")
    head = f"file {path};{len(body)};{draw(st.sampled_from(HEXES))}"
    return _enc(head) + b"\n" + body


@st.composite
def exact_manifest_commands(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        files = draw(st.dictionaries(paths, st.sampled_from(HEXES), max_size=4))
        body = json.dumps({"version": draw(st.text(max_size=5)), "files": files}).encode()
    else:
        entries = draw(st.lists(st.tuples(paths, st.sampled_from(HEXES)), max_size=5))
        lines = ['uota-manifest-lines 1 {"version":"x"}'] + [f"{p}:{h}" for p, h in entries]
        body = _enc("\n".join(lines) + "\n")
    return b"manifest " + str(len(body)).encode() + b"\n" + body


session_enders = st.one_of(
    st.binary(min_size=1, max_size=60).filter(lambda b: not _utf8_lines(b)).map(lambda b: b + b"\n"),
    st.integers(513, 3000).map(lambda n: b"v" * n + b"\n"),  # longer than the board's line buffer
    st.tuples(st.sampled_from([b"file ", b"zfile ", b"manifest "]),
              st.sampled_from([b"", b";", b"a;;", b"a;b;c", b"x", b"-", b"1e3", b"\xff"])).map(
        lambda t: t[0] + t[1] + b"\n"),
)


@st.composite
def serial_cases(draw: st.DrawFn) -> Case:
    auth = draw(st.booleans())
    staged = auth and draw(st.booleans())
    item = command_lines(unauthenticated=not auth, with_body=False)
    if auth:
        item = st.one_of(item, exact_file_commands(), exact_manifest_commands())
    items = draw(st.lists(item.filter(_utf8_lines), min_size=1, max_size=4))
    if draw(st.integers(0, 9)) == 0:
        items.append(draw(session_enders | exact_file_commands()) if not auth else draw(session_enders))
    return Case(auth, staged, items)
