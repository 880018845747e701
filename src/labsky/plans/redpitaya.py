"""Red Pitaya plans: network analyser, scope series, PID lock.

They take the board's parts (`rp.iq`, `rp.scope`, `rp.pid`), so they work
the same on a board owned by the session and on one served by
`labsky ioc redpitaya`. Arguments are checked before the run opens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator

from labsky.devices.redpitaya import (
    RedPitayaLockIn,
    RedPitayaPid,
    RedPitayaScope,
    TriggerSource,
    Waveform,
)
from labsky.devices.redpitaya._pid_loop import IVAL_LIMIT
from labsky.devices.redpitaya._scope import DECIMATIONS
from labsky.plans.optics import _Collect

#: Highest generator frequency (half the 125 MHz clock).
F_MAX = 62.5e6


def sweep_frequencies(start: float, stop: float, num: int, log: bool) -> np.ndarray:
    """The frequencies of a sweep, Hz.

    Raises:
        ValueError: Naming the bad bound or count and the allowed range.
    """
    if not 0 < start < stop <= F_MAX:
        raise ValueError(
            f"network_analyzer: start={start:g}, stop={stop:g} Hz; give "
            f"0 < start < stop <= {F_MAX:g} Hz"
        )
    if num < 2:
        raise ValueError(f"network_analyzer: num={num}; sweep at least 2 points")
    return np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)


def fit_resonance(
    frequencies: Sequence[float], amplitudes: Sequence[float]
) -> dict[str, float]:
    """Centre, height and Q of the highest peak of a magnitude response.

    The centre is refined by a parabola through the log-magnitude at the three
    highest points; the width is where the magnitude falls to 1/sqrt(2) of the
    peak on both sides (interpolated), and Q = f0 / width. The width and Q are
    NaN when the sweep does not reach both half-power points.

    Raises:
        ValueError: With fewer than 3 points, or none finite.
    """
    f = np.asarray(frequencies, float)
    a = np.asarray(amplitudes, float)
    good = np.isfinite(f) & np.isfinite(a) & (a > 0)
    f, a = f[good], a[good]
    if len(f) < 3:
        raise ValueError("fit_resonance: needs at least 3 finite readings")
    order = np.argsort(f)
    f, a = f[order], a[order]
    k = int(np.argmax(a))
    f0, peak = float(f[k]), float(a[k])
    if 0 < k < len(f) - 1:
        y = np.log(a[k - 1 : k + 2])
        x = f[k - 1 : k + 2]
        c2, c1, c0 = np.polyfit(x, y, 2)
        if c2 < 0:
            f0 = float(-c1 / (2 * c2))
            peak = float(np.exp(c0 + c1 * f0 + c2 * f0**2))
    half = peak / math.sqrt(2)
    below = np.nonzero(a[:k] < half)[0]
    above = np.nonzero(a[k:] < half)[0]
    width = math.nan
    if len(below) and len(above):
        i = int(below[-1])  # a[i] < half <= a[i + 1]
        j = k + int(above[0])  # a[j - 1] >= half > a[j]
        low = float(np.interp(half, [a[i], a[i + 1]], [f[i], f[i + 1]]))
        high = float(np.interp(half, [a[j], a[j - 1]], [f[j], f[j - 1]]))
        width = high - low
    return {
        "f0": f0,
        "amplitude": peak,
        "width": width,
        "q": f0 / width if width > 0 else math.nan,
    }


def network_analyzer(
    lockin: RedPitayaLockIn,
    start: float,
    stop: float,
    num: int = 101,
    log: bool = False,
    amplitude: float | None = None,
    settle: float | None = None,
    averages: int = 1,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[dict[str, float]]:
    """Sweep the lock-in's generator and record the response: a Bode plot.

    At each frequency the lock-in restarts its generator, lets the device
    under test settle, and demodulates the input: events hold `amplitude`
    (V), `phase` (deg, relative to the generator), `gain_db`, `i`, `q`.

    Args:
        lockin: The board's lock-in (`rp.iq`).
        start: First frequency, Hz.
        stop: Last frequency, Hz.
        num: Number of frequencies.
        log: Log-spaced frequencies (else linear).
        amplitude: Generator amplitude, V (default: as it is).
        settle: Seconds between the generator's start and the trace
            (default: the lock-in's `settle_time`); give a few Q / (pi f0).
        averages: Traces demodulated and averaged per point.
        md: Metadata for the run's start document.

    Returns:
        The highest resonance found: `f0` (Hz), `amplitude` (V), `width`
        (Hz, -3 dB) and `q` (NaN when the sweep misses a half-power point).
    """
    frequencies = sweep_frequencies(start, stop, num, log)
    if amplitude is not None and not 0 < amplitude <= 1:
        raise ValueError(
            f"network_analyzer: amplitude={amplitude} V; give 0 < amplitude <= 1"
        )
    if settle is not None and not 0 <= settle <= 1:
        raise ValueError(f"network_analyzer: settle={settle} s; give 0 to 1 s")
    if averages < 1:
        raise ValueError(f"network_analyzer: averages={averages}; give at least 1")
    generator = lockin.reference
    setup: list[Any] = [generator.waveform, Waveform.SINE, lockin.averages, averages]
    if amplitude is not None:
        setup += [generator.amplitude, amplitude]
    if settle is not None:
        setup += [lockin.settle_time, settle]
    yield from bps.mv(*setup)
    yield from bps.mv(generator.output, True)
    frequency = generator.frequency
    collect = _Collect(frequency.value.name, lockin.amplitude.name)
    _md = {
        "plan_name": "network_analyzer",
        "frequency_range": [start, stop],
        "log": log,
        **(md or {}),
    }
    points = [float(f) for f in frequencies]
    # bluesky annotates list_scan's *args as one (motor, list) tuple
    sweep = bp.list_scan([lockin], frequency, points, md=_md)  # pyright: ignore[reportArgumentType]
    yield from bpp.subs_wrapper(sweep, collect)
    return fit_resonance(collect.xs, collect.ys)


def scope_series(
    scope: RedPitayaScope,
    num: int = 10,
    trigger: TriggerSource = TriggerSource.NOW,
    level: float = 0.0,
    decimation: int | None = None,
    delay: int = 0,
    delay_time: float = 0.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Take `num` traces of both inputs with a chosen trigger.

    Args:
        scope: The board's scope (`rp.scope`).
        num: Traces to take.
        trigger: What starts each trace (`NOW`, `CH1_PE`, `EXT_PE`, ...).
        level: Trigger level for the input edges, V.
        decimation: 1, 2, 4, ... 65536 (default: as it is); a trace lasts
            16384 x decimation / 125 MHz.
        delay: Trigger delay in samples: the trigger sits at index
            8192 - delay (0 centres it).
        delay_time: Waits between traces, s.
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if num < 1:
        raise ValueError(f"scope_series: num={num}; take at least one trace")
    trigger = TriggerSource(trigger)
    if decimation is not None and decimation not in DECIMATIONS:
        raise ValueError(
            f"scope_series: decimation={decimation}; use a power of two from 1 to 65536"
        )
    if not -8192 <= delay:
        raise ValueError(f"scope_series: delay={delay}; give at least -8192 samples")
    if not -1 <= level <= 1 and trigger.value.startswith("CH"):
        raise ValueError(
            f"scope_series: level={level} V is outside the inputs' LV range "
            "(+-1 V); set the jumper's range or a smaller level"
        )
    settings: list[Any] = [
        scope.trigger_source, trigger,
        scope.trigger_level, level,
        scope.trigger_delay, delay,
    ]  # fmt: skip
    if decimation is not None:
        settings += [scope.decimation, decimation]
    yield from bps.mv(*settings)
    _md = {
        "plan_name": "scope_series",
        "trigger": trigger.value,
        "num_points": num,
        **(md or {}),
    }
    uid: str = yield from bp.count([scope], num, delay=delay_time, md=_md)
    return uid


LockSide = Literal["falling", "rising"]


def pid_lock(
    pid: RedPitayaPid,
    setpoint: float | None = None,
    fraction: float = 0.5,
    side: LockSide = "falling",
    p: float | None = None,
    i: float | None = None,
    search: tuple[float, float] | None = None,
    search_points: int = 81,
    tolerance: float = 0.02,
    verify_reads: int = 5,
    hold: float = 2.0,
    interval: float = 0.1,
    max_relocks: int = 3,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[dict[str, Any]]:
    """Lock a slow input (a cavity's transmission) to a setpoint on a fringe.

    Search: with the loop's gains at zero its output follows the integrator,
    which is stepped across `search` while the input is recorded (stream
    `search`). Engage: on the chosen side of the highest peak, the output
    where the input crosses the setpoint becomes the integrator's start,
    and the gains are set with the sign that gives negative feedback there.
    Verify: `verify_reads` readings within `tolerance` of the setpoint.
    Hold: read every `interval` s for `hold` s (stream `primary`); if the
    lock is lost (the error beyond half the setpoint, or the integrator or
    output on a limit), search and engage again, up to `max_relocks` times.
    The loop stays locked after the plan.

    Args:
        pid: The board's PID (`rp.pid`).
        setpoint: Input to lock to, V (default: `fraction` of the peak found).
        fraction: Setpoint as a fraction of the peak, when `setpoint` is None.
        side: The fringe's side: `falling` (input falls as the output rises)
            or `rising`.
        p: Proportional gain magnitude (V/V); default: 0.2 / slope, with
            the fringe's slope (V/V) at the setpoint measured in the search.
        i: Integral gain magnitude (Hz); default: the integrator corrects 30 %
            of the error per loop period at the measured slope.
        search: Output range to search, V (default: the PID's limits).
        search_points: Outputs tried in a search.
        tolerance: How close the input must stay to the setpoint, V.
        verify_reads: Readings within tolerance that confirm the lock.
        hold: Seconds the lock is watched after it is confirmed.
        interval: Seconds between readings.
        max_relocks: Times to search again after losing the lock.
        md: Metadata for the run's start document.

    Returns:
        `locked`, `relocks`, `setpoint`, `output` (V, at the end),
        `error_rms` (V, while held), `peak` (V, of the last search),
        `slope` (V/V, at the setpoint) and the signed gains `p` and `i`.
    """
    if setpoint is not None and not 0 < setpoint <= 3.3:
        raise ValueError(f"pid_lock: setpoint={setpoint} V; give 0 < setpoint <= 3.3")
    if not 0 < fraction < 1:
        raise ValueError(f"pid_lock: fraction={fraction}; give 0 < fraction < 1")
    if side not in ("falling", "rising"):
        raise ValueError(f"pid_lock: side={side!r}; use 'falling' or 'rising'")
    if (p is not None and p < 0) or (i is not None and i <= 0):
        raise ValueError(
            f"pid_lock: p={p}, i={i}; give magnitudes (p >= 0, i > 0): the plan "
            "picks the sign from the side"
        )
    if search is not None and not search[0] < search[1]:
        raise ValueError(f"pid_lock: search={search}; give (low, high) with low < high")
    if search_points < 5:
        raise ValueError(f"pid_lock: search_points={search_points}; use at least 5")
    for name, value in (("tolerance", tolerance), ("interval", interval)):
        if value <= 0:
            raise ValueError(f"pid_lock: {name}={value}; give a positive value")
    if verify_reads < 1 or max_relocks < 0 or hold < 0:
        raise ValueError(
            "pid_lock: verify_reads >= 1, max_relocks >= 0 and hold >= 0 needed"
        )
    sign = 1.0 if side == "falling" else -1.0  # negative feedback on that side
    _md = {
        "plan_name": "pid_lock",
        "side": side,
        "tolerance": tolerance,
        **(md or {}),
    }
    measured = pid.setpoint.measured.name
    outcome: dict[str, Any] = {}

    def read_lock() -> MsgGenerator[dict[str, Any]]:
        reading = yield from bps.trigger_and_read([pid])
        return {key: value["value"] for key, value in reading.items()}

    def search_peak() -> MsgGenerator[tuple[float, float, float, float]]:
        """Step the output; return (setpoint, crossing output, slope, peak)."""
        if search is not None:
            low, high = search
        else:
            low = yield from bps.rd(pid.min_voltage)
            high = yield from bps.rd(pid.max_voltage)
        rate = yield from bps.rd(pid.rate)
        yield from bps.mv(pid.enabled, False, pid.p, 0.0, pid.i, 0.0)
        yield from bps.mv(pid.ival, low)
        yield from bps.mv(pid.enabled, True)
        outputs = np.linspace(low, high, search_points)
        values = []
        for u in outputs:
            yield from bps.mv(pid.ival, float(u))
            yield from bps.sleep(2.5 / rate)  # the loop applies it, then reads
            reading = yield from bps.trigger_and_read([pid], name="search")
            values.append(float(reading[measured]["value"]))
        y = np.asarray(values)
        k = int(np.argmax(y))
        peak = float(y[k])
        target = setpoint if setpoint is not None else fraction * peak
        if not target < peak:
            raise RuntimeError(
                f"pid_lock: the input peaks at {peak:.4g} V over {low:g}..{high:g} V, "
                f"below the setpoint {target:.4g} V; check the light, or lower the "
                "setpoint"
            )
        # walk from the peak down the chosen side to the first point below target
        step = 1 if side == "falling" else -1
        j = k
        while 0 <= j + step < len(y) and y[j + step] >= target:
            j += step
        if not 0 <= j + step < len(y):
            raise RuntimeError(
                f"pid_lock: the {side} side of the peak at {outputs[k]:.4g} V does "
                f"not fall below {target:.4g} V within the search range; widen "
                "`search`"
            )
        a, b = j, j + step
        crossing = float(np.interp(target, [y[b], y[a]], [outputs[b], outputs[a]]))
        slope = abs(float((y[b] - y[a]) / (outputs[b] - outputs[a])))
        return target, crossing, slope, peak

    def engage(target: float, output: float, slope: float) -> MsgGenerator[None]:
        rate = yield from bps.rd(pid.rate)
        gain_p = p if p is not None else 0.2 / slope
        gain_i = i if i is not None else 0.3 * rate / (2 * math.pi * slope)
        outcome.update(p=sign * gain_p, i=sign * gain_i, slope=slope)
        yield from bps.mv(pid.enabled, False)
        yield from bps.mv(pid.setpoint.target, target, pid.ival, output)
        yield from bps.mv(pid.p, sign * gain_p, pid.i, sign * gain_i)
        yield from bps.mv(pid.enabled, True)

    def lost(
        values: dict[str, Any], target: float, limits: tuple[float, float]
    ) -> bool:
        error = abs(values[pid.error.name])
        out = values[pid.output_value.name]
        railed = min(abs(out - limits[0]), abs(out - limits[1])) < 1e-3
        return (
            error > target / 2
            or abs(values[pid.ival.name]) > 0.9 * IVAL_LIMIT
            or railed
        )

    def lock() -> MsgGenerator[None]:
        limits = (
            (yield from bps.rd(pid.min_voltage)),
            (yield from bps.rd(pid.max_voltage)),
        )
        relocks = 0
        errors: list[float] = []
        while True:
            target, crossing, slope, peak = yield from search_peak()
            outcome.update(setpoint=target, peak=peak)
            yield from engage(target, crossing, slope)
            good = 0
            values: dict[str, Any] = {}
            for _ in range(verify_reads * 10):  # allow the lock time to settle
                yield from bps.sleep(interval)
                values = yield from read_lock()
                good = good + 1 if abs(values[pid.error.name]) < tolerance else 0
                if good >= verify_reads or lost(values, target, limits):
                    break
            held = good >= verify_reads
            if held:
                errors = []
                reads = max(1, int(round(hold / interval)))
                for _ in range(reads):
                    yield from bps.sleep(interval)
                    values = yield from read_lock()
                    if lost(values, target, limits):
                        held = False
                        break
                    errors.append(values[pid.error.name])
            if held:
                outcome.update(
                    locked=True,
                    relocks=relocks,
                    output=values[pid.output_value.name],
                    error_rms=float(np.sqrt(np.mean(np.square(errors))))
                    if errors
                    else math.nan,
                )
                return
            if relocks >= max_relocks:
                yield from bps.mv(pid.enabled, False)
                raise RuntimeError(
                    f"pid_lock: lock lost {relocks + 1} times (max_relocks="
                    f"{max_relocks}); last error {values.get(pid.error.name)} V. "
                    "Check the gains (smaller p and i) and the setpoint"
                )
            relocks += 1

    yield from bpp.run_wrapper(lock(), md=_md)
    return outcome
