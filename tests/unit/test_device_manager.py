"""Building and connecting declared devices: failures by name, others unharmed.

`build_and_connect` runs on a test RunEngine's loop; no session, no storage
worker, no simulator.
"""

import asyncio

import bluesky.plans as bp
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from ophyd_async.core import StandardReadable, soft_signal_rw

from labsky import config
from labsky.device_manager import build_and_connect, disconnect_all
from labsky.kind_registry import device_kinds
from labsky.kinds import DeviceKind, NoParams


class Unreachable(StandardReadable):
    """A device whose transport never answers."""

    def __init__(self, name: str = "") -> None:
        with self.add_children_as_readables():
            self.value = soft_signal_rw(float)
        super().__init__(name=name)

    async def connect(self, mock=False, timeout=10.0, force_reconnect=False):
        if mock:
            return await super().connect(mock=mock, timeout=timeout)
        await asyncio.sleep(timeout)
        raise TimeoutError(f"no reply from 127.0.0.1:1 within {timeout} s")


def unreachable(params: NoParams) -> Unreachable:
    return Unreachable()


def exploding(params: NoParams) -> Unreachable:
    raise OSError("could not open /dev/ttyUSB9: no such device")


@pytest.fixture
def kinds():
    """The registry and two kinds of its own: declared and built like the others."""
    return {
        **device_kinds(),
        "unreachable": DeviceKind("unreachable", unreachable),
        "exploding": DeviceKind("exploding", exploding),
    }


@pytest.fixture
def build(tmp_path, run_engine, kinds):
    """Build a devices file on the RunEngine's loop; links closed at teardown."""
    built = []

    def make(devices_yaml, mock=False):
        path = tmp_path / "devices.yaml"
        path.write_text(devices_yaml)
        result = call_in_bluesky_event_loop(
            build_and_connect(
                config.load_devices(path, kinds),
                fixtures={},
                mock=mock,
                timeout=0.3,
                kinds=kinds,
            )
        )
        built.append(result)
        return result

    yield make
    for result in built:
        call_in_bluesky_event_loop(disconnect_all(result.devices), timeout=10)


def test_failures_are_reported_by_name_without_hiding_others(
    tmp_path, build, run_engine, collect_documents
):
    built = build(
        """\
devices:
  world: {kind: sim_pattern}
  link: {kind: unreachable}
  port: {kind: exploding}
  pdet: {kind: sim_point_detector, requires: {pattern_generator: world}}
"""
    )
    assert set(built.devices) == {"world", "pdet"}
    errors = {name: str(e) for name, e in built.errors.items()}
    declared = tmp_path / "devices.yaml"
    assert errors == {
        "link": f"link (unreachable, declared at {declared}:3) failed to connect "
        "(timeout 0.3 s): TimeoutError: no reply from 127.0.0.1:1 within 0.3 s",
        "port": f"port (exploding, declared at {declared}:4) could not be built: "
        "OSError: could not open /dev/ttyUSB9: no such device",
    }
    assert set(built.unconnected) == {"link"}  # kept, for a reconnect
    # the working device works: two readings of its three channels
    pdet = built.devices["pdet"]
    result = run_engine(bp.count([pdet], num=2), collect_documents)
    assert result.exit_status == "success"
    events = collect_documents.of("event")
    assert len(events) == 2 and "pdet-channel-1-value" in events[0]["data"]


def test_dependents_of_a_failed_device_are_not_built(kinds, build):
    def broken(params):
        raise RuntimeError("world is broken")

    kinds["sim_pattern"] = DeviceKind("sim_pattern", broken)
    built = build(
        """\
devices:
  world: {kind: sim_pattern}
  stage: {kind: sim_stage, requires: {pattern_generator: world}}
  rotator: {kind: sim_motor}
"""
    )
    assert list(built.devices) == ["rotator"]
    assert str(built.errors["world"]).endswith(
        "could not be built: RuntimeError: world is broken"
    )
    assert str(built.errors["stage"]).endswith("was not built because world failed")


def test_mock_per_device_overrides_profile(build):
    built = build(
        """\
devices:
  link: {kind: unreachable, mock: true}
  rotator: {kind: sim_motor, mock: false}
  spare: {kind: sim_motor}
""",
        mock=True,
    )
    assert set(built.devices) == {"link", "rotator", "spare"}
    assert built.errors == {}  # the unreachable link was never dialled
    assert built.mocked == {"link", "spare"}
