"""Kinds for ophyd-async's simulated devices.

These give every profile something to scan before any lab instrument is
declared: a pattern generator (the shared "world" the simulated stage moves
through), motors and stages, a multi-channel point detector and a camera-like
blob detector that writes HDF5 frames and emits StreamResource/StreamDatum.
"""

from __future__ import annotations

from ophyd_async.core import PathProvider
from ophyd_async.sim import (
    PatternGenerator,
    SimBlobDetector,
    SimMotor,
    SimPointDetector,
    SimStage,
)
from pydantic import BaseModel, ConfigDict, Field

from labsky.devices.registry import DeviceKind, NoParams


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


def sim_pattern(params: NoParams) -> PatternGenerator:
    """Build the pattern generator that simulated devices share."""
    return PatternGenerator()


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
    """Build a point detector that reads the pattern at the stage position."""
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
        summary="Shared simulated world: a 2-D pattern sampled by sim detectors.",
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
        summary="Simulated multi-channel point detector.",
        after_connect=_configure_point_detector,
    ),
    DeviceKind(
        "sim_blob_detector",
        sim_blob_detector,
        summary="Simulated camera writing HDF5 frames (StreamResource/StreamDatum).",
    ),
)
