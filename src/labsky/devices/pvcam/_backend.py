"""One interface to a PVCAM camera, two implementations (pyvcam, simulated).

Every call blocks and is made from the detector's own single worker thread
(PVCAM calls are not made from the RunEngine loop). Frames are delivered by
the backend's acquisition thread to a `FrameSink`, which copies each one into
the detector's frame ring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from ophyd_async.core import StrictEnum

from labsky.errors import LabskyError


class CameraError(LabskyError, RuntimeError):
    """The camera refused or failed; the message names what and why."""


class CameraParameterError(CameraError, ValueError):
    """A setting is not possible; the message names the parameter and what is."""


class CameraUnavailableError(CameraError):
    """The camera (or the PVCAM library) cannot be reached."""


class FrameTimeoutError(CameraError, TimeoutError):
    """No frame came in time (an external trigger that never fired?)."""


class TriggerMode(StrictEnum):
    """How exposures start (PVCAM's extended trigger modes)."""

    INTERNAL = "Internal"  # timed by the camera
    TRIGGER_FIRST = "Trigger first"  # the first edge starts an internally timed series
    EDGE = "Edge"  # one exposure of set length per rising edge
    LEVEL = "Level"  # the exposure lasts as long as the trigger is high
    SOFTWARE_EDGE = "Software edge"  # one exposure per software trigger


class ClearMode(StrictEnum):
    """When the sensor is cleared."""

    NEVER = "Never"
    PRE_EXPOSURE = "Pre-Exposure"
    PRE_SEQUENCE = "Pre-Sequence"
    POST_SEQUENCE = "Post-Sequence"
    PRE_POST_SEQUENCE = "Pre-Post Sequence"
    PRE_EXPOSURE_POST_SEQUENCE = "Pre-Exposure Post-Sequence"


@dataclass(frozen=True)
class ReadoutPort:
    """One readout port (a Kinetix "mode") and what it gives.

    Attributes:
        name: As PVCAM names it.
        bit_depth: Bits per pixel.
        line_time: Seconds to read one row (rolling shutter).
        gains: Gain index -> electrons per ADU.
        read_noise: Electrons rms.
        speeds: Speed names (the speed table's entries for the port).
    """

    name: str
    bit_depth: int
    line_time: float
    gains: dict[int, float]
    read_noise: float
    speeds: tuple[str, ...] = ("100 MHz",)

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the frames."""
        return np.dtype(np.uint8 if self.bit_depth <= 8 else np.uint16)


@dataclass(frozen=True)
class CameraInfo:
    """What a camera is and can do.

    Attributes:
        model: Model name.
        serial: Serial number.
        sensor: Sensor width and height in pixels.
        pixel_size: Pixel pitch in micrometres.
        ports: Readout ports by name.
        binnings: Allowed (x, y) binnings.
        exposure_range: Shortest and longest exposure, s.
        temperature_range: Lowest and highest cooling setpoint, deg C.
        overhead: Seconds between frames beyond the readout.
    """

    model: str
    serial: str
    sensor: tuple[int, int]
    pixel_size: float
    ports: dict[str, ReadoutPort]
    binnings: tuple[tuple[int, int], ...] = ((1, 1), (2, 2))
    exposure_range: tuple[float, float] = (1e-6, 10.0)
    temperature_range: tuple[float, float] = (-25.0, 20.0)
    overhead: float = 1e-5


@dataclass(frozen=True)
class FrameInfo:
    """What comes with each frame.

    Attributes:
        number: Camera frame number, from 1 (gaps mean the camera lost frames).
        timestamp: End of exposure, host clock (s since the epoch).
        exposure: Exposure time of this frame, s.
    """

    number: int
    timestamp: float
    exposure: float


@dataclass
class Settings:
    """The settings an acquisition uses (applied in PVCAM's order)."""

    exposure: float = 0.01
    trigger_mode: TriggerMode = TriggerMode.INTERNAL
    readout_port: str = ""
    speed: str = ""
    gain: int = 1
    clear_mode: ClearMode = ClearMode.PRE_SEQUENCE
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, width, height; 0 = full
    binning: tuple[int, int] = (1, 1)
    temperature_setpoint: float = -20.0
    extra: dict[str, Any] = field(default_factory=dict)


class FrameSink(Protocol):
    """Where a backend puts frames: slots of a preallocated frame ring.

    A backend reserves a slot, fills it (one copy of the frame), then commits
    it. `reserve` returns None when the ring is full: the frame is dropped,
    as a camera's buffer drops frames the host does not fetch in time.
    """

    def reserve(self) -> np.ndarray | None:
        """A slot of the frame shape and type to fill, or None when full."""
        ...

    def commit(self, info: FrameInfo) -> None:
        """The reserved slot holds a frame."""
        ...

    def lost(self, count: int) -> None:
        """The camera lost `count` frames on its side (gaps in frame numbers)."""
        ...


Done = Callable[[BaseException | None], None]


class CameraBackend(Protocol):
    """What the detector needs of a camera library."""

    def open(self) -> CameraInfo:
        """Open the camera; return what it is."""
        ...

    def close(self) -> None:
        """Release the camera."""
        ...

    def apply(self, settings: Settings) -> None:
        """Check and apply settings; raise `CameraParameterError` naming the bad one."""
        ...

    def frame_shape(self) -> tuple[int, int]:
        """(height, width) of the frames the applied settings give."""
        ...

    def dtype(self) -> np.dtype:
        """Pixel type of the frames the applied settings give."""
        ...

    def readout_time(self) -> float:
        """Seconds to read a frame with the applied settings."""
        ...

    def temperature(self) -> float:
        """Sensor temperature, deg C (not while acquiring on some models)."""
        ...

    def arm(self, frames: int, sink: FrameSink, done: Done) -> None:
        """Start acquiring `frames` frames (0: until stopped) on a thread.

        Returns once the camera waits for its trigger or has started.
        """
        ...

    def software_trigger(self) -> None:
        """Fire one software trigger (trigger mode `Software edge`)."""
        ...

    def stop(self) -> None:
        """Stop acquiring (idempotent); `done` is called."""
        ...
