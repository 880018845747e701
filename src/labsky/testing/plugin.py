"""The pytest plugin (entry point `labsky`): sessions, documents, simulators."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labsky.testing.documents import DocumentCollector


@pytest.fixture
def labsky_session(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start sessions with data under `tmp_path`; all are closed at teardown.

    Call it as `labsky_session(profile, mock=True, tiled=False)`; keyword
    arguments go to `labsky.session.start`.
    """
    from labsky.session import start

    sessions = []

    def make(profile: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("data_dir", tmp_path / f"data{len(sessions)}")
        kwargs.setdefault("progress", False)
        session = start(profile, **kwargs)
        sessions.append(session)
        return session

    yield make
    for session in reversed(sessions):
        session.close()


@pytest.fixture
def run_engine() -> Iterator[Any]:
    """A RunEngine of the test's own, stopped at teardown.

    It starts the bluesky event loop, so devices connected afterwards (with
    `call_in_bluesky_event_loop`) live on its loop.
    """
    from bluesky import RunEngine

    engine = RunEngine({}, call_returns_result=True)
    yield engine
    if engine.state not in ("idle", "panicked"):
        engine.halt()
    engine.loop.call_soon_threadsafe(engine.loop.stop)
    engine._th.join(10)  # the only handle on the loop thread
    if not engine.loop.is_running():
        engine.loop.close()  # its selector and self-pipe, not left to the GC


@pytest.fixture
def connect_devices(run_engine: Any) -> Iterator[Callable[..., None]]:
    """Connect devices on the RunEngine's loop; their links close at teardown.

    Call it as `connect_devices(meter, stage, timeout=5)`.
    """
    from bluesky.run_engine import call_in_bluesky_event_loop

    from labsky.device_manager import disconnect_all

    connected: dict[str, Any] = {}

    def connect(*devices: Any, timeout: float = 5.0, mock: bool = False) -> None:
        async def go() -> None:
            for device in devices:
                connected[device.name or str(id(device))] = device
                await device.connect(mock=mock, timeout=timeout)

        call_in_bluesky_event_loop(go())

    yield connect
    call_in_bluesky_event_loop(disconnect_all(connected), timeout=10)


@pytest.fixture
def simulated_lab() -> Iterator[Callable[..., Any]]:
    """Start simulated instruments; all are stopped at teardown.

    Call it as `simulated_lab({"meter": {"kind": "newport1830c"}}, world={...})`
    with a profile's `simulation` entries; it returns the running
    `SimulatorHost` (`host.endpoints["meter"]` is the port to open,
    `host.set_fault("meter", "silent")` injects a fault).
    """
    from labsky.sim import SimulationConfig, SimulatorHost

    hosts: list[Any] = []

    def make(instruments: dict[str, Any], world: dict[str, Any] | None = None) -> Any:
        config = SimulationConfig.model_validate(
            {"instruments": instruments, "world": world or {}}
        )
        host = SimulatorHost(config).start()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


@pytest.fixture
def collect_documents() -> DocumentCollector:
    """A validating document collector to subscribe to a RunEngine."""
    return DocumentCollector()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of the labsky checkout (skips when not run from one)."""
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "profiles").is_dir() and (candidate / "devices").is_dir():
            return candidate
    pytest.skip("not running from a labsky checkout")
