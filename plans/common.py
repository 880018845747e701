"""Lab plans shared by every profile of this lab.

Each plan is typed (the session rejects untyped ones), takes `md`, and is
listed in `__all__`. Run one at the prompt with `RE(raster(...))` or from the
shell with `labsky run sim raster --arg detectors=[pdet] --arg stage=stage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

__all__ = ["angle_scan", "raster"]


def raster(
    detectors: Sequence[Readable],
    x: Movable,
    y: Movable,
    width: float = 2.0,
    height: float = 2.0,
    num_x: int = 11,
    num_y: int = 11,
    snake: bool = True,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Map a sample: a 2-D grid of x/y stage positions centred on zero.

    Args:
        detectors: Devices read at every point.
        x: Fast axis.
        y: Slow axis.
        width: Full extent along x, in the stage's units.
        height: Full extent along y, in the stage's units.
        num_x: Points along x.
        num_y: Points along y.
        snake: Reverse every other row to save travel.
        md: Metadata for the run's start document.
    """
    if num_x < 1 or num_y < 1:
        raise ValueError(f"raster: num_x={num_x}, num_y={num_y}; both must be >= 1")
    _md = {"plan_name": "raster", **(md or {})}
    return (
        yield from bp.grid_scan(
            list(detectors),
            y,
            -height / 2,
            height / 2,
            num_y,
            x,
            -width / 2,
            width / 2,
            num_x,
            snake_axes=snake,
            md=_md,
        )
    )


def angle_scan(
    detectors: Sequence[Readable],
    rotator: Movable,
    start: float = 0.0,
    stop: float = 180.0,
    step: float = 5.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Step a rotation mount through an angle range and read the detectors.

    Args:
        detectors: Devices read at every angle.
        rotator: The rotation mount (degrees).
        start: First angle in degrees.
        stop: Last angle in degrees (included when on the step grid).
        step: Angle step in degrees, positive.
        md: Metadata for the run's start document.
    """
    if step <= 0:
        raise ValueError(f"angle_scan: step={step}; give a positive step in degrees")
    num = int(round(abs(stop - start) / step)) + 1
    _md = {"plan_name": "angle_scan", "step_deg": step, **(md or {})}
    return (yield from bp.scan(list(detectors), rotator, start, stop, num, md=_md))
