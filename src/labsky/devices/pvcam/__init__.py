"""Photometrics/Teledyne PVCAM cameras (Prime BSI, Kinetix) as StandardDetectors.

Two backends behind one interface: `pyvcam` (a real camera; needs the PVCAM
runtime, imported only when the camera opens) and `sim` (a simulated camera on
the simulated table).
"""

from typing import Any, Literal

from ophyd_async.core import PathProvider
from pydantic import BaseModel, ConfigDict, Field

from labsky.devices.pvcam._backend import (
    CameraBackend,
    CameraError,
    CameraInfo,
    CameraParameterError,
    CameraUnavailableError,
    ClearMode,
    FrameInfo,
    FrameTimeoutError,
    ReadoutPort,
    Settings,
    TriggerMode,
)
from labsky.devices.pvcam._detector import DroppedFramesError, PvcamDetector
from labsky.devices.pvcam._frames import FrameRing, FrameWriter
from labsky.devices.pvcam._pyvcam import PyVcamBackend
from labsky.devices.pvcam._sim import MODELS, SimCamera
from labsky.devices.registry import DeviceKind


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


def pvcam(
    params: PvcamParams, path_provider: PathProvider, sim_world: Any
) -> PvcamDetector:
    """Build a PVCAM camera with the chosen backend."""
    backend: CameraBackend
    if params.backend == "sim":
        backend = SimCamera(
            params.model,
            world=sim_world,
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
    "CameraError",
    "CameraInfo",
    "CameraParameterError",
    "CameraUnavailableError",
    "ClearMode",
    "DroppedFramesError",
    "FrameInfo",
    "FrameRing",
    "FrameTimeoutError",
    "FrameWriter",
    "PvcamDetector",
    "PyVcamBackend",
    "ReadoutPort",
    "Settings",
    "SimCamera",
    "TriggerMode",
]
