"""labsky's hardware-agnostic plans on mock-mode devices: no instrument, no session.

The devices are ophyd-async devices connected in mock mode; the "physics"
(a beam profile along an axis, Malus's law behind a polariser) is ophyd-async's
mock helpers: a put to the axis sets the detector's next value.
`wavelength_scan` is checked message by message on bluesky's RunEngineSimulator.
"""

import math

import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.simulators import RunEngineSimulator
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StandardReadableFormat,
    callback_on_mock_put,
    get_mock_put,
    set_mock_value,
    soft_signal_rw,
)

from labsky.plans.alignment import PeakNotFoundError, peak_scan
from labsky.plans.optics import polarization_scan, wavelength_scan


class Axis(StandardReadable):
    """A movable whose position is read back (a motor, a rotation mount)."""

    def __init__(self, units: str, name: str = ""):
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.position = soft_signal_rw(float, units=units)
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def set(self, value: float) -> None:
        await self.position.set(value)


class Meter(StandardReadable):
    """A power meter: one hinted reading."""

    def __init__(self, name: str = ""):
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.power = soft_signal_rw(float, units="W")
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.wavelength = soft_signal_rw(int, units="nm")
        super().__init__(name=name)


@pytest.fixture
def bench(connect_devices):
    """An axis and a meter in mock mode; the meter follows the axis."""

    def make(units, physics):
        axis, meter = Axis(units, name="axis"), Meter(name="meter")
        connect_devices(axis, meter, mock=True)
        callback_on_mock_put(
            axis.position,
            lambda value, **_: set_mock_value(meter.power, physics(value)),
        )
        return axis, meter

    return make


def position(axis):
    return call_in_bluesky_event_loop(axis.position.get_value())


def test_peak_scan_goes_to_the_centre_of_the_beam(bench, run_engine, collect_documents):
    axis, meter = bench("mm", lambda x: 1e-3 * math.exp(-(((x - 0.3) / 0.2) ** 2)))
    result = run_engine(peak_scan([meter], axis, -1, 1, 41), collect_documents)
    stats = result.plan_result
    assert stats["cen"] == pytest.approx(0.3, abs=0.01)
    assert stats["moved_to"] == stats["cen"] and position(axis) == stats["cen"]
    # the scan's 41 points, then one move to the peak
    puts = [c.args[0] for c in get_mock_put(axis.position).call_args_list]
    assert puts[:41] == pytest.approx(list(np.linspace(-1, 1, 41)))
    assert puts[41:] == [stats["cen"]]
    (start,) = collect_documents.of("start")
    assert start["plan_name"] == "peak_scan" and start["peak_field"] == "meter-power"


# bluesky's PeakStats divides by the flat signal's zero sum
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_peak_scan_on_a_flat_signal_says_so_and_stays(bench, run_engine):
    axis, meter = bench("mm", lambda x: 0.0)
    with pytest.raises(PeakNotFoundError, match="no peak in 'meter-power'"):
        run_engine(peak_scan([meter], axis, -1, 1, 5))
    assert len(get_mock_put(axis.position).call_args_list) == 5  # no move after


def test_polarization_scan_fits_malus_law(bench, run_engine):
    axis, meter = bench(
        "deg", lambda t: 2e-3 * math.cos(math.radians(t - 37)) ** 2 + 1e-6
    )
    fit = run_engine(polarization_scan(meter, axis, 0, 180, 10)).plan_result
    assert fit["angle_max"] == pytest.approx(37, abs=0.01)
    assert fit["power_max"] == pytest.approx(2e-3 + 1e-6, rel=1e-6)
    assert fit["extinction"] == pytest.approx(1e-6 / (2e-3 + 1e-6), rel=1e-3)


def test_wavelength_scan_moves_the_meters_with_the_laser_message_by_message():
    laser, meter = Axis("nm", name="laser"), Meter(name="meter")
    simulator = RunEngineSimulator()
    messages = simulator.simulate_plan(
        wavelength_scan(
            [meter], laser, 800, 801, 0.5, track=[meter.wavelength], settle=0.2
        )
    )
    moves = [(m.obj.name, m.args[0]) for m in messages if m.command == "set"]
    # each point: the laser to its wavelength, the meter to the nearest nm
    assert moves == [
        ("laser", 800.0), ("meter-wavelength", 800),
        ("laser", 800.5), ("meter-wavelength", 800),
        ("laser", 801.0), ("meter-wavelength", 801),
    ]  # fmt: skip
    steps = [
        (m.command, getattr(m.obj, "name", None) or m.args)
        for m in messages
        if m.command in ("set", "wait", "sleep", "create", "read")
    ]
    first_point = [
        ("set", "laser"), ("set", "meter-wavelength"), ("wait", ()),
        ("sleep", (0.2,)), ("create", ()), ("read", "meter"), ("read", "laser"),
    ]  # fmt: skip
    assert steps[: len(first_point)] == first_point
    creates = [m.kwargs["name"] for m in messages if m.command == "create"]
    assert creates == ["primary", "tracking"] * 3


def test_wavelength_scan_refuses_a_backward_step_before_any_message():
    with pytest.raises(ValueError, match="step=-1; give a positive step in nm"):
        RunEngineSimulator().simulate_plan(
            wavelength_scan([Meter(name="m")], Axis("nm", name="l"), 800, 810, -1)
        )
