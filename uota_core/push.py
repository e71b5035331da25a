"""`uota fast` / `uota full`: an incremental, signed, atomic push of a project to a board."""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uota_core.config import CONFIG_FILE, Config, check_version
from uota_core.errors import UotaError
from uota_core.link import LinkError
from uota_core.manifest import LocalFile, Scan, desired_files, protected_on_device, scan_project
from uota_core.mpy import MpyPlan, mpy_cross_version, mpy_twins, plan_push, target_version
from uota_core.session import DeviceError, InflateUnavailable, Installed, SentFile, Session

# Called once before the transfer with (paths to send, their total bytes), then the
# session reports each chunk through `on_chunk(path, nbytes)`.
PlanCallback = Callable[[list[str], int], None]
ChunkCallback = Callable[[str, int], None]
PACK_MIN_SIZE = 256  # smaller files gain too little from compression
PACK_MAX_RATIO = 0.9  # a body must save at least 10 % to be sent compressed
REPLIES_IN_FLIGHT = 1  # files sent ahead of their `ok`: hides the per-file round trip
KEEPALIVE_S = 5.0  # a `ping` this often while the host works: the board ends a session idle 15 s


@dataclass
class PushResult:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # left out by a pattern -> which one
    bytes: int = 0
    wire_bytes: int = 0  # file bodies as sent: less than `bytes` where files went compressed
    seconds: float = 0.0
    version: str = ""
    committed: bool = False
    as_mpy: list[str] = field(default_factory=list)  # mpyFiles sent (or up to date) as .mpy
    warnings: list[str] = field(default_factory=list)
    compiled: int = 0  # .py files mpy-cross compiled for this push (the rest came from the cache)
    release: int = 0  # the committed set's release counter (0: a device that predates `hello`)

    def as_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "skipped": self.skipped, "deleted": self.deleted, "bytes": self.bytes,
                "wire_bytes": self.wire_bytes,
                "seconds": round(self.seconds, 3), "version": self.version, "committed": self.committed}

    def summary(self) -> str:
        # files a pattern left out are counted, so a missing file on the board isn't a puzzle
        excluded = f", {len(self.excluded)} excluded" if self.excluded else ""
        if not self.committed:
            return (f"up to date: {_files(len(self.skipped))} unchanged{excluded}, nothing sent "
                    f"(version {self.version})")
        return (f"pushed version {self.version}: sent {_files(len(self.sent))} ({self.bytes} bytes, "
                f"{self.wire_bytes} on the link), "
                f"{len(self.skipped)} unchanged, {len(self.deleted)} deleted{excluded}, in {self.seconds:.2f}s")


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


class PushError(UotaError):
    """A push failed; the device stays on its previous version."""


