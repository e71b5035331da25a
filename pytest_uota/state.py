"""Per-process plugin state: the settings, the project config and the target board."""

from __future__ import annotations

import pytest

from uota_core.config import Config
from uota_core.errors import UotaError

from pytest_uota.options import Settings, read_settings
from pytest_uota.target import Target, load_project_config, selected_transports

# fixtures that need a board: a test using any of them makes the session start one
BOARD_FIXTURES = frozenset({"uota_transport", "esp32_device", "ota_push", "remoteio", "virtual_board"})


def fail_session(message: str) -> None:
    """Stop the whole run with one message (instead of N failing tests)."""
    pytest.exit(f"uota: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


class PluginState:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = read_settings(config)
        self._cfg: Config | None = None
        self.target: Target | None = None
        self.start_error: str | None = None

    @property
    def worker_id(self) -> str:
        worker = getattr(self.config, "workerinput", None)
        return str(worker["workerid"]) if worker else "master"

    def project_config(self) -> Config:
        """The project's config; a missing or bad one ends the session."""
        if self._cfg is None:
            try:
                self._cfg = load_project_config(self.settings)
            except UotaError as e:
                self.start_error = str(e)
                fail_session(self.start_error)
        assert self._cfg is not None
        return self._cfg

    def transports(self) -> list[str]:
        """The transports to parametrize with. Called during collection, where a config error
        would become one collection error per module: it is reported when the board starts."""
        try:
            cfg: Config | None = self._cfg or load_project_config(self.settings)
        except UotaError:
            cfg = None
        return selected_transports(self.settings, cfg)

    def start_target(self) -> Target:
        """Start the board (once); any problem ends the session with one clear message."""
        if self.target is None:
            if self.start_error:
                fail_session(self.start_error)
            target = Target(self.settings, self.project_config(), self.worker_id)
            try:
                target.start()
            except UotaError as e:
                self.start_error = str(e)
                fail_session(self.start_error)
            self.target = target
        return self.target

    def target_or_exit(self) -> Target:
        return self.start_target()

    def unavailable(self, transport: str) -> str | None:
        return self.start_target().unavailable.get(transport)

    def stop(self) -> None:
        if self.target is not None:
            self.target.stop()
            self.target = None


_KEY = pytest.StashKey[PluginState]()


def install_state(config: pytest.Config) -> PluginState:
    state = PluginState(config)
    config.stash[_KEY] = state
    return state


def plugin_state(config: pytest.Config) -> PluginState:
    return config.stash[_KEY]
