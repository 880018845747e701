"""Imaging plans of this lab: a sample map with the camera.

The other everyday plans (exposure series, polarization scan, network-analyzer
sweep, PID lock, wavelength scan) are general and ship with labsky
(`labsky.plans`), so every profile has them; this file holds what is specific
to this lab's table. Run it at the prompt with
`RE(camera_raster(camera, sample.x, sample.y))` or from the shell with
`labsky run sim camera_raster camera sample.x sample.y --arg num_x=5`.
"""

from __future__ import annotations

from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

__all__ = ["camera_raster"]


def camera_raster(
    camera: Readable,
    x: Movable,
    y: Movable,
    width: float = 1.0,
    height: float = 1.0,
    num_x: int = 5,
    num_y: int = 5,
    exposure: float = 0.01,
    extra: list[Readable] | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Map the sample with the camera: one frame per point of an x/y grid.

    The grid is centred on the stage's current position and snakes along x.
    Each event holds the frame (in HDF5, announced by StreamDatum) and the
    per-frame statistics the camera computes as it writes (total signal and
    spot centroid), so a map can be drawn from scalars without loading frames.

    Args:
        camera: The camera (a PVCAM detector with an `exposure` setting).
        x: Fast stage axis (mm).
        y: Slow stage axis (mm).
        width: Full extent along x (mm).
        height: Full extent along y (mm).
        num_x: Points along x.
        num_y: Points along y.
        exposure: Exposure time per frame (s).
        extra: Other detectors read at every point (a power meter, say).
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if num_x < 1 or num_y < 1:
        raise ValueError(f"camera_raster: num_x={num_x}, num_y={num_y}; both >= 1")
    if exposure <= 0:
        raise ValueError(f"camera_raster: exposure={exposure}; give a time in s > 0")
    setting = getattr(camera, "exposure", None)
    if setting is None:
        raise ValueError(
            f"camera_raster: {getattr(camera, 'name', camera)} has no exposure "
            "setting; pass a camera"
        )
    _md = {
        "plan_name": "camera_raster",
        "exposure": exposure,
        "extent_mm": [width, height],
        **(md or {}),
    }
    yield from bps.mv(setting, exposure)
    x0 = yield from bps.rd(x)
    y0 = yield from bps.rd(y)
    uid = yield from bp.grid_scan(
        [camera, *(extra or [])],
        y,
        y0 - height / 2,
        y0 + height / 2,
        num_y,
        x,
        x0 - width / 2,
        x0 + width / 2,
        num_x,
        snake_axes=True,
        md=_md,
    )
    yield from bps.mv(x, x0, y, y0)  # back to where the map was centred
    return uid
