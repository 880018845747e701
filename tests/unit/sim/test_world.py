"""The shared physics: moves, Malus's law, responsivity, the spot."""

import math

import pytest

from labsky.sim.motion import Axis, Move
from labsky.sim.world import World, WorldParams, silicon_responsivity


def test_trapezoidal_move_takes_the_time_its_profile_needs():
    move = Move(0.0, 10.0, t0=100.0, velocity=5.0, acceleration=10.0)
    # ramps of 0.5 s (2.5 mm together), then 7.5 mm at 5 mm/s
    assert move.duration == pytest.approx(2 * 0.5 + 7.5 / 5)
    assert move.position(100.0) == 0.0
    assert move.position(100.25) == pytest.approx(0.5 * 10 * 0.25**2)
    assert move.position(101.0) == pytest.approx(1.25 + 5 * 0.5)
    assert move.position(100.0 + move.duration) == 10.0
    assert not move.done(101.0) and move.done(103.0)


def test_short_moves_never_reach_full_speed():
    move = Move(0.0, 1.0, t0=0.0, velocity=100.0, acceleration=4.0)
    assert move.duration == pytest.approx(2 * math.sqrt(1.0 / 4.0))
    assert move.position(move.duration / 2) == pytest.approx(0.5)


def test_an_axis_stops_where_it_is():
    axis = Axis(0.0, velocity=10.0)
    axis.move_to(10.0, now=0.0)
    assert axis.stop(now=0.3) == pytest.approx(3.0)
    assert not axis.moving(now=0.31) and axis.position(5.0) == pytest.approx(3.0)


def test_malus_law_through_a_polariser_with_a_small_leak():
    world = World(WorldParams(laser={"emission": True, "shutter_open": True}))
    full = world.laser.power()
    for angle in (0, 30, 45, 60):
        world.rotator("2").set_position(angle)
        expected = full * (math.cos(math.radians(angle)) ** 2 * (1 - 1e-4) + 1e-4)
        assert world.transmitted_power() == pytest.approx(expected)
    world.laser.shutter_open = False
    assert world.transmitted_power() == 0.0


def test_a_half_wave_plate_before_a_polariser_turns_twice_as_fast():
    world = World(
        WorldParams(
            laser={"emission": True, "shutter_open": True},
            optics=[
                {"element": "half_wave_plate", "rotator": "3"},
                {
                    "element": "polarizer",
                    "rotator": None,
                    "angle": 0.0,
                    "extinction": 0,
                },
            ],
        )
    )
    full = world.laser.power()
    world.rotator("3").set_position(22.5)  # rotates the polarisation by 45 deg
    assert world.transmitted_power() == pytest.approx(full / 2)
    world.rotator("3").set_position(45)
    assert world.transmitted_power() == pytest.approx(0.0, abs=1e-12)


def test_gain_curve_peaks_at_800_nm_and_responsivity_follows_silicon():
    world = World(WorldParams(laser={"emission": True}))
    peak = world.laser.power()
    world.laser.wavelength.set_position(1040)  # the long end of the tuning range
    assert world.laser.power() < 0.3 * peak
    assert (
        silicon_responsivity(950)
        > silicon_responsivity(800)
        > silicon_responsivity(500)
    )


def test_the_stage_moves_the_spot_and_axis_3_defocuses_it():
    world = World()
    world.stage_axis(1).set_position(2.0)
    world.stage_axis(2).set_position(-1.0)
    x, y, focused = world.spot()
    assert (x, y) == (-2.0, 1.0)
    world.stage_axis(3).set_position(1.0)  # two Rayleigh ranges
    assert world.spot()[2] == pytest.approx(focused * math.sqrt(5))
