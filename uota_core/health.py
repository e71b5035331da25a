"""After a commit: wait for the board to come back and tell whether the app came up.

The board answers the RemoteIO builtin `uota_health` (device/lib/uota/health.py) with the
installed version and release, the app thread's state, whether the boot guard marked the
boot healthy, the traceback of a crash in this boot, and the record of the last crash or
rollback kept on flash (so a crash a host didn't see, or the rollback that followed it,
still counts). `wait_for_app` polls it until a verdict or a deadline derived from
`healthyAfter` (docs/protocol.md "App health").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uota_core.errors import UotaError

HEALTHY, CRASHED, ROLLED_BACK, UNKNOWN = "healthy", "crashed", "rolled_back", "unknown"
# exit codes of `uota fast`/`full` (README "Exit codes"); 1 is any other error, 2 a file
# that doesn't compile
EXIT_CODES = {HEALTHY: 0, CRASHED: 3, ROLLED_BACK: 4, UNKNOWN: 5}
# for the board to finish the commit, reboot and start the app, before healthyAfter runs
BOOT_ALLOWANCE = 30.0
POLL_EVERY = 0.2

Query = Callable[[], Any]  # one `uota_health` call; raises UotaError/OSError while the board is away
StatusCallback = Callable[[str], None]


@dataclass
class AppHealth:
    """The verdict on the app a push installed."""

    app: str  # HEALTHY, CRASHED, ROLLED_BACK or UNKNOWN
    pushed: str  # the version the push installed
    version: str = ""  # the version the board runs now (the restored one after a rollback)
    traceback: str = ""  # what the board printed when the app raised
    reason: str = ""  # UNKNOWN: why there is no verdict
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.app]

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"app": self.app, "traceback": self.traceback or None}
        if self.app == ROLLED_BACK:
            data["rolled_back_to"] = self.version
        return data

    def summary(self) -> str:
        if self.app == HEALTHY:
            return f"app healthy: version {self.pushed} is up ({self.seconds:.1f}s after the commit)"
        if self.app == CRASHED:
            return (f"the app crashed: version {self.pushed} raised at boot (the boot guard restores the "
                    f"previous set, if there is one, after 3 crashing boots). Fix it and push again.")
        if self.app == ROLLED_BACK:
            return (f"rolled back: version {self.pushed} did not come up, the board restored version "
                    f"{self.version or '(none)'}. Fix the app and push again.")
        return f"no verdict on version {self.pushed}: {self.reason}"

    def describe(self) -> str:
        """The summary, then the traceback the board printed (if any)."""
        if not self.traceback:
            return self.summary()
        trace = "\n".join("    " + line for line in self.traceback.rstrip().splitlines())
        return f"{self.summary()}\nthe board printed:\n{trace}"


class AppNotHealthy(UotaError):
    """The pushed app crashed, was rolled back, or gave no sign of life in time."""

    def __init__(self, health: AppHealth) -> None:
        super().__init__(health.describe())
        self.health = health


def judge(report: Any, release: int, pushed: str) -> AppHealth | None:
    """The verdict a `uota_health` report gives on release `release`, or None: ask again."""
    if not isinstance(report, dict) or report.get("release") != release:
        return None  # the old boot still answering, before its reset
    last = report.get("last") if isinstance(report.get("last"), dict) else None
    mine = last if last is not None and last.get("release") == release else None
    if mine is not None and "restored" in mine:
        return AppHealth(ROLLED_BACK, pushed, str(mine["restored"]), str(mine.get("trace") or ""))
    if report.get("app") in ("crashed", "crashed-kept"):
        return AppHealth(CRASHED, pushed, str(report.get("version", "")), str(report.get("trace") or ""))
    if mine is not None and mine.get("trace"):  # an earlier boot of this release crashed
        return AppHealth(CRASHED, pushed, str(report.get("version", "")), str(mine["trace"]))
    if report.get("healthy"):
        return AppHealth(HEALTHY, pushed, str(report.get("version", "")))
    return None


def deadline_for(healthy_after: float) -> float:
    """Seconds to wait for a verdict: the boot, then healthyAfter, with room for a slow board."""
    return BOOT_ALLOWANCE + 1.5 * float(healthy_after)


def wait_for_app(query: Query, release: int, pushed: str, healthy_after: float,
                 on_status: StatusCallback | None = None, timeout: float | None = None) -> AppHealth:
    """Poll `query` until the board gives a verdict on `release`, or the deadline passes."""
    from uota_core.remoteio import RemoteCallError

    started = time.monotonic()
    limit = deadline_for(healthy_after) if timeout is None else timeout
    deadline = started + limit
    last_error = "the board did not answer"
    while True:
        status = "waiting for the board to come back"
        try:
            report = query()
        except RemoteCallError as e:
            if "no handler" in str(e):  # a stack from before this report
                return AppHealth(UNKNOWN, pushed, reason="the board's OTA stack can't report the app's health: "
                                 "run `uota bootstrap` to update it (or push with --no-wait)",
                                 seconds=time.monotonic() - started)
            raise
        except (UotaError, OSError) as e:
            last_error = str(e)
        else:
            verdict = judge(report, release, pushed)
            if verdict is not None:
                verdict.seconds = time.monotonic() - started
                return verdict
            if isinstance(report, dict) and report.get("release") == release:
                status = f"waiting for the app to be healthy (app {report.get('app')}, healthyAfter {healthy_after:g}s)"
        now = time.monotonic()
        if on_status:
            on_status(f"{status}: {now - started:.0f}s")
        if now >= deadline:
            return AppHealth(UNKNOWN, pushed, reason=f"not healthy within {limit:.0f}s ({status}; last error: "
                             f"{last_error}). Check the board's console (`uota terminal`)", seconds=now - started)
        time.sleep(min(POLL_EVERY, max(0.0, deadline - now)))


class RemoteIOQuery:
    """`uota_health` over TCP RemoteIO: one connection, made again after each reset."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect  # -> a connected RemoteIOClient
        self._client: Any = None

    def __call__(self) -> Any:
        from uota_core.link import LinkError

        if self._client is None:
            self._client = self._connect()
        try:
            return self._client.call("uota_health")
        except LinkError:
            self.close()  # the board reset under us: connect again next time
            raise

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


