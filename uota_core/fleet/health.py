"""`uota list --health`: how each board's app fares, asked over RemoteIO (`uota_health`) with
the project's password: the boards of a fleet share it. Unlike the hello probe this
authenticates, so it only runs when asked for."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uota_core.config import Config
from uota_core.errors import UotaError
from uota_core.fleet.discover import Board


def describe(report: Any) -> str:
    """One word or two for a `uota_health` report (uota_core.health has the full verdict)."""
    if not isinstance(report, dict):
        return "?"
    app = str(report.get("app", "none"))
    if app in ("crashed", "crashed-kept"):
        return "crashed"
    last = report.get("last") if isinstance(report.get("last"), dict) else None
    if last and "restored" in last and _int(last.get("release")) > _int(report.get("release")):
        # the record of a release newer than the one running: the board went back from it
        return f"rolled back to {last['restored'] or '(none)'}"
    if app == "none" or (app == "returned" and not report.get("version")):
        return "no app"  # nothing pushed yet
    if app == "running":
        return "healthy" if report.get("healthy") else "starting"
    return "app returned" if app == "returned" else app  # its run() ended


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def ask(cfg: Config, board: Board, timeout: float) -> str:
    """The board's health in a word, or why it couldn't be asked (in brackets)."""
    from uota_core.remoteio import RemoteIOClient

    if not board.addresses:
        return "? (serial only: asking would stop the app)"
    try:
        with RemoteIOClient(board.addresses[0], int(cfg["remoteioPort"]), timeout=timeout, password=cfg.password,
                            key_cache=cfg.key_cache) as client:
            return describe(client.call("uota_health"))
    except (UotaError, OSError) as e:
        return f"? ({e})"


def add_health(cfg: Config, boards: list[Board], timeout: float, jobs: int = 8) -> None:
    """Fill in each board's `health`, asking `jobs` boards at a time."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for board, health in zip(boards, pool.map(lambda b: ask(cfg, b, timeout), boards)):
            board.health = health
