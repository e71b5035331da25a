"""Reporting: the session header, each device test's output in its report (shown on
failure, and a JUnit XML property), and one log file per test with --uota-logdir."""

from __future__ import annotations

import re
from collections.abc import Generator
from pathlib import Path

import pytest

from uota_core.device import Device
from uota_core.errors import UotaError

from pytest_uota.state import plugin_state
from pytest_uota.target import load_project_config

_DEVICE = pytest.StashKey[tuple[Device, int]]()  # the test's device, and its output offset at the start
_OUTCOME = pytest.StashKey[str]()


def header_lines(config: pytest.Config) -> list[str]:
    state = plugin_state(config)
    settings = state.settings
    if not settings.config_path.is_file() and not settings.wants_real_board:
        return []  # not a firmware project: say nothing
    if settings.wants_real_board:
        boards = ", ".join(" ".join(x for x in slot if x) for slot in settings.slots)
        where = f"board {boards}"
    else:
        where = "a virtual board (MicroPython unix port) per process"
    transports = ", ".join(settings.transports) or "from config/ota.json"
    lines = [f"uota: target {where}; transports: {transports}; session push: {settings.push}; "
             f"config: {settings.config_path}"]
    try:
        lines += [f"uota: warning: {w}" for w in load_project_config(settings).warnings]
    except UotaError:
        pass  # a bad config ends the session with its own message when the board starts
    return lines


def on_setup_start(item: pytest.Item) -> dict[int, int]:
    target = plugin_state(item.config).target
    return {id(d): d.output.mark() for d in target.devices} if target else {}


def on_setup_end(item: pytest.Item, marks: dict[int, int]) -> None:
    device = getattr(item, "funcargs", {}).get("esp32_device")
    if isinstance(device, Device):
        mark = marks.get(id(device), 0)  # a device opened for this test: all its output is the test's
        device.cursor = mark
        item.stash[_DEVICE] = (device, mark)


def attach_output(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    entry = item.stash.get(_DEVICE, None)
    if entry is None:
        return
    if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
        device, mark = entry
        text = device.output.since(mark)
        item.add_report_section(call.when, f"device output [{device.transport}]", text or "(nothing printed)\n")
        item.user_properties.append((f"uota device output [{device.transport}]", text))


def record_outcome(item: pytest.Item, report: pytest.TestReport) -> None:
    previous = item.stash.get(_OUTCOME, "passed")
    if report.failed or previous == "failed":
        outcome = "failed" if report.when == "call" or previous == "failed" else "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = previous
    item.stash[_OUTCOME] = outcome


def _log_name(nodeid: str) -> str:
    return re.sub(r"[^\w.\[\]=+-]+", "_", nodeid).strip("_")[:200] + ".log"


def write_log(item: pytest.Item, logdir: Path) -> None:
    entry = item.stash.get(_DEVICE, None)
    if entry is None:
        return
    device, mark = entry
    logdir.mkdir(parents=True, exist_ok=True)
    head = (f"# {item.nodeid}: {item.stash.get(_OUTCOME, 'passed')}\n"
            f"# board: {device.name}, transport: {device.transport}\n")
    (logdir / _log_name(item.nodeid)).write_text(head + device.output.since(mark), encoding="utf-8")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    marks = on_setup_start(item)
    try:
        return (yield)
    finally:
        on_setup_end(item, marks)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                         pytest.TestReport]:
    attach_output(item, call)
    report = yield
    record_outcome(item, report)
    logdir = plugin_state(item.config).settings.logdir
    if call.when == "teardown" and logdir is not None:
        write_log(item, logdir)
    return report
