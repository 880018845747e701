"""Device features that use the simulators' fuller command sets."""

import bluesky.plan_stubs as bps
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call

from labsky.devices.elliptec import Ell14, ElliptecBus
from labsky.devices.newport import Esp300
from labsky.devices.spectra_physics import MaiTai

LASER_ON = {"laser": {"emission": True, "shutter_open": False, "warmup": 0}}


def done(method, *args):
    """Run a device method returning a status on the RunEngine's loop; wait."""

    async def wait():
        await method(*args)

    call(wait())


@pytest.fixture
def table(simulated_lab, run_engine):
    return simulated_lab(
        {
            "bus": {"kind": "ell14", "params": {"addresses": ["2"]}},
            "stage": {"kind": "esp300"},
            "laser": {"kind": "maitai"},
        },
        world=LASER_ON,
    )


def test_esp300_axis_homes_defines_home_and_names_its_stage(
    table, run_engine, connect_devices
):
    stage = Esp300(table.endpoints["stage"], {"x": 1}, name="stage")
    connect_devices(stage)
    assert call(stage.x.stage_id.get_value()) == "ILS50CC, B3041"
    assert call(stage.x.deceleration.get_value()) == pytest.approx(80.0)
    run_engine(bps.mv(stage.x.velocity, 25, stage.x.deceleration, 40))
    assert call(stage.x.deceleration.get_value()) == pytest.approx(40.0)
    run_engine(bps.mv(stage.x, 3))
    done(stage.x.define_home, 10.0)  # here is 10 mm from now on
    assert call(stage.x.user_readback.get_value()) == pytest.approx(10.0)
    assert table.world.stage_axis(1).position() == pytest.approx(3.0)
    done(stage.x.home)  # to the home switch; the position becomes 0
    assert table.world.stage_axis(1).position() == pytest.approx(0.0)
    assert call(stage.x.user_readback.get_value()) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="home search mode 9"):
        done(stage.x.home, 9)


def test_ell14_jog_step_and_home_offset_are_settings_in_degrees(
    table, run_engine, connect_devices
):
    rotator = Ell14(ElliptecBus(table.endpoints["bus"]), "2", name="rotator")
    connect_devices(rotator)
    assert call(rotator.jog_step.get_value()) == pytest.approx(5.0, abs=1e-3)
    run_engine(bps.mv(rotator.jog_step, 12.5, rotator.home_offset, 30))
    assert call(rotator.jog_step.get_value()) == pytest.approx(12.5, abs=1e-3)
    done(rotator.jog, True)
    assert table.world.rotator("2").position() == pytest.approx(12.5, abs=0.01)
    done(rotator.home)  # home is at the offset now
    assert table.world.rotator("2").position() == pytest.approx(30, abs=0.01)
    assert call(rotator.position.get_value()) == pytest.approx(0, abs=1e-3)
    configuration = call(rotator.read_configuration())
    assert configuration["rotator-home_offset"]["value"] == pytest.approx(30, 1e-3)
    with pytest.raises(ValueError, match="not within 0-360"):
        done(rotator.jog_step.set, 400)


def test_maitai_reports_its_pump_power(table, connect_devices):
    laser = MaiTai(table.endpoints["laser"], name="laser")
    connect_devices(laser)
    assert call(laser.pump_power.get_value()) == pytest.approx(13.43)
    configuration = call(laser.read_configuration())
    assert configuration["laser-pump_power"]["value"] == pytest.approx(13.43)
