"""Red Pitaya plans: network analyser, scope series, PID lock.

They live beside the devices they drive and take the board's parts
(`rp.iq`, `rp.scope`, `rp.pid`), so they work the same on a board owned by
the session and on one served by `labsky ioc redpitaya`. Every session offers
them (`labsky.plans.LABSKY_PLANS`). Arguments are checked before the run
opens.

`pid_lock` is built from parts that can be read and tested alone: its
checked settings (`LockSettings`), the fringe found by a search
(`find_fringe`, a pure function of the measured points), the test for a lost
lock (`LockWatch`), the stages as plan stubs (`search_fringe`, `engage`,
`verify_lock`, `hold_lock`) and what it returns (`LockOutcome`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.callbacks import CallbackBase
from bluesky.utils import MsgGenerator

from labsky.devices.redpitaya._lockin import RedPitayaLockIn
from labsky.devices.redpitaya._pid import RedPitayaPid
from labsky.devices.redpitaya._pid_loop import IVAL_LIMIT
from labsky.devices.redpitaya._scope import DECIMATIONS, RedPitayaScope
from labsky.devices.redpitaya._settings import TriggerSource, Waveform

__all__ = [
    "Fringe",
    "LockOutcome",
    "LockSettings",
    "LockWatch",
    "engage",
    "find_fringe",
    "fit_resonance",
    "hold_lock",
    "network_analyzer",
    "pid_lock",
    "scope_series",
    "search_fringe",
    "sweep_frequencies",
    "verify_lock",
]

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


class _Response(CallbackBase):
    """The frequency and amplitude of each point of a sweep's primary stream."""

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
    collect = _Response(frequency.value.name, lockin.amplitude.name)
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


@dataclass(frozen=True)
class LockSettings:
    """What `pid_lock` is asked for, checked when made (see `pid_lock`).

    Raises:
        ValueError: Naming the bad setting and what it takes.
    """

    setpoint: float | None = None
    fraction: float = 0.5
    side: LockSide = "falling"
    p: float | None = None
    i: float | None = None
    search: tuple[float, float] | None = None
    search_points: int = 81
    tolerance: float = 0.02
    verify_reads: int = 5
    hold: float = 2.0
    interval: float = 0.1
    max_relocks: int = 3

    def __post_init__(self) -> None:
        setpoint, fraction, side = self.setpoint, self.fraction, self.side
        if setpoint is not None and not 0 < setpoint <= 3.3:
            raise ValueError(
                f"pid_lock: setpoint={setpoint} V; give 0 < setpoint <= 3.3"
            )
        if not 0 < fraction < 1:
            raise ValueError(f"pid_lock: fraction={fraction}; give 0 < fraction < 1")
        if side not in ("falling", "rising"):
            raise ValueError(f"pid_lock: side={side!r}; use 'falling' or 'rising'")
        if (self.p is not None and self.p < 0) or (self.i is not None and self.i <= 0):
            raise ValueError(
                f"pid_lock: p={self.p}, i={self.i}; give magnitudes (p >= 0, i > 0): "
                "the plan picks the sign from the side"
            )
        if self.search is not None and not self.search[0] < self.search[1]:
            raise ValueError(
                f"pid_lock: search={self.search}; give (low, high) with low < high"
            )
        if self.search_points < 5:
            raise ValueError(
                f"pid_lock: search_points={self.search_points}; use at least 5"
            )
        for name in ("tolerance", "interval"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"pid_lock: {name}={getattr(self, name)}; give a positive value"
                )
        if self.verify_reads < 1 or self.max_relocks < 0 or self.hold < 0:
            raise ValueError(
                "pid_lock: verify_reads >= 1, max_relocks >= 0 and hold >= 0 needed"
            )

    @property
    def sign(self) -> float:
        """The gains' sign: negative feedback on the chosen side of the fringe."""
        return 1.0 if self.side == "falling" else -1.0

    def gains(self, slope: float, rate: float) -> tuple[float, float]:
        """The signed gains (p in V/V, i in Hz) for a fringe's slope and the loop rate.

        Without given magnitudes, p is 0.2 / slope and i lets the integrator
        correct 30 % of the error per loop period.
        """
        p = self.p if self.p is not None else 0.2 / slope
        i = self.i if self.i is not None else 0.3 * rate / (2 * math.pi * slope)
        return self.sign * p, self.sign * i


@dataclass(frozen=True)
class Fringe:
    """Where to lock, from a search.

    Attributes:
        target: The setpoint, V of input.
        crossing: The output where the input crosses the setpoint, V: the
            integrator's start.
        slope: |d input / d output| there, V/V.
        peak: The highest input of the search, V.
    """

    target: float
    crossing: float
    slope: float
    peak: float


