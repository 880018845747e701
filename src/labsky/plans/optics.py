"""Optics plans: polarisation and wavelength scans.

Typed with bluesky protocols, so any rotator, laser or detector that fits
works: an ELL14 and a 1830-C, or a Red Pitaya input and a simulated motor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.callbacks import CallbackBase
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator


class _Collect(CallbackBase):
    """Collect two fields of a run's primary events."""

    def __init__(self, x: str, y: str):
        super().__init__()
        self.x, self.y = x, y
        self.xs: list[float] = []
        self.ys: list[float] = []
        self._primary = ""

    def descriptor(self, doc: Any) -> Any:
        if doc.get("name") == "primary":
            self._primary = doc["uid"]
        return doc

    def event(self, doc: Any) -> Any:
        if doc["descriptor"] == self._primary:
            self.xs.append(float(doc["data"][self.x]))
            self.ys.append(float(doc["data"][self.y]))
        return doc


def fit_malus(angles_deg: Sequence[float], power: Sequence[float]) -> dict[str, float]:
    """Fit `P(t) = a + b cos(2t) + c sin(2t)`: Malus's law with a leak.

    Returns:
        `angle_max` (deg, where transmission peaks, in [0, 180)), `power_max`,
        `power_min` and `extinction` (min / max).

    Raises:
        ValueError: With fewer than 3 finite points.
    """
    t = np.radians(np.asarray(angles_deg, float))
    p = np.asarray(power, float)
    good = np.isfinite(t) & np.isfinite(p)
    if good.sum() < 3:
        raise ValueError("a Malus fit needs at least 3 finite readings")
    design = np.column_stack(
        [np.ones(good.sum()), np.cos(2 * t[good]), np.sin(2 * t[good])]
    )
    (a, b, c), *_ = np.linalg.lstsq(design, p[good], rcond=None)
    amplitude = math.hypot(b, c)
    angle = math.degrees(math.atan2(c, b) / 2) % 180
    high, low = a + amplitude, a - amplitude
    return {
        "angle_max": angle,
        "power_max": float(high),
        "power_min": float(low),
        "extinction": float(low / high) if high > 0 else math.nan,
    }


def _field(device: Any, field: str | None) -> str:
    if field is not None:
        return field
    fields = getattr(device, "hints", {}).get("fields") or []
    if not fields:
        raise ValueError(
            f"{getattr(device, 'name', device)} has no hinted field; pass the field"
        )
    return fields[0]


def polarization_scan(
    detector: Readable,
    rotator: Movable,
    start: float = 0.0,
    stop: float = 180.0,
    step: float = 5.0,
    field: str | None = None,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[dict[str, float]]:
    """Turn a polariser (or wave plate) and fit Malus's law to the power.

    Reads `detector` at each angle from `start` to `stop` (degrees), then fits
    P = a + b cos 2t + c sin 2t, whose maximum gives the transmission axis
    and whose min/max gives the extinction ratio.

    Args:
        detector: The power meter (or any readable).
        rotator: The rotation mount, in degrees.
        start: First angle, degrees.
        stop: Last angle, degrees (included when on the step grid).
        step: Angle step, degrees (positive).
        field: Data key of the power; default the detector's first hinted one.
        md: Metadata for the run's start document.

    Returns:
        The fit: `angle_max`, `power_max`, `power_min`, `extinction`.
    """
    if step <= 0:
        raise ValueError(
            f"polarization_scan: step={step}; give a positive step in degrees"
        )
    num = int(round(abs(stop - start) / step)) + 1
    if num < 3:
        raise ValueError("polarization_scan: the range holds fewer than 3 angles")
    power = _field(detector, field)
    angle = _field(rotator, None)
    collect = _Collect(angle, power)
    _md = {"plan_name": "polarization_scan", "step_deg": step, **(md or {})}
    yield from bpp.subs_wrapper(
        bp.scan([detector], rotator, start, stop, num, md=_md), collect
    )
    return fit_malus(collect.xs, collect.ys)


def wavelength_scan(
    detectors: Sequence[Readable],
    laser: Movable,
    start: float,
    stop: float,
    step: float,
    track: Sequence[Movable] = (),
    settle: float = 0.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Tune a laser through a range, reading detectors at each wavelength.

    Power meters correct their reading for the detector's spectral
    responsivity at the wavelength they are set to: pass their wavelength
    signals as `track` (`meter.wavelength`) and they follow the laser (to
    the nearest nm); their values are recorded at every point in the
    stream `tracking`.

    Args:
        detectors: Devices read at each wavelength.
        laser: The tunable laser (nm); each move waits until it is reached.
        start: First wavelength, nm.
        stop: Last wavelength, nm (included when on the step grid).
        step: Step, nm (positive).
        track: Settable wavelengths (nm) moved to each laser wavelength.
        settle: Seconds to wait after each move (laser stabilisation).
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if step <= 0:
        raise ValueError(f"wavelength_scan: step={step}; give a positive step in nm")
    num = int(round(abs(stop - start) / step)) + 1
    sign = 1.0 if stop >= start else -1.0
    wavelengths = [start + sign * i * step for i in range(num)]
    _md = {"plan_name": "wavelength_scan", "step_nm": step, **(md or {})}

    # bluesky recognises a per_step by these parameter names
    def per_step(detectors: Any, step: Any, pos_cache: Any) -> MsgGenerator[None]:
        (target,) = step.values()
        moves: list[Any] = [laser, target]
        for follower in track:
            moves += [follower, round(target)]
        yield from bps.mv(*moves)
        if settle:
            yield from bps.sleep(settle)
        yield from bps.trigger_and_read([*detectors, cast(Readable, laser)])
        if track:  # settings that change at every point: a stream of their own
            followers = [cast(Readable, f) for f in track]
            yield from bps.trigger_and_read(followers, name="tracking")

    return (
        yield from bp.list_scan(
            list(detectors),
            laser,  # type: ignore[arg-type] - bluesky types *args as one tuple
            wavelengths,  # type: ignore[arg-type]
            per_step=per_step,  # type: ignore[arg-type]
            md=_md,
        )
    )
