"""The registry of device kinds: the device packages' and the simulation's, once each."""

import pytest

from labsky import kind_registry
from labsky.devices.registry import package_kinds
from labsky.kind_registry import device_kinds
from labsky.sim import SimulatedTable, World, WorldParams
from labsky.sim.kinds import KINDS as SIM_KINDS
from labsky.sim.kinds import SimPatternParams


def test_the_registry_is_the_simulations_kinds_then_the_device_packages():
    kinds = device_kinds()
    simulated = [k.name for k in SIM_KINDS]
    assert simulated == [
        "sim_pattern",
        "sim_motor",
        "sim_stage",
        "sim_point_detector",
        "sim_blob_detector",
    ]
    assert list(kinds) == simulated + [k.name for k in package_kinds()]
    assert {"pvcam", "sim_pulse_generator", "ell14", "redpitaya"} <= set(kinds)
    assert all(kinds[k.name] is k for k in SIM_KINDS)


def test_a_kind_registered_twice_is_refused(monkeypatch):
    monkeypatch.setattr(
        kind_registry, "SIM_KIND_MODULES", ("labsky.sim.kinds", "labsky.sim.kinds")
    )
    with pytest.raises(
        RuntimeError, match="device kind 'sim_pattern' registered twice"
    ):
        device_kinds()


def test_the_beam_is_the_tables_or_one_of_its_own():
    factory = device_kinds()["sim_pattern"].factory
    world = World(WorldParams(seed=3))
    assert factory(SimPatternParams(), SimulatedTable(world)).world is world
    for without in (None, SimulatedTable(None)):
        own = factory(SimPatternParams(), without).world
        assert own is not world and own.laser.emission and own.laser.shutter_open
