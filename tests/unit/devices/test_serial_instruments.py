"""The instrument devices against their simulators, through real serial ports."""

import math
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call
from bluesky.utils import FailedStatus

from labsky.devices.elliptec import Ell14, ElliptecBus
from labsky.devices.newport import Esp300, MeterState, Newport1830C
from labsky.devices.spectra_physics import MaiTai, Shutter
from labsky.transports import (
    InstrumentRefusedError,
    InstrumentTimeoutError,
    LinkClosedError,
    ReplyError,
)

LASER_ON = {"laser": {"emission": True, "shutter_open": True, "warmup": 0}}


async def trigger(device):
    await device.trigger()


def cause(exc):
    """The device's own error behind bluesky's FailedStatus."""
    while isinstance(exc, FailedStatus) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@pytest.fixture
def table(simulated_lab, run_engine):
    host = simulated_lab(
        {
            "bus": {"kind": "ell14", "params": {"addresses": ["1", "2", "3"]}},
            "stage": {"kind": "esp300"},
            "meter": {"kind": "newport1830c"},
            "laser": {"kind": "maitai"},
        },
        world=LASER_ON,
    )
    return host


def test_ell14_moves_and_reads_back_the_mounts_position(
    table, run_engine, connect_devices
):
    bus = ElliptecBus(table.endpoints["bus"])
    rotator = Ell14(bus, "2", name="rotator")
    connect_devices(rotator)
    assert call(rotator.serial_number.get_value()) == "11400501"
    start = time.monotonic()
    run_engine(bps.mv(rotator, 90))
    assert time.monotonic() - start >= 90 / 430
    assert call(rotator.position.get_value()) == pytest.approx(90, abs=0.005)
    assert table.world.rotator("2").position() == pytest.approx(90, abs=0.005)
    run_engine(bps.mv(rotator.velocity, 50))
    assert call(rotator.velocity.get_value()) == 50

    async def turn():
        await rotator.move_relative(-30)
        await rotator.jog(forward=True)  # the mount's 5 deg step
        await rotator.home()

    call(turn())
    assert table.world.rotator("2").position() == pytest.approx(0, abs=0.005)
    assert call(rotator.position.get_value()) == pytest.approx(0, abs=0.005)


def test_three_mounts_on_one_bus_never_move_more_than_two_at_once(
    table, run_engine, connect_devices
):
    bus = ElliptecBus(table.endpoints["bus"])
    mounts = [Ell14(bus, address, name=f"m{address}") for address in "123"]
    connect_devices(*mounts)
    # The simulated bus answers a third simultaneous move with GS0D (over
    # current): the driver must queue it instead.
    run_engine(bps.mv(*(x for m in mounts for x in (m, 120))))
    for mount in mounts:
        assert call(mount.position.get_value()) == pytest.approx(120, abs=0.005)


def test_a_mount_that_does_not_answer_is_named(table, run_engine, connect_devices):
    bus = ElliptecBus(table.endpoints["bus"])
    missing = Ell14(bus, "9", name="missing")
    with pytest.raises(
        InstrumentTimeoutError, match=r"missing: no reply to '9in'.*address"
    ):
        connect_devices(missing)


def test_esp300_waits_for_motion_done_and_refuses_moves_beyond_its_limits(
    table, run_engine, connect_devices
):
    stage = Esp300(table.endpoints["stage"], {"x": 1, "y": 2}, name="stage")
    connect_devices(stage)
    run_engine(bps.mv(stage.x.velocity, 10))
    start = time.monotonic()
    run_engine(bps.mv(stage.x, 5))
    assert time.monotonic() - start >= 0.5  # 5 mm at 10 mm/s
    assert call(stage.x.user_readback.get_value()) == pytest.approx(5.0)
    with pytest.raises(FailedStatus) as info:
        run_engine(bps.mv(stage.y, 40))
    assert "stage-y: 40 mm is outside the soft limits [-25, 25] mm" in str(
        cause(info.value)
    )
    assert table.world.stage_axis(2).position() == 0.0  # nothing was sent


