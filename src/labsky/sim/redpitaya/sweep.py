"""The generators' frequency sweep (`SOUR<n>:SWeep:*`), as `rp_sweep` runs it.

On the board a thread of the SCPI server (`rp-api/api-sweep`) retunes each
enabled output continuously (`rp_GenFreqDirect`, phase continuous) from its
start to its stop frequency over the sweep time, linearly or logarithmically,
then starts again (`NORMAL`) or comes back (`UP_DOWN`). The sweep's clock
restarts whenever a setting changes, on `SOUR:SWeep:RESET`, and when a
channel is enabled; `SOUR:SWeep:PAUSE ON` freezes the frequency. Start and
stop are kept as whole hertz and the time as whole microseconds, as there.

Here the sweep is exact instead of stepwise: the frequency is a function of
time and the output's phase its integral, so an input sampled at any
instants sees a continuous chirp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from labsky.sim.redpitaya.waveforms import Generator

MODES = ("LINEAR", "LOG")
DIRECTIONS = ("NORMAL", "UP_DOWN")


@dataclass
class SweepSettings:
    """One channel's sweep settings (`SOUR:SWeep:DEFault` values)."""

    start: int = 1000  # Hz
    stop: int = 1000  # Hz
    time_us: int = 1000
    mode: str = "LINEAR"
    direction: str = "NORMAL"


