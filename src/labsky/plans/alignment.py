"""Alignment plans: scan a motor and go to where the signal peaks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
from bluesky.callbacks.fitting import PeakStats
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

from labsky.errors import LabskyError


class PeakNotFoundError(LabskyError, RuntimeError):
    """The scanned signal had no peak to move to."""


def peak_scan(
    detectors: Sequence[Readable],
    motor: Movable,
    start: float,
    stop: float,
    num: int,
    field: str | None = None,
    move_to: str = "cen",
    md: dict[str, Any] | None = None,
) -> MsgGenerator[dict[str, float]]:
    """Scan `motor` from `start` to `stop` and move it to the signal's peak.

    The classic alignment step: find where a beam, a fringe or a resonance is
    strongest and go there. Peak statistics come from bluesky's `PeakStats`.

    Args:
        detectors: Devices read at each point; the first provides the signal.
        motor: The axis to scan.
        start: First position, in the motor's units.
        stop: Last position, in the motor's units.
        num: Number of points (at least 3).
        field: Data key of the signal; defaults to the first detector's first
            hinted field.
        move_to: `cen` (centre of mass), `max` (position of the maximum) or
            `com` (centroid) of the scanned signal.
        md: Metadata recorded in the run's start document.

    Returns:
        The peak statistics: `cen`, `max`, `com`, `fwhm` and the chosen
        position `moved_to`.

    Raises:
        ValueError: If `num` < 3 or `move_to` is not known (before the run opens).
        PeakNotFoundError: If the signal is flat.
    """
    if num < 3:
        raise ValueError(f"peak_scan: num={num}; a peak needs at least 3 points")
    if move_to not in ("cen", "max", "com"):
        raise ValueError(f"peak_scan: move_to={move_to!r}; use 'cen', 'max' or 'com'")
    if not detectors:
        raise ValueError("peak_scan: give at least one detector")
    motor_field = _first_hinted(motor)
    signal = field or _first_hinted(detectors[0])
    stats = PeakStats(motor_field, signal)
    _md = {"plan_name": "peak_scan", "peak_field": signal, **(md or {})}
    yield from bpp.subs_wrapper(
        bp.scan(list(detectors), motor, start, stop, num, md=_md), stats
    )
    if (
        stats.max is None
        or stats.cen is None
        or stats.fwhm is None
        and move_to == "cen"
    ):
        raise PeakNotFoundError(
            f"peak_scan: no peak in {signal!r} between {start} and {stop}; widen the "
            "range or check the beam"
        )
    positions = {
        "cen": float(stats.cen),
        "max": float(stats.max[0]),
        "com": float(stats.com),
    }
    target = positions[move_to]
    yield from bps.mv(motor, target)
    return {**positions, "fwhm": float(stats.fwhm or 0.0), "moved_to": target}


def _first_hinted(device: Any) -> str:
    fields = getattr(device, "hints", {}).get("fields") or []
    if not fields:
        raise ValueError(
            f"{getattr(device, 'name', device)} has no hinted field; pass `field=`"
        )
    return fields[0]