def test_1830c_reads_watts_and_reports_saturation_as_a_state(
    table, run_engine, connect_devices
):
    meter = Newport1830C(table.endpoints["meter"], name="meter")
    connect_devices(meter)
    run_engine(bps.mv(meter.attenuator, True))
    call(trigger(meter))
    reading = call(meter.read())
    assert reading["meter-power"]["value"] == pytest.approx(0.025, rel=0.02)
    assert reading["meter-state"]["value"] == MeterState.OK
    run_engine(bps.mv(meter.attenuator, False))
    call(trigger(meter))
    reading = call(meter.read())
    assert math.isnan(reading["meter-power"]["value"])
    assert reading["meter-state"]["value"] == MeterState.SATURATED
    with pytest.raises(FailedStatus) as info:
        run_engine(bps.mv(meter.wavelength, 1200))
    assert "outside 400-1100 nm" in str(cause(info.value))


def test_maitai_tuning_waits_until_the_wavelength_is_reached(
    table, run_engine, connect_devices
):
    laser = MaiTai(table.endpoints["laser"], name="laser")
    connect_devices(laser)
    assert "MaiTai" in call(laser.identity.get_value())
    start = time.monotonic()
    run_engine(bps.mv(laser, 850))
    assert time.monotonic() - start >= 50 / 100 - 0.05  # 100 nm/s
    assert call(laser.wavelength.get_value()) == pytest.approx(850, abs=1)
    with pytest.raises(FailedStatus):
        run_engine(bps.mv(laser, 1200))  # outside 690-1040 nm


def test_maitai_interlock_refuses_emission_with_the_shutter_open(
    table, run_engine, connect_devices
):
    laser = MaiTai(table.endpoints["laser"], name="laser")
    connect_devices(laser)
    run_engine(bps.mv(laser.emission, False))
    assert call(laser.shutter.get_value()) == Shutter.OPEN
    with pytest.raises(FailedStatus) as info:
        run_engine(bps.mv(laser.emission, True))
    assert isinstance(cause(info.value), InstrumentRefusedError)
    assert "close it first" in str(cause(info.value))
    run_engine(bps.mv(laser.shutter, "closed"))
    run_engine(bps.mv(laser.emission, True))
    assert call(laser.emission.get_value()) is True
    assert call(laser.power.get_value()) > 1.0


def test_errors_name_the_device_and_the_cause(table, run_engine, connect_devices):
    meter = Newport1830C(table.endpoints["meter"], name="meter")
    connect_devices(meter)
    table.set_fault("meter", "silent")
    with pytest.raises(
        InstrumentTimeoutError, match=r"meter: no reply to 'D\?'.*9600 8N1"
    ):
        call(trigger(meter))
    table.set_fault("meter", "garbage")
    with pytest.raises(ReplyError, match="meter: garbled or incomplete reply"):
        call(trigger(meter))
    table.set_fault("meter", "disconnect")
    with pytest.raises(LinkClosedError, match="meter: the connection to .* was lost"):
        call(trigger(meter))


def test_a_port_that_does_not_exist_fails_the_connect_clearly(
    connect_devices, tmp_path
):
    meter = Newport1830C(str(tmp_path / "ttyUSB9"), name="meter")
    with pytest.raises(LinkClosedError, match="meter: cannot open .*ttyUSB9"):
        connect_devices(meter)


def test_a_scan_of_the_coupled_table_follows_malus_law(
    table, run_engine, connect_devices
):
    bus = ElliptecBus(table.endpoints["bus"])
    rotator = Ell14(bus, "2", name="rotator")
    meter = Newport1830C(table.endpoints["meter"], name="meter")
    connect_devices(rotator, meter)
    run_engine(bps.mv(meter.attenuator, True))
    powers = []
    run_engine(
        bp.scan([meter], rotator, 0, 90, 4),
        lambda name, doc: (
            powers.append(doc["data"]["meter-power"]) if name == "event" else None
        ),
    )
    expected = [0.025 * math.cos(math.radians(a)) ** 2 for a in (0, 30, 60, 90)]
    assert powers == pytest.approx(expected, rel=0.02, abs=1e-5)
