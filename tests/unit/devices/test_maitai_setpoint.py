"""`%wa` showed the MaiTai at readback 800 nm, setpoint 0: the setpoint is the laser's."""

import bluesky.plan_stubs as bps
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call

from labsky.devices.spectra_physics import MaiTai


@pytest.mark.parametrize("start", [800.0, 915.0])
def test_the_setpoint_at_connect_is_the_wavelength_the_laser_is_set_to(
    simulated_lab, run_engine, connect_devices, start
):
    host = simulated_lab(
        {"laser": {"kind": "maitai"}},
        world={"laser": {"start_wavelength": start, "warmup": 0}},
    )
    laser = MaiTai(host.endpoints["laser"], name="laser")
    connect_devices(laser)
    location = call(laser.locate())
    assert location == {"setpoint": start, "readback": start}
    run_engine(bps.mv(laser, 820))
    assert call(laser.locate())["setpoint"] == 820