class PlanAhead:
    """A push's scan and compile check, on a thread of their own: started before the session
    opens (`uota fast` starts it first thing), they run while the host connects and the
    board says hello. They need the board's .mpy version, which only `hello` tells: the
    plan is made for `board_mpy`, or the current mpy-cross's (what a board of this
    MicroPython release loads), and made again, once per version, for a board that loads
    another. A push to many boards (`--all`) shares one, from several threads: the project
    is scanned once and compiled once per .mpy version."""

    def __init__(self, cfg: Config, mode: str, board_mpy: int | None = None) -> None:
        self.cfg, self.mode = cfg, mode
        self.scan: Scan | None = None
        self._plans: dict[int, MpyPlan | UotaError] = {}  # by the .mpy version written
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: Exception | None = None
        # not a daemon: a command that fails to connect exits once the compile is done,
        # so no mpy-cross temporary folder or half-written cache file is left behind
        threading.Thread(target=self._run, args=(board_mpy,), name="uota-plan").start()

    def _run(self, board_mpy: int | None) -> None:
        try:
            self.scan = scan_project(self.cfg, self.mode)
            self._plan(mpy_cross_version() if board_mpy is None else board_mpy)
        except Exception as e:  # noqa: BLE001  (raised again in the thread that asks)
            self._error = e
        finally:
            self._done.set()

    def _plan(self, board_mpy: int) -> MpyPlan | UotaError:
        assert self.scan is not None
        with self._lock:  # the other boards wait for the one compiling (their sessions pinged)
            key = target_version(board_mpy)
            if key not in self._plans:
                try:
                    self._plans[key] = plan_push(self.cfg.root, self.scan.files, self.cfg.get("mpyFiles", []),
                                                 board_mpy)
                except UotaError as e:  # a file that doesn't compile: every board hears it at once
                    self._plans[key] = e
            return self._plans[key]

    def result(self, session: Session) -> tuple[Scan, MpyPlan]:
        """The scan and the compile plan for the session's board, pinging the session while
        they take (a cold compile of a big project can outlast the board's 15 s idle limit
        on an authenticated session). Only this thread talks to the session."""
        while not self._done.wait(KEEPALIVE_S):
            session.ping()
        if self._error is not None:
            raise self._error
        board = session.info.mpy if session.info else 0
        got: list[MpyPlan | Exception] = []

        def plan() -> None:
            try:
                got.append(self._plan(board))
            except Exception as e:  # noqa: BLE001  (raised again below)
                got.append(e)

        worker = threading.Thread(target=plan, name="uota-plan")
        worker.start()  # done at once for a version planned already
        while True:
            worker.join(KEEPALIVE_S)
            if not worker.is_alive():
                break
            session.ping()
        if isinstance(got[0], Exception):
            raise got[0]
        assert self.scan is not None
        return self.scan, got[0]


def push(session: Session, cfg: Config, mode: str = "fast", version: str | None = None, wipe: bool = False,
         on_plan: PlanCallback | None = None, on_chunk: ChunkCallback | None = None,
         compress: bool | None = None, planned: PlanAhead | None = None) -> PushResult:
    """Push the project's `mode` files over an open, authenticated session.

    On success the device commits and resets (unless nothing changed). On failure the
    staged files are discarded and the error says why. With `compress` (default: on slow
    links, i.e. serial), files go as raw deflate to devices that can inflate them, where
    that saves at least 10 %. `planned`: the scan and compile check, if already started
    (for the same `cfg` and `mode`; pushes to a fleet share one).
    """
    if mode not in ("fast", "full"):
        raise ValueError(f"mode must be 'fast' or 'full', not {mode!r}")
    started = time.monotonic()
    # refused by the device anyway: say what is wrong before the session does anything
    version = check_version(version) if version is not None else check_version(cfg["version"], CONFIG_FILE)
    if session.signing_key and session.info is not None and not session.info.signed:
        # the board would take the push unsigned: the key the user set protects nothing
        raise PushError(f"this project has a signingKey but {session.link.name} has none (it takes unsigned "
                        "pushes): nothing was sent; provision the key over USB with `uota bootstrap` (or empty "
                        "signingKey in config/.ota.secrets.json to push unsigned)")
    # every .py compiles for the board before a byte is sent; mpyFiles become .mpy
    if planned is None:
        planned = PlanAhead(cfg, mode, session.info.mpy if session.info else 0)
    scan, mpy = planned.result(session)
    local = mpy.files
    # a device that predates `hello` can't report its files: send everything
    legacy = session.info is None
    installed = Installed(version="", release=0, files={}) if legacy else session.installed()
    # excluded files already on the board stay there, unless a wipe clears everything else
    keep = None if wipe else scan.exclusions.excludes
    scope = list(cfg["fastOtaFiles"]) + mpy_twins(cfg["fastOtaFiles"])
    desired = desired_files(local, installed.files, mode, scope, keep)
    deleted = sorted(p for p in installed.files if p not in desired and not protected_on_device(p))
    result = PushResult(version=version, deleted=deleted, excluded=scan.excluded, as_mpy=mpy.as_mpy,
                        warnings=mpy.warnings, compiled=mpy.compiled)
    if not wipe and desired == installed.files and version == installed.version:
        result.skipped = sorted(local)
        result.seconds = time.monotonic() - started
        return result
    session.start_ota()
    in_flight: deque[tuple[SentFile, int]] = deque()  # written, reply not read yet; body bytes
    try:
        session.send_manifest(desired, version, wipe=wipe)
        need = sorted(local) if wipe or legacy else sorted(session.need())
        unknown = [p for p in need if p not in local]
        if unknown:
            raise PushError(f"the device needs {unknown[0]}, which is not in this project: run `uota full`")
        if on_plan:
            on_plan(need, sum(local[p].size for p in need))
        if compress is None:
            compress = session.link.slow
        wbits = session.info.deflate if compress and not legacy else 0
        ahead = 0 if legacy else REPLIES_IN_FLIGHT  # a documented-only device gets lockstep
        queue = deque(need)
        while queue or in_flight:
            if queue and len(in_flight) <= ahead:
                # the next file goes out while the device still hashes and renames this one
                in_flight.append(_write(session, local[queue.popleft()], wbits, on_chunk))
                continue
            sent, wire = in_flight.popleft()
            if _confirm(session, sent):
                result.bytes += local[sent.path].size
                result.wire_bytes += wire
            else:  # no room on the device to inflate: this file and the rest go plain
                wbits = 0
                queue.append(sent.path)
        session.end_ota(files=len(desired) + len(deleted))
    except (UotaError, OSError) as e:
        _discard_replies(session, in_flight)
        _abort(session)
        if isinstance(e, OSError):
            raise PushError(f"push failed: {e}; nothing was installed") from None
        raise
    result.sent = need
    result.skipped = sorted(p for p in local if p not in need)
    result.committed = True
    result.release = 0 if legacy else session.info.release + 1  # as send_manifest numbered it
    result.seconds = time.monotonic() - started
    return result


