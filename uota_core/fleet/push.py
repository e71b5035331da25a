"""`uota fast --all` / `full --all`: the one-board push (uota_core.push) to every board
found, several at once. The file set is scanned and compiled once; a board that fails is
reported and the others go on. The boards of a fleet share the project's secrets."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from uota_core.config import Config
from uota_core.errors import UotaError
from uota_core.fleet.discover import Board
from uota_core.health import UNKNOWN, AppHealth
from uota_core.push import ChunkCallback, PlanAhead, PushResult

DEFAULT_JOBS = 8
# exit status of `--all` when boards failed to take the push (a health verdict has its own codes)
FAILED = 1


@dataclass
class Target:
    """How to reach one board for the push: its address over WiFi, or its serial port."""

    board: Board
    transport: str
    host: str | None
    port: str | None

    @property
    def where(self) -> str:
        return self.host or self.port or ""


def target_of(board: Board, transport: str | None) -> Target | None:
    """The way to push to `board` (`transport`, else WiFi where it has an address), or None."""
    if transport != "serial" and board.addresses:
        return Target(board, "wifi_tcp", board.addresses[0], None)
    if transport != "wifi_tcp" and board.port:
        return Target(board, "serial", None, board.port)
    return None


@dataclass
class BoardPush:
    """What the push did on one board."""

    target: Target
    result: PushResult | None = None
    health: AppHealth | None = None
    error: str = ""
    error_code: int = FAILED  # the error's own exit status (2: a file that doesn't compile)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.error:
            return self.error_code
        return self.health.exit_code if self.health is not None else 0

    @property
    def app(self) -> str:
        if self.health is not None:
            return self.health.app
        return "" if self.error or self.result is None or not self.result.committed else UNKNOWN

    def as_json(self) -> dict[str, Any]:
        board, result = self.target.board, self.result
        return {"board": board.label, "id": board.id, "transport": self.target.transport, "where": self.target.where,
                "sent": len(result.sent) if result else 0, "bytes": result.bytes if result else 0,
                "version": result.version if result else None, "committed": bool(result and result.committed),
                "seconds": round(self.seconds, 3), "app": self.app or None,
                "traceback": (self.health.traceback or None) if self.health else None,
                "error": self.error or (self.health.summary() if self.exit_code else None)}


def push_all(cfg: Config, targets: list[Target], mode: str, jobs: int = DEFAULT_JOBS, version: str | None = None,
             wipe: bool = False, compress: bool | None = None, wait: bool = True,
             on_chunk: Callable[[Target, str, int], None] | None = None,
             on_done: Callable[[BoardPush], None] | None = None) -> list[BoardPush]:
    """Push to every target, `jobs` at a time; one BoardPush each, in the targets' order.
    `on_chunk(target, path, nbytes)` sees the bytes go; `on_done` each board as it ends."""
    if jobs < 1:
        raise UotaError(f"--jobs {jobs}: give at least 1 (boards pushed at once)")
    planned = PlanAhead(cfg, mode)  # the scan, once; the compile once per .mpy version

    def one(target: Target) -> BoardPush:
        chunk: ChunkCallback | None = (lambda path, n: on_chunk(target, path, n)) if on_chunk else None
        done = _push_one(cfg, target, mode, planned, version, wipe, compress, wait, chunk)
        if on_done:
            on_done(done)
        return done

    with ThreadPoolExecutor(max_workers=min(jobs, max(1, len(targets))), thread_name_prefix="uota-push") as pool:
        return list(pool.map(one, targets))


def _push_one(cfg: Config, target: Target, mode: str, planned: PlanAhead, version: str | None, wipe: bool,
              compress: bool | None, wait: bool, on_chunk: ChunkCallback | None) -> BoardPush:
    from uota_core.connect import app_query, open_session
    from uota_core.health import wait_for_app
    from uota_core.push import push

    started = time.monotonic()
    done = BoardPush(target)
    try:
        with open_session(cfg, target.transport, target.host, target.port) as session:
            done.result = push(session, cfg, mode, version=version, wipe=wipe, on_chunk=on_chunk, compress=compress,
                               planned=planned)
        if wait and done.result.committed and done.result.release:
            query = app_query(cfg, target.transport, target.host, target.port, done.result.release)
            try:
                done.health = wait_for_app(query, done.result.release, done.result.version,
                                           float(cfg["healthyAfter"]))
            finally:
                query.close()
    except (UotaError, OSError) as e:  # this board only: the others go on
        done.error = str(e)
        done.error_code = int(getattr(e, "exit_code", FAILED))
    done.seconds = time.monotonic() - started
    return done
