"""Camera plans: exposure series and hardware-triggered fly scans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import Flyable, Movable, Readable
from bluesky.utils import MsgGenerator
from ophyd_async.core import DetectorTrigger, TriggerInfo


def exposure_series(
    detectors: Sequence[Readable],
    exposure: Movable,
    exposures: Sequence[float],
    num: int = 1,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Take `num` frames at each exposure time (a linearity or photon-transfer check).

    Args:
        detectors: The camera (and anything read with it).
        exposure: The camera's exposure setting (`camera.exposure`), s.
        exposures: Exposure times, s.
        num: Frames per exposure.
        md: Metadata for the run's start document.

    Returns:
        The run's uid. Each point's exposure is in the stream `settings`.
    """
    if not exposures or any(t <= 0 for t in exposures):
        raise ValueError(
            f"exposure_series: exposures={list(exposures)}; give positive times in s"
        )
    if num < 1:
        raise ValueError(f"exposure_series: num={num}; take at least one frame")
    _md = {
        "plan_name": "exposure_series",
        "detectors": [getattr(d, "name", str(d)) for d in detectors],
        "exposures": list(exposures),
        "num_points": len(exposures) * num,
        **(md or {}),
    }

    def series() -> MsgGenerator[None]:
        for time in exposures:
            yield from bps.mv(exposure, time)
            for _ in range(num):
                yield from bps.trigger_and_read(list(detectors))
                yield from bps.trigger_and_read([exposure], name="settings")  # type: ignore[list-item]

    run = bpp.run_wrapper(series(), md=_md)  # returns the run's uid
    uid: str = yield from bpp.stage_wrapper(run, list(detectors))
    return uid


def fly_frames(
    camera: Flyable,
    frames: int,
    livetime: float,
    trigger_source: Flyable | None = None,
    period: float = 0.0,
    trigger: Literal["internal", "edge", "level"] = "internal",
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Acquire `frames` frames as fast as they come, writing as they are taken.

    With `trigger="internal"` the camera times itself (every `period` s, or
    as fast as it can); with `edge` or `level` it waits for the pulses of
    `trigger_source` (a pulse generator prepared with `count`, `period`,
    `width`), one frame per pulse: a hardware-timed fly scan. No events: the
    frames are announced by StreamDatum documents while they are written.

    Args:
        camera: A StandardDetector (a PVCAM camera).
        frames: Number of frames.
        livetime: Exposure of each frame, s (level: the pulse width).
        trigger_source: The pulse generator (edge and level triggering).
        period: Seconds between frames (0: as fast as the camera can).
        trigger: `internal`, `edge` or `level`.
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if frames < 1 or livetime <= 0:
        raise ValueError(
            f"fly_frames: frames={frames}, livetime={livetime}; both must be > 0"
        )
    if trigger != "internal" and (trigger_source is None or period <= 0):
        raise ValueError(
            f"fly_frames: trigger={trigger!r} needs a trigger_source and a period > 0"
        )
    info = TriggerInfo(
        number_of_events=frames,
        trigger={
            "internal": DetectorTrigger.INTERNAL,
            "edge": DetectorTrigger.EXTERNAL_EDGE,
            "level": DetectorTrigger.EXTERNAL_LEVEL,
        }[trigger],
        livetime=livetime,
        deadtime=max(0.0, period - livetime)
        if trigger == "internal" and period
        else 0.0,
    )
    flyers: list[Any] = [camera] if trigger_source is None else [camera, trigger_source]
    _md = {
        "plan_name": "fly_frames",
        "detectors": [getattr(camera, "name", str(camera))],
        "num_points": frames,
        "trigger": trigger,
        **(md or {}),
    }

    def fly() -> MsgGenerator[str]:
        yield from bps.stage(camera, wait=True)  # type: ignore[arg-type]
        uid = yield from bps.open_run(_md)
        if trigger_source is not None and trigger != "internal":
            train = {
                "count": frames,
                "period": period,
                "width": livetime if trigger == "level" else 1e-4,
            }
            yield from bps.prepare(trigger_source, train, wait=True)  # type: ignore[arg-type]
        yield from bps.prepare(camera, info, wait=True)  # type: ignore[arg-type]
        yield from bps.declare_stream(camera, name="primary", collect=True)  # type: ignore[arg-type]
        yield from bps.kickoff(camera, wait=True)
        if trigger_source is not None and trigger != "internal":
            yield from bps.kickoff(trigger_source, wait=True)
        yield from bps.collect_while_completing(
            flyers=flyers,
            dets=[camera],
            flush_period=0.2,  # type: ignore[list-item]
        )
        yield from bps.close_run()
        return uid

    return (yield from bpp.finalize_wrapper(fly(), bps.unstage(camera, wait=True)))  # type: ignore[arg-type]
