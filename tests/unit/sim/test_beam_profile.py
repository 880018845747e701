"""The simulated table's beam: what a stage scan across it reads (issue 18)."""

import math

import numpy as np
import pytest

from labsky.sim.kinds import BeamPattern, BeamPointDetector
from labsky.sim.motion import Axis
from labsky.sim.world import World, WorldParams

ON = {"emission": True, "shutter_open": True, "warmup": 0}


def test_without_a_pinhole_the_meter_reads_the_pick_off_as_before():
    world = World(WorldParams.model_validate({"laser": ON}))
    world._stage[1] = Axis(3.0)  # the stage does not matter on the pick-off
    assert world.meter_power() == pytest.approx(world.transmitted_power() * 0.01)


def test_behind_the_pinhole_the_meter_reads_the_gaussian_beam_at_the_stage():
    world = World(
        WorldParams.model_validate(
            {
                "laser": ON,
                "beam": {"x": 0.7, "y": 0.0, "radius": 0.5, "pointing_jitter": 0},
                "pinhole": {"diameter": 0.05},
            }
        )
    )
    through = 1 - math.exp(-2 * 0.025**2 / 0.5**2)
    on_axis = world.transmitted_power() * 0.99 * through
    for x in (-1.0, 0.2, 0.7, 1.1):
        world._stage[1] = Axis(x)  # the pinhole at x
        expected = on_axis * math.exp(-2 * (x - 0.7) ** 2 / 0.5**2)
        assert world.meter_power() == pytest.approx(expected, rel=1e-9)


def test_pointing_jitter_is_noise_on_the_flanks_not_on_the_axis():
    world = World(WorldParams.model_validate({"beam": {"pointing_jitter": 0.01}}))
    beam = world.params.beam
    flank = [world.beam_profile(beam.x + beam.radius, beam.y) for _ in range(400)]
    axis = [world.beam_profile(beam.x, beam.y) for _ in range(400)]
    assert np.std(flank) / np.mean(flank) > 0.02
    assert np.std(axis) / np.mean(axis) < 0.002


async def test_the_point_detector_counts_photons_of_the_beam_it_shares():
    world = World(WorldParams.model_validate({"laser": ON}))
    pattern = BeamPattern(world, background=0.0)
    pdet = BeamPointDetector(pattern, num_channels=2, peak_rate=1e6, name="pdet")
    await pdet.connect()
    await pdet.acquire_time.set(0.001)

    async def counts(x):
        pattern.set_x(x)
        pattern.set_y(world.params.beam.y)
        await pdet.trigger()
        return [await pdet.channel[i].value.get_value() for i in (1, 2)]

    on_axis = await counts(world.params.beam.x)
    assert 900 < on_axis[0] < 1100 and 400 < on_axis[1] < 600  # Poisson around 1000
    assert (await counts(world.params.beam.x + 3))[0] <= 2
    world.laser.shutter_open = False  # the table's shutter: the detector goes dark
    assert await counts(world.params.beam.x) == [0, 0]