def find_fringe(
    outputs: Sequence[float] | np.ndarray,
    inputs: Sequence[float] | np.ndarray,
    settings: LockSettings,
) -> Fringe:
    """The point to lock to on the chosen side of the highest peak of a search.

    Args:
        outputs: The outputs stepped through, V, increasing.
        inputs: The input read at each, V.
        settings: The setpoint (or fraction of the peak) and the side.

    Raises:
        RuntimeError: If the input stays below the setpoint, or the chosen
            side does not fall below it within the outputs searched.
    """
    u = np.asarray(outputs, float)
    y = np.asarray(inputs, float)
    k = int(np.argmax(y))
    peak = float(y[k])
    target = settings.setpoint if settings.setpoint is not None else (
        settings.fraction * peak
    )  # fmt: skip
    if not target < peak:
        raise RuntimeError(
            f"pid_lock: the input peaks at {peak:.4g} V over {u[0]:g}..{u[-1]:g} V, "
            f"below the setpoint {target:.4g} V; check the light, or lower the "
            "setpoint"
        )
    # walk from the peak down the chosen side to the first point below target
    step = 1 if settings.side == "falling" else -1
    j = k
    while 0 <= j + step < len(y) and y[j + step] >= target:
        j += step
    if not 0 <= j + step < len(y):
        raise RuntimeError(
            f"pid_lock: the {settings.side} side of the peak at {u[k]:.4g} V does "
            f"not fall below {target:.4g} V within the search range; widen "
            "`search`"
        )
    a, b = j, j + step
    crossing = float(np.interp(target, [y[b], y[a]], [u[b], u[a]]))
    slope = abs(float((y[b] - y[a]) / (u[b] - u[a])))
    return Fringe(target, crossing, slope, peak)


@dataclass(frozen=True)
class LockWatch:
    """Tells a held lock from a lost one, from a reading of the PID.

    A lock is lost when the error exceeds half the setpoint, or the
    integrator nears its limit, or the output sits on one of its limits.

    Attributes:
        target: The setpoint, V.
        limits: The output's (min, max), V.
        error_key: Reading keys of the PID's error, output and integrator.
        output_key: See `error_key`.
        ival_key: See `error_key`.
    """

    target: float
    limits: tuple[float, float]
    error_key: str
    output_key: str
    ival_key: str

    @classmethod
    def of(cls, pid: RedPitayaPid, target: float, limits: tuple[float, float]) -> Any:
        """The watch of a PID's readings."""
        return cls(target, limits, pid.error.name, pid.output_value.name, pid.ival.name)

    def error(self, values: Mapping[str, Any]) -> float:
        """The loop's error in a reading, V."""
        return float(values[self.error_key])

    def lost(self, values: Mapping[str, Any]) -> bool:
        """Whether the reading shows the lock lost."""
        out = values[self.output_key]
        railed = min(abs(out - self.limits[0]), abs(out - self.limits[1])) < 1e-3
        return (
            abs(self.error(values)) > self.target / 2
            or abs(values[self.ival_key]) > 0.9 * IVAL_LIMIT
            or railed
        )


@dataclass
class LockOutcome:
    """What `pid_lock` returns; the stages fill it in as they go."""

    locked: bool = False
    relocks: int = 0
    setpoint: float = math.nan
    peak: float = math.nan
    slope: float = math.nan
    p: float = math.nan
    i: float = math.nan
    output: float = math.nan
    error_rms: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """The plan's result."""
        return dataclasses.asdict(self)


def _read_pid(pid: RedPitayaPid, stream: str = "primary") -> MsgGenerator[Any]:
    reading = yield from bps.trigger_and_read([pid], name=stream)
    return {key: value["value"] for key, value in reading.items()}


def _loop_iterations(pid: RedPitayaPid, count: int, rate: float) -> MsgGenerator[None]:
    """Wait until the loop has run `count` more times (however slow the host).

    Three iterations after a change, the loop's input reading follows it:
    the one under way may have computed its output before the change, the
    next writes the new output, and the third reads its effect.

    Raises:
        RuntimeError: If the loop stops iterating (a hundred periods without).
    """
    start = yield from bps.rd(pid.iterations)
    last, idle = start, 0
    while last < start + count:
        yield from bps.sleep(0.5 / rate)
        now = yield from bps.rd(pid.iterations)
        idle = 0 if now != last else idle + 1
        if idle > 200:
            raise RuntimeError(
                f"{pid.name}: the loop has not run for {100 / rate:g} s "
                "(is it enabled, did its board go away?)"
            )
        last = now


