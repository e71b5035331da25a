"""The pytest plugin, registered through the `pytest11` entry point.

It holds no protocol logic: the fixtures wrap `uota_core` (`Device`, `VirtualBoard`).
"""

from __future__ import annotations

import pytest

from pytest_uota.fixtures import esp32_device, ota_push, remoteio, uota_transport, virtual_board  # noqa: F401
from pytest_uota.options import KNOWN_TRANSPORTS, add_options
from pytest_uota.reporting import header_lines, pytest_runtest_makereport, pytest_runtest_setup  # noqa: F401
from pytest_uota.state import BOARD_FIXTURES, fail_session, install_state, plugin_state


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "uota(transports=[...]): run this device test only over these "
                            "transports (of those selected for the run)")
    state = install_state(config)
    workers = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    if isinstance(workers, int) and state.settings.wants_real_board and workers > len(state.settings.slots):
        raise pytest.UsageError(f"-n {workers} needs {workers} boards, but {len(state.settings.slots)} are given: "
                                "list one serial port per worker in --uota-port (comma-separated), or use fewer "
                                "workers")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return header_lines(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "uota_transport" not in metafunc.fixturenames:
        return
    state = plugin_state(metafunc.config)
    selected = state.transports()
    marker = metafunc.definition.get_closest_marker("uota")
    allowed = marker.kwargs.get("transports") if marker else None
    if allowed is None:
        metafunc.parametrize("uota_transport", selected, indirect=True, scope=state.settings.scope, ids=selected)
        return
    allowed = [allowed] if isinstance(allowed, str) else list(allowed)
    unknown = [t for t in allowed if t not in KNOWN_TRANSPORTS]
    if unknown:
        fail_session(f"{metafunc.definition.nodeid}: @pytest.mark.uota names unknown transport {unknown[0]!r} "
                     f"(known: {', '.join(KNOWN_TRANSPORTS)})")
    wanted = [t for t in selected if t in allowed]
    if wanted:
        metafunc.parametrize("uota_transport", wanted, indirect=True, scope=state.settings.scope, ids=wanted)
        return
    reason = f"none of this test's transports ({', '.join(allowed)}) is selected for this run ({', '.join(selected)})"
    params = [pytest.param(t, id=t, marks=pytest.mark.skip(reason=reason)) for t in allowed]
    metafunc.parametrize("uota_transport", params, indirect=True, scope=state.settings.scope)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeout = plugin_state(config).settings.timeout
    for item in items:
        if "uota_transport" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout))


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or not any(BOARD_FIXTURES & set(getattr(item, "fixturenames", ()))
                                            for item in session.items):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    state = plugin_state(config)
    if reporter is not None:
        what = "a real board" if state.settings.wants_real_board else "a virtual board"
        reporter.write_line(f"uota: starting {what}...")
    target = state.start_target()
    if reporter is not None:
        reporter.write_line(target.describe())
        for transport, reason in target.unavailable.items():
            reporter.write_line(f"uota: {transport} tests will be skipped: {reason}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    plugin_state(session.config).stop()