@dataclass
class ChannelSweep:
    """The sweep of one output: its settings, clock and phase."""

    settings: SweepSettings = field(default_factory=SweepSettings)
    run: bool = False  # SOUR<n>:SWeep:STATE
    start_time: float = 0.0  # when the sweep's clock last restarted
    anchor_t: float = 0.0  # the output's phase is anchor_cycles at anchor_t
    anchor_cycles: float = 0.0

    # -- the sweep as a function of time ----------------------------------

    def _bounds(self) -> tuple[float, float, bool]:
        s = self.settings
        return (
            float(min(s.start, s.stop)),
            float(max(s.start, s.stop)),
            s.start > s.stop,
        )

    def _position(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sweep periods completed, position x in [0, 1) and direction at `t`."""
        period = self.settings.time_us * 1e-6
        elapsed = np.maximum(np.asarray(t, float) - self.start_time, 0.0)
        cycles = np.floor(elapsed / period)
        x = elapsed / period - cycles
        _, _, invert = self._bounds()
        backwards = np.full(x.shape, invert)
        if self.settings.direction == "UP_DOWN":
            backwards ^= cycles % 2 == 1
        return cycles, np.where(backwards, 1.0 - x, x), backwards

    def _f(self, x: np.ndarray) -> np.ndarray:
        a, b, _ = self._bounds()
        if self.settings.mode == "LOG" and a > 0 and b > a:
            return a * np.exp(x * math.log(b / a))
        return a + (b - a) * x

    def _integral(self, x: np.ndarray) -> np.ndarray:
        """Cycles from x = 0 to x, per second of sweep time."""
        a, b, _ = self._bounds()
        if self.settings.mode == "LOG" and a > 0 and b > a:
            r = math.log(b / a)
            return a * (np.exp(x * r) - 1.0) / r
        return a * x + (b - a) * x**2 / 2

    def frequency(self, t: np.ndarray | float) -> np.ndarray:
        """The output frequency at `t`, Hz."""
        _, x, _ = self._position(np.asarray(t, float))
        return self._f(x)

    def _phase(self, t: np.ndarray) -> np.ndarray:
        """Cycles of the sweep since its clock started, at `t`."""
        period = self.settings.time_us * 1e-6
        cycles, x, backwards = self._position(t)
        whole = self._integral(np.ones(1))[0]
        partial = np.where(backwards, whole - self._integral(x), self._integral(x))
        return period * (cycles * whole + partial)

    def cycles(self, t: np.ndarray | float) -> np.ndarray:
        """The output's phase at `t`, in cycles (continuous across restarts)."""
        t = np.asarray(t, float)
        reference = self._phase(np.asarray([self.anchor_t]))[0]
        return self.anchor_cycles + self._phase(t) - reference

    # -- events -------------------------------------------------------------

    def restart(self, t: float) -> None:
        """Restart the sweep's clock at `t`, keeping the phase continuous."""
        cycles = float(self.cycles(t))
        self.start_time = t
        self.anchor_t, self.anchor_cycles = t, cycles

    def anchor(self, t: float, cycles: float) -> None:
        """The output's phase is `cycles` at `t` (a generator (re)start)."""
        self.anchor_t, self.anchor_cycles = t, cycles


class SweepController:
    """The sweep thread of the SCPI server: both channels' sweeps.

    Args:
        generators: OUT1 and OUT2 (the board's list; GEN:RST replaces items).
    """

    def __init__(self, generators: list[Generator]):
        self.generators = generators
        self.channels = (ChannelSweep(), ChannelSweep())
        self.thread = False  # the sweep thread runs
        self.paused_at: float | None = None

    def active(self, index: int) -> ChannelSweep | None:
        """The sweep that drives output `index` (0, 1) now, if any."""
        sweep = self.channels[index]
        return sweep if self.thread and sweep.run else None

    def frequency(self, index: int, t: float) -> float | None:
        """The swept frequency of output `index` at `t` (None: not sweeping)."""
        sweep = self.active(index)
        if sweep is None:
            return None
        at = self.paused_at if self.paused_at is not None else t
        return float(sweep.frequency(at))

    # -- what the generator outputs --------------------------------------

    def cycles(self, index: int, t: np.ndarray) -> np.ndarray:
        """Phase of output `index` at times `t`, cycles (pauses included)."""
        sweep = self.channels[index]
        if self.paused_at is None:
            return sweep.cycles(t)
        held = float(sweep.frequency(self.paused_at))
        before = sweep.cycles(np.minimum(t, self.paused_at))
        return before + held * np.maximum(t - self.paused_at, 0.0)

    def frequencies(self, index: int, t: np.ndarray) -> np.ndarray:
        """Instantaneous frequency of output `index` at times `t`."""
        sweep = self.channels[index]
        if self.paused_at is None:
            return sweep.frequency(t)
        return sweep.frequency(np.minimum(t, self.paused_at))

    # -- commands ----------------------------------------------------------

    def _freeze(self, index: int, t: float) -> None:
        """Leave output `index` at the swept frequency and phase of `t`."""
        if self.active(index) is None:
            return
        generator = self.generators[index]
        frequency = self.frequencies(index, np.asarray([t]))[0]
        if generator.started_at is not None:
            generator.theta_ref = float(self.cycles(index, np.asarray([t]))[0])
            generator.t_ref = t
        generator.frequency = float(frequency)
        generator.changed_at = -math.inf  # no ringing from a swept history

    def _engage(self, index: int, t: float) -> None:
        """Output `index` starts being swept at `t`, from its present phase."""
        generator = self.generators[index]
        cycles = generator.cycles_at(t) if generator.started_at is not None else 0.0
        self.channels[index].anchor(t, cycles)

    def set_state(self, index: int, run: bool, t: float) -> None:
        """`SOUR<n>:SWeep:STATE`: the thread starts with the first channel."""
        sweep = self.channels[index]
        if run and not self.thread:
            self.thread = True
            for other in (0, 1):
                if other != index and self.channels[other].run:
                    self._engage(other, t)
        if sweep.run != run:
            if not run:
                self._freeze(index, t)
            sweep.run = run
            sweep.start_time = t
            if run:
                self._engage(index, t)
        if not any(c.run for c in self.channels):
            self.thread = False

    def change(self, index: int, t: float, **values: object) -> None:
        """A setting of channel `index` changes (its clock restarts if it did)."""
        sweep = self.channels[index]
        changed = {k: v for k, v in values.items() if getattr(sweep.settings, k) != v}
        if not changed:
            return
        cycles = float(self.cycles(index, np.asarray([t]))[0])
        for name, value in changed.items():
            setattr(sweep.settings, name, value)
        sweep.start_time = t
        sweep.anchor(t, cycles)

    def reset(self, t: float) -> None:
        """`SOUR:SWeep:RESET`: every channel's clock restarts."""
        for index, sweep in enumerate(self.channels):
            cycles = float(self.cycles(index, np.asarray([t]))[0])
            sweep.start_time = t
            sweep.anchor(t, cycles)

    def pause(self, paused: bool, t: float) -> None:
        """`SOUR:SWeep:PAUSE`: hold the frequencies (the clocks wait)."""
        if paused and self.paused_at is None:
            self.paused_at = t
        elif not paused and self.paused_at is not None:
            held, self.paused_at = self.paused_at, None
            for sweep in self.channels:
                frequency = float(sweep.frequency(held))
                cycles = float(sweep.cycles(held)) + frequency * (t - held)
                sweep.start_time += t - held
                sweep.anchor(t, cycles)

    def default(self, t: float) -> None:
        """`SOUR:SWeep:DEFault`: the thread stops, the settings reset."""
        for index in (0, 1):
            self._freeze(index, t)
        self.thread = False
        self.paused_at = None
        for sweep in self.channels:
            sweep.settings = SweepSettings()
            sweep.start_time = t
            sweep.anchor(t, 0.0)

    def generator_started(self, index: int, t: float) -> None:
        """Output `index` restarts from phase 0 at `t` (`SOUR<n>:TRig:INT`)."""
        self.channels[index].anchor(t, 0.0)