def search_fringe(pid: RedPitayaPid, settings: LockSettings) -> MsgGenerator[Fringe]:
    """Step the integrator with the gains at zero, record the input (stream `search`).

    With p = i = 0 the loop's output follows its integrator, so setting
    `ival` steps the output across `settings.search` (default: the PID's
    limits); `find_fringe` then picks the point to lock to.
    """
    if settings.search is not None:
        low, high = settings.search
    else:
        low = yield from bps.rd(pid.min_voltage)
        high = yield from bps.rd(pid.max_voltage)
    rate = yield from bps.rd(pid.rate)
    yield from bps.mv(pid.enabled, False, pid.p, 0.0, pid.i, 0.0)
    yield from bps.mv(pid.ival, low)
    yield from bps.mv(pid.enabled, True)
    outputs = np.linspace(low, high, settings.search_points)
    inputs = []
    measured = pid.setpoint.measured.name
    for u in outputs:
        yield from bps.mv(pid.ival, float(u))
        yield from _loop_iterations(pid, 3, rate)  # applied, then read back
        values = yield from _read_pid(pid, "search")
        inputs.append(float(values[measured]))
    return find_fringe(outputs, inputs, settings)


def engage(
    pid: RedPitayaPid, fringe: Fringe, gains: tuple[float, float]
) -> MsgGenerator[None]:
    """Set the setpoint, start the integrator at the crossing, set the gains, run."""
    p, i = gains
    yield from bps.mv(pid.enabled, False)
    yield from bps.mv(pid.setpoint.target, fringe.target, pid.ival, fringe.crossing)
    yield from bps.mv(pid.p, p, pid.i, i)
    yield from bps.mv(pid.enabled, True)


def verify_lock(
    pid: RedPitayaPid, settings: LockSettings, watch: LockWatch
) -> MsgGenerator[tuple[bool, dict[str, Any]]]:
    """Read until `verify_reads` readings in a row are within tolerance.

    Gives the lock up to ten times that many readings to settle.

    Returns:
        Whether the lock was confirmed, and the last reading.
    """
    good = 0
    values: dict[str, Any] = {}
    for _ in range(settings.verify_reads * 10):
        yield from bps.sleep(settings.interval)
        values = yield from _read_pid(pid)
        good = good + 1 if abs(watch.error(values)) < settings.tolerance else 0
        if good >= settings.verify_reads or watch.lost(values):
            break
    return good >= settings.verify_reads, values


def hold_lock(
    pid: RedPitayaPid, settings: LockSettings, watch: LockWatch
) -> MsgGenerator[tuple[bool, dict[str, Any], list[float]]]:
    """Read every `interval` s for `hold` s, stopping if the lock is lost.

    Returns:
        Whether the lock held, the last reading, and the errors read, V.
    """
    errors: list[float] = []
    values: dict[str, Any] = {}
    for _ in range(max(1, int(round(settings.hold / settings.interval)))):
        yield from bps.sleep(settings.interval)
        values = yield from _read_pid(pid)
        if watch.lost(values):
            return False, values, errors
        errors.append(watch.error(values))
    return True, values, errors


def _lock(
    pid: RedPitayaPid, settings: LockSettings, outcome: LockOutcome
) -> MsgGenerator[None]:
    """Search, engage, verify and hold; on a lost lock, again, up to `max_relocks`."""
    limits = (
        (yield from bps.rd(pid.min_voltage)),
        (yield from bps.rd(pid.max_voltage)),
    )
    while True:
        fringe = yield from search_fringe(pid, settings)
        outcome.setpoint, outcome.peak = fringe.target, fringe.peak
        rate = yield from bps.rd(pid.rate)
        outcome.p, outcome.i = settings.gains(fringe.slope, rate)
        outcome.slope = fringe.slope
        yield from engage(pid, fringe, (outcome.p, outcome.i))
        watch = LockWatch.of(pid, fringe.target, limits)
        held, values = yield from verify_lock(pid, settings, watch)
        errors: list[float] = []
        if held:
            held, values, errors = yield from hold_lock(pid, settings, watch)
        if held:
            outcome.locked = True
            outcome.output = values[watch.output_key]
            if errors:
                outcome.error_rms = float(np.sqrt(np.mean(np.square(errors))))
            return
        if outcome.relocks >= settings.max_relocks:
            yield from bps.mv(pid.enabled, False)
            raise RuntimeError(
                f"pid_lock: lock lost {outcome.relocks + 1} times (max_relocks="
                f"{settings.max_relocks}); last error "
                f"{values.get(watch.error_key)} V. Check the gains (smaller p "
                "and i) and the setpoint"
            )
        outcome.relocks += 1


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
    settings = LockSettings(
        setpoint, fraction, side, p, i, search, search_points, tolerance,
        verify_reads, hold, interval, max_relocks,
    )  # fmt: skip
    _md = {
        "plan_name": "pid_lock",
        "side": side,
        "tolerance": tolerance,
        **(md or {}),
    }
    outcome = LockOutcome()
    yield from bpp.run_wrapper(_lock(pid, settings, outcome), md=_md)
    return outcome.as_dict()
