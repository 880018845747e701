"""The device kinds the simulation registers: ophyd-async's simulated devices.

`labsky.kind_registry` adds them to the registry of device kinds. They give
every profile something to scan before any lab instrument is declared: a
pattern generator (the shared "world" the simulated stage moves through),
motors and stages, a multi-channel point detector and a camera-like blob
detector that writes HDF5 frames and emits StreamResource/StreamDatum.

The pattern is the simulated table's beam (`labsky.sim.world`): a Gaussian
spot on the sample plane, as bright as the laser, shutter and polarisation
optics leave it. The point detector counts photons of it at the stage's
position (Poisson noise), so a stage scan crosses a real peak; in a profile
with a `simulation:` section it is the same table the instrument simulators
share (a polariser turned there dims it here).
"""

from __future__ import annotations

import asyncio

import numpy as np
from ophyd_async.core import PathProvider
from ophyd_async.sim import (
    PatternGenerator,
    SimBlobDetector,
    SimMotor,
    SimPointDetector,
    SimStage,
)
from pydantic import BaseModel, ConfigDict, Field

from labsky.kinds import DeviceKind, NoParams
from labsky.sim.table import SimulatedTable
from labsky.sim.world import LaserParams, World, WorldParams


class SimMotorParams(BaseModel):
    """Parameters of a simulated motor."""

    model_config = ConfigDict(extra="forbid")

    units: str = Field(default="mm", description="Engineering units of the position.")
    initial_value: float = Field(default=0.0, description="Position at start.")
    velocity: float = Field(
        default=0.0,
        ge=0.0,
        description="Speed in units per second; 0 moves instantly.",
    )


class SimStageParams(BaseModel):
    """Parameters of a simulated x/y stage."""

    model_config = ConfigDict(extra="forbid")

    velocity: float = Field(
        default=0.0,
        ge=0.0,
        description="Speed of both axes in mm/s; 0 moves instantly.",
    )


class SimPointDetectorParams(BaseModel):
    """Parameters of a simulated point detector."""

    model_config = ConfigDict(extra="forbid")

    num_channels: int = Field(default=3, ge=1, le=16, description="Number of channels.")
    acquire_time: float = Field(
        default=0.01, ge=0.0, description="Integration time per reading in seconds."
    )
    peak_rate: float = Field(
        default=1e6,
        gt=0,
        description="Counts per second of channel 1 on the beam's axis at full power.",
    )


class SimPatternParams(BaseModel):
    """Parameters of the simulated beam the detectors sample."""

    model_config = ConfigDict(extra="forbid")

    background: float = Field(
        default=0.002, ge=0, description="Stray light, relative to the beam's peak."
    )


class BeamPattern(PatternGenerator):
    """ophyd-async's pattern generator whose pattern is the table's beam.

    Args:
        world: The simulated table; without one, a table of its own whose
            laser is on and shutter open.
        background: Stray light, relative to the beam's peak.
    """

    def __init__(self, world: World | None = None, background: float = 0.002):
        super().__init__()
        laser = LaserParams(emission=True, shutter_open=True, warmup=0)
        self.world = world or World(WorldParams(laser=laser))
        self.background = background

    def generate_point(self, channel: int = 1, high_energy: bool = False) -> float:
        """The beam at the stage position, 0-1 (1: full laser power on axis)."""
        world = self.world
        power = world.transmitted_power() / world.params.laser.peak_power
        return power * world.beam_profile(self._x, self._y) + self.background


class BeamPointDetector(SimPointDetector):
    """ophyd-async's point detector counting photons of the beam.

    Channel N sees the beam through an attenuation of N (its rate at full
    power on axis is `peak_rate / N` counts/s); each reading is a Poisson
    draw of the counts in the integration time.
    """

    def __init__(
        self,
        pattern_generator: BeamPattern,
        num_channels: int = 3,
        peak_rate: float = 1e6,
        name: str = "",
    ):
        self.peak_rate = peak_rate
        self._rng = np.random.default_rng(pattern_generator.world.params.seed + 1)
        super().__init__(pattern_generator, num_channels=num_channels, name=name)

    async def _update_values(self, acquire_time: float) -> None:
        await asyncio.sleep(acquire_time)
        pattern = self.pattern_generator
        for i, channel in self.channel.items():
            mean = self.peak_rate / i * acquire_time * pattern.generate_point(i)
            setter = self._value_signals[channel.value]
            setter(int(self._rng.poisson(max(mean, 0.0))))


def sim_pattern(
    params: SimPatternParams, sim_world: SimulatedTable | None
) -> BeamPattern:
    """Build the beam the simulated devices share (the profile's table, if any)."""
    world = sim_world.world if sim_world is not None else None
    return BeamPattern(world, background=params.background)


def sim_motor(params: SimMotorParams) -> SimMotor:
    """Build a simulated motor."""
    return SimMotor(
        instant=params.velocity == 0.0,
        initial_value=params.initial_value,
        units=params.units,
    )


def sim_stage(params: SimStageParams, pattern_generator: PatternGenerator) -> SimStage:
    """Build an x/y stage whose position drives the pattern generator."""
    return SimStage(pattern_generator)


def sim_point_detector(
    params: SimPointDetectorParams, pattern_generator: PatternGenerator
) -> SimPointDetector:
    """Build a point detector that counts the beam at the stage position."""
    if isinstance(pattern_generator, BeamPattern):
        return BeamPointDetector(
            pattern_generator,
            num_channels=params.num_channels,
            peak_rate=params.peak_rate,
        )
    return SimPointDetector(pattern_generator, num_channels=params.num_channels)


def sim_blob_detector(
    params: NoParams, path_provider: PathProvider, pattern_generator: PatternGenerator
) -> SimBlobDetector:
    """Build a detector that writes frames of the pattern to HDF5."""
    return SimBlobDetector(path_provider, pattern_generator)


async def _configure_motor(device: SimMotor, params: SimMotorParams) -> None:
    if params.velocity > 0:
        await device.velocity.set(params.velocity)


async def _configure_stage(device: SimStage, params: SimStageParams) -> None:
    await device.x.velocity.set(params.velocity)
    await device.y.velocity.set(params.velocity)


async def _configure_point_detector(
    device: SimPointDetector, params: SimPointDetectorParams
) -> None:
    await device.acquire_time.set(params.acquire_time)


KINDS = (
    DeviceKind(
        "sim_pattern",
        sim_pattern,
        SimPatternParams,
        summary="Shared simulated beam (the table's, with simulators) that sim "
        "detectors sample at the stage position.",
    ),
    DeviceKind(
        "sim_motor",
        sim_motor,
        SimMotorParams,
        summary="Simulated motor (ophyd-async SimMotor).",
        after_connect=_configure_motor,
    ),
    DeviceKind(
        "sim_stage",
        sim_stage,
        SimStageParams,
        summary="Simulated x/y stage moving through the shared pattern.",
        after_connect=_configure_stage,
    ),
    DeviceKind(
        "sim_point_detector",
        sim_point_detector,
        SimPointDetectorParams,
        summary="Simulated multi-channel point detector counting the beam's photons.",
        after_connect=_configure_point_detector,
    ),
    DeviceKind(
        "sim_blob_detector",
        sim_blob_detector,
        summary="Simulated camera writing HDF5 frames (StreamResource/StreamDatum).",
    ),
)
