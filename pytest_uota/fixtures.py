"""The fixtures: esp32_device, ota_push, remoteio, virtual_board (and uota_transport, the
parameter that runs a device test once per selected transport)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from uota_core.device import Device
from uota_core.errors import UotaError
from uota_core.push import PushResult
from uota_core.sim import VirtualBoard

from pytest_uota.state import plugin_state


def device_scope(fixture_name: str, config: pytest.Config) -> str:
    """esp32_device's scope: the `uota_device_scope` ini key (session by default)."""
    return plugin_state(config).settings.scope


@pytest.fixture(scope=device_scope)
def uota_transport(request: pytest.FixtureRequest) -> str:
    """The transport this run of the test uses (the parameter in `test_x[wifi_tcp]`)."""
    transport = getattr(request, "param", None)
    if transport is None:
        raise pytest.UsageError("uota_transport is set by parametrization; request esp32_device instead")
    reason = plugin_state(request.config).unavailable(transport)
    if reason:
        pytest.skip(f"{transport}: {reason}")
    return str(transport)


@pytest.fixture(scope=device_scope)
def esp32_device(request: pytest.FixtureRequest, uota_transport: str) -> Iterator[Device]:
    """The board under test over this test's transport: ping(), version(), ls(), get(), reset(),
    wait_ready(), expect(pattern, timeout) on its print output, .transport, .log."""
    target = plugin_state(request.config).target_or_exit()
    device = target.open_device(uota_transport)
    try:
        yield device
    finally:
        target.close_device(device)


@pytest.fixture
def ota_push(esp32_device: Device) -> Callable[..., PushResult]:
    """Push to the board: `ota_push()` the fast set, or `ota_push(files=[...], mode="full",
    version="1.2.0")`; returns the result (sent, skipped, deleted, bytes, seconds) once the
    app is healthy. An app that crashes or is rolled back raises uota_core.health.AppNotHealthy
    with the board's traceback; `wait=False` returns at the commit."""

    def push(files: list[str] | None = None, mode: str = "fast", version: str | None = None,
             wait: bool = True) -> PushResult:
        return esp32_device.push(files=files, mode=mode, version=version, wait=wait)

    return push


class RemoteIO:
    """The test's RemoteIO client: handler calls and the print output seen during the test."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._start = device.output.mark()

    def __repr__(self) -> str:
        return f"<RemoteIO {self.device.name} over {self.device.transport}>"

    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Run handler `name` on the device with keyword arguments; its return value."""
        return self.device.call(name, **kwargs)

    @property
    def output(self) -> str:
        """The device's print() output since this test started."""
        return self.device.output.since(self._start)

    def listen(self, timeout: float = 1.0) -> Iterator[str]:
        """New print() output as it arrives, for `timeout` seconds."""
        self.device.stream()
        pos = self.device.output.mark()
        deadline = time.monotonic() + timeout
        while True:
            text, pos = self.device.output.wait_more(pos, deadline - time.monotonic())
            if text:
                yield text
            if time.monotonic() >= deadline:
                return

    def expect(self, pattern: str, timeout: float = 5.0) -> str:
        """Wait for regex `pattern` in the output; the matched text."""
        return self.device.expect(pattern, timeout).group(0)


@pytest.fixture
def remoteio(esp32_device: Device) -> RemoteIO:
    """A connected RemoteIO client: call(name, **kw), output, listen(timeout)."""
    return RemoteIO(esp32_device)


@pytest.fixture
def virtual_board(request: pytest.FixtureRequest) -> Iterator[VirtualBoard]:
    """The session's virtual board, for tests that cut power or inject serial faults.

    Afterwards the line is repaired and the board powered on and ready again, so later
    tests find it as before.
    """
    state = plugin_state(request.config)
    target = state.target_or_exit()
    if target.board is None:
        pytest.skip("needs a virtual board: this run tests a real board (--uota-port/--uota-host); "
                    "add --uota-sim to use a virtual one")
    board = target.board
    yield board
    board.set_faults()
    if not board.running:
        board.power_on()
    for device in list(target.devices):
        try:
            device.wait_ready()
        except UotaError as e:
            pytest.fail(f"the virtual board did not come back after the test: {e}")