def pack(data: bytes, wbits: int) -> bytes | None:
    """`data` as a raw deflate stream for a device whose window is 2**wbits bytes, or None
    where that saves too little to be worth the device's time (small or compressed files)."""
    if wbits < 9 or len(data) < PACK_MIN_SIZE:
        return None
    packer = zlib.compressobj(9, zlib.DEFLATED, -min(wbits, 15), 9)
    body = packer.compress(data) + packer.flush()
    return body if len(body) <= len(data) * PACK_MAX_RATIO else None


def _write(session: Session, f: LocalFile, wbits: int,
           on_chunk: ChunkCallback | None) -> tuple[SentFile, int]:
    """Write one file, compressed for a `wbits` window where worth it; with its body's size."""
    progress = (lambda n: on_chunk(f.path, n)) if on_chunk else None
    body = _packed_body(f, wbits)
    if body is not None:
        return session.write_packed_file(f.path, f.size, f.sha256, body, progress), len(body)
    # the file is opened lazily by open_chunks(): one that vanished or shrank since it was
    # hashed is padded by write_file, fails the device's sha256 check, and the push aborts
    return session.write_file(f.path, f.size, f.sha256, f.open_chunks(), progress), f.size


def _confirm(session: Session, sent: SentFile) -> bool:
    """The file's reply: True if staged, False if it must go again plain."""
    try:
        session.file_reply(sent)
    except InflateUnavailable:
        return False
    except DeviceError as e:
        raise PushError(f"{e}; nothing was installed") from None
    return True


def _discard_replies(session: Session, in_flight: deque[tuple[SentFile, int]]) -> None:
    """Read the replies still owed for files on the link, so `abort` reads its own."""
    try:
        for sent, _ in in_flight:
            try:
                session.file_reply(sent)
            except DeviceError:
                pass
    except LinkError:
        pass  # the link is gone: abort will say so


def _packed_body(f: LocalFile, wbits: int) -> bytes | None:
    if not wbits or f.size < PACK_MIN_SIZE:
        return None  # not worth reading the file whole
    try:
        data = b"".join(f.open_chunks())
    except OSError:
        return None  # the plain path reports it
    if len(data) != f.size:
        return None  # changed since it was hashed: the plain path reports it
    return pack(data, wbits)


def _abort(session: Session) -> None:
    """Discard the staged files; if the link is dead they stay staged until the next push."""
    try:
        session.abort()
    except (LinkError, DeviceError):
        pass