class ConsoleQuery:
    """A report from the board's serial console, read without stopping the boot."""

    def __init__(self, port: str, baud: int, release: int, seen: str = "",
                 sink: Callable[[str], None] | None = None) -> None:
        import codecs

        self.port, self.baud, self.release = port, baud, release
        self.text = seen  # what was read since the commit before this query took the port
        self.sink = sink  # gets each new piece of console text too
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._ser: Any = None

    def __call__(self) -> dict[str, Any]:
        from uota_core.serialport import open_port

        if self._ser is None:
            self._ser = open_port(self.port, self.baud)
        while True:
            data = self._ser.read(max(1, self._ser.in_waiting))  # the port's timeout: 50 ms
            if not data:
                break
            text = self._decoder.decode(data)
            self.text += text
            if self.sink:
                self.sink(text)
        return console_report(self.text, self.release)

    def close(self) -> None:
        if self._ser is not None:
            ser, self._ser = self._ser, None
            ser.close()


CRASH_MARK = "uota: the app crashed:\n"
HEALTHY_MARK = "uota: boot marked healthy"
ROLLBACK_RE = r"uota: rolling back to version (\S*)"


def console_report(text: str, release: int) -> dict[str, Any]:
    """A `uota_health`-like report from what the board printed on its console since the
    commit (over serial, where asking would stop the boot): a crash's traceback once it is
    complete, the healthy mark, the rollback line."""
    import re

    text = text.replace("\r\n", "\n")
    report: dict[str, Any] = {"release": release, "app": "running", "healthy": False, "trace": "", "last": None}
    rolled = re.search(ROLLBACK_RE, text)
    crash = text.find(CRASH_MARK)
    trace = ""
    if crash >= 0:
        # the traceback: "Traceback ...", its indented lines, then the exception's own line
        lines = text[crash + len(CRASH_MARK):].split("\n")
        for i, line in enumerate(lines[:-1]):  # the last piece may still be arriving
            if i and not line.startswith(" "):
                trace = "\n".join(lines[: i + 1]) + "\n"
                break
    if rolled:
        report["last"] = {"release": release, "restored": rolled.group(1), "trace": trace}
    elif trace:
        report.update(app="crashed", trace=trace)
    elif crash < 0 and HEALTHY_MARK in text:
        report["healthy"] = True
    return report
