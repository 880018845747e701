"""Photometrics/Teledyne PVCAM cameras (Prime BSI, Kinetix) as StandardDetectors.

Two backends behind one interface: `pyvcam` (a real camera; needs the PVCAM
runtime, imported only when the camera opens) and `sim` (a simulated camera on
the simulated table). The simulated one is not imported here: it comes from
the session's `sim_world` fixture (`CameraSimulation`), so device code never
imports the simulation.
"""

from typing import Literal, Protocol

from ophyd_async.core import PathProvider
from pydantic import BaseModel, ConfigDict, Field

from labsky.devices.pvcam._backend import (
    CameraBackend,
    CameraError,
    CameraInfo,
    CameraParameterError,
    CameraUnavailableError,
    ClearMode,
    Done,
    FrameInfo,
    FrameSink,
    FrameTimeoutError,
    ReadoutPort,
    Settings,
    TriggerMode,
)
from labsky.devices.pvcam._detector import DroppedFramesError, PvcamDetector
from labsky.devices.pvcam._frames import FrameRing, FrameWriter
from labsky.devices.pvcam._models import MODELS
from labsky.devices.pvcam._pyvcam import PyVcamBackend
from labsky.kinds import DeviceKind


class PvcamParams(BaseModel):
    """Parameters of a PVCAM camera."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["pyvcam", "sim"] = Field(
        default="pyvcam", description="pyvcam: a real camera; sim: a simulated one."
    )
    camera_name: str | None = Field(
        default=None,
        description="pyvcam: PVCAM's camera name (pvcamUSB_0); default the first.",
    )
    model: Literal["prime_bsi", "kinetix"] = Field(
        default="prime_bsi", description="sim: which camera to simulate."
    )
    exposure: float | None = Field(
        default=None, gt=0, description="Exposure set at connect, s."
    )
    readout_port: str | None = Field(
        default=None, description="Readout port set at connect."
    )
    ring_mb: int = Field(
        default=512,
        ge=1,
        description="Memory of the frame ring (camera -> writer), MiB.",
    )
    on_dropped: Literal["error", "warn"] = Field(
        default="error", description="What dropped frames do to the acquisition."
    )
    compression: Literal["blosc-lz4"] | None = Field(
        default=None, description="Compress frames in the file (CPU-bound: ~1 GB/s)."
    )
    pixels_per_mm: float = Field(
        default=154.0, gt=0, description="sim: pixels the spot moves per mm of stage."
    )
    trigger_line: str = Field(
        default="camera", description="sim: the simulated trigger line it listens to."
    )


class CameraSimulation(Protocol):
    """What the `sim` backend needs of the `sim_world` fixture (`labsky.sim.table`)."""

    def camera_backend(
        self, model: str, *, trigger_line: str, pixels_per_mm: float
    ) -> CameraBackend:
        """A simulated camera of `model` on the simulated table."""
        ...


def pvcam(
    params: PvcamParams,
    path_provider: PathProvider,
    sim_world: CameraSimulation | None,
) -> PvcamDetector:
    """Build a PVCAM camera with the chosen backend."""
    backend: CameraBackend
    if params.backend == "sim":
        if sim_world is None:
            raise ValueError(
                "backend sim: no simulation to put the camera in (the session's "
                "`sim_world` fixture); build it in a session, or use backend pyvcam"
            )
        backend = sim_world.camera_backend(
            params.model,
            trigger_line=params.trigger_line,
            pixels_per_mm=params.pixels_per_mm,
        )
    else:
        backend = PyVcamBackend(params.camera_name)
    return PvcamDetector(
        backend,
        path_provider,
        ring_mb=params.ring_mb,
        on_dropped=params.on_dropped,
        compression=params.compression,
    )


async def _configure(device: PvcamDetector, params: PvcamParams) -> None:
    if params.readout_port is not None:
        await device.readout_port.set(params.readout_port)
    if params.exposure is not None:
        await device.exposure.set(params.exposure)


KINDS = (
    DeviceKind(
        "pvcam",
        pvcam,
        PvcamParams,
        summary="Photometrics/Teledyne PVCAM camera (pyvcam or sim), frames to HDF5.",
        after_connect=_configure,
    ),
)

__all__ = [
    "KINDS",
    "MODELS",
    "CameraBackend",
    "CameraSimulation",
    "CameraError",
    "CameraInfo",
    "CameraParameterError",
    "CameraUnavailableError",
    "ClearMode",
    "Done",
    "DroppedFramesError",
    "FrameInfo",
    "FrameSink",
    "FrameRing",
    "FrameTimeoutError",
    "FrameWriter",
    "PvcamDetector",
    "PyVcamBackend",
    "ReadoutPort",
    "Settings",
    "TriggerMode",
]
