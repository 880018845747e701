"""What is cabled to a simulated Red Pitaya: the physics behind its inputs.

By default (the profile can rewire it):

- OUT1 drives a resonator (a quartz crystal or an RLC tank: f0, Q) whose
  output is IN1, so a network-analyzer sweep finds its resonance and the
  phase turns through 180 degrees across it.
- OUT2 drives the piezo of an optical cavity locked by the software PID; the
  cavity's transmission photodiode goes to IN2 and, through a tee, to the
  slow input AIN0. The cavity drifts (a random walk), so without the lock
  the transmission wanders off the setpoint.
- AOUT0 is looped back to AIN1.

A cable has a gain (1 into high impedance, 0.5 into 50 ohm), a delay of
about 220 ns and the ADC's one-pole anti-aliasing filter; every input adds
white noise (about 1 mV rms, divided by sqrt(decimation) with averaging)
and optional 50 Hz pickup, then the ADC clips and quantises to 14 bits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from labsky.sim.redpitaya.waveforms import (
    F_CLOCK,
    NYQUIST,
    Generator,
    Series,
    dirichlet,
    harmonics,
    one_pole,
    resonator,
)
from labsky.sim.world import World

if TYPE_CHECKING:
    from labsky.sim.redpitaya.sweep import SweepController

Gain = Callable[[np.ndarray], np.ndarray]

Source = Literal["out1", "out2", "cavity", "photodiode", "none"]
SlowSource = Literal["cavity", "aout0", "aout1", "aout2", "aout3", "none"]
FULL_SCALE = {"LV": 1.0, "HV": 20.0}


class ResonatorParams(BaseModel):
    """A resonance between an output and an input."""

    model_config = ConfigDict(extra="forbid")

    f0: float = Field(default=1.5e6, gt=0, description="Resonance frequency, Hz.")
    q: float = Field(default=250.0, gt=0.5, description="Quality factor.")
    gain: float = Field(default=1.0, description="Transmission at resonance.")


class InputParams(BaseModel):
    """What one fast input (IN1, IN2) sees."""

    model_config = ConfigDict(extra="forbid")

    source: Source = Field(description="What is cabled to the input.")
    resonator: ResonatorParams | None = Field(
        default=None, description="A resonance between the output and this input."
    )
    gain: float = Field(default=1.0, description="Cable gain (0.5 into 50 ohm).")
    delay: float = Field(default=220e-9, ge=0, description="Cable and ADC delay, s.")
    noise: float = Field(default=1e-3, ge=0, description="White noise, V rms.")
    pickup: float = Field(default=0.0, ge=0, description="50 Hz pickup, V amplitude.")
    jumper: Literal["LV", "HV"] = Field(
        default="LV", description="The input's range jumper (+/-1 V or +/-20 V)."
    )


class CavityParams(BaseModel):
    """An optical cavity scanned by a piezo on a fast output."""

    model_config = ConfigDict(extra="forbid")

    actuator: Literal["out1", "out2"] = Field(
        default="out2", description="The output driving the piezo."
    )
    linewidth: float = Field(
        default=0.05, gt=0, description="Half width of the resonance, piezo V."
    )
    resonance: float = Field(
        default=0.3, description="Piezo voltage of the resonance at the start, V."
    )
    peak: float = Field(
        default=0.8, description="Photodiode voltage at full transmission, V."
    )
    drift: float = Field(
        default=0.002, ge=0, description="Random walk of the resonance, V per sqrt(s)."
    )
    piezo_bandwidth: float = Field(
        default=2e3, gt=0, description="Piezo and driver bandwidth, Hz."
    )


InputName = Literal["in1", "in2"]


def _default_inputs() -> dict[InputName, InputParams]:
    return {
        "in1": InputParams(source="out1", resonator=ResonatorParams()),
        "in2": InputParams(source="cavity"),
    }


class BenchParams(BaseModel):
    """The wiring and physics around a simulated board."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[InputName, InputParams] = Field(
        default_factory=_default_inputs, description="IN1 and IN2."
    )
    slow_inputs: dict[Literal["ain0", "ain1", "ain2", "ain3"], SlowSource] = Field(
        default_factory=lambda: {"ain0": "cavity", "ain1": "aout0"},
        description="What the slow analog inputs see.",
    )
    cavity: CavityParams = Field(default_factory=lambda: CavityParams())
    photodiode_gain: float = Field(
        default=2000.0, description="V per W of the world's beam (source photodiode)."
    )
    aa_corner: float = Field(
        default=60e6, gt=0, description="Anti-aliasing filter corner, Hz."
    )
    slow_noise: float = Field(
        default=2e-3, ge=0, description="Noise of the slow inputs, V rms."
    )


class Cavity:
    """The cavity's drifting resonance (thread-safe: read by several clients)."""

    def __init__(self, params: CavityParams, rng: np.random.Generator):
        self.params = params
        self.rng = rng
        self._resonance = params.resonance
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def resonance(self, t: float | None = None) -> float:
        """Piezo voltage of the resonance at `t` (advances the random walk)."""
        t = time.monotonic() if t is None else t
        with self._lock:
            if t > self._at:
                step = self.params.drift * math.sqrt(t - self._at)
                self._resonance += float(self.rng.normal(0.0, step)) if step else 0.0
                self._at = t
            return self._resonance

    def kick(self, volts: float) -> None:
        """Jump the resonance (a knock on the table): the lock may be lost."""
        with self._lock:
            self._resonance += volts

    def transmission(
        self, piezo: np.ndarray | float, t: float | None = None
    ) -> np.ndarray:
        """Photodiode voltage for piezo voltages."""
        p = self.params
        detuning = (np.asarray(piezo) - self.resonance(t)) / p.linewidth
        return p.peak / (1.0 + detuning**2)


class Bench:
    """Evaluate what the inputs see at given sample times.

    Args:
        params: The wiring.
        generators: OUT1 and OUT2.
        world: The simulated table (for the `photodiode` source).
        rng: Noise generator.
    """

    def __init__(
        self,
        params: BenchParams,
        generators: list[Generator],
        world: World,
        rng: np.random.Generator,
    ):
        self.params = params
        self.generators = generators
        self.world = world
        self.rng = rng
        self.cavity = Cavity(params.cavity, rng)
        self.digital_loopback = False
        self.aout = [0.0, 0.0, 0.0, 0.0]
        self.sweeps: SweepController | None = None  # set by the board

    def input(self, name: str) -> InputParams:
        """The wiring of `in1` or `in2`."""
        params = self.params.inputs.get(name)  # type: ignore[call-overload]
        return params if params is not None else InputParams(source="none", noise=0.0)

    # -- fast inputs ------------------------------------------------------

    def volts(
        self, channel: int, t0: float, decimation: int, n: int, average: bool
    ) -> np.ndarray:
        """Input `channel` (1, 2) in volts at samples `t0 + k * decimation / f_clk`.

        With `average`, sample k is the mean over its decimation interval, as
        the FPGA computes it; without, a single sample (aliasing shows).
        """
        wiring = self.input(f"in{channel}")
        dt = decimation / F_CLOCK
        t = t0 + np.arange(n) * dt
        averaged = decimation if average else 1
        if self.digital_loopback:
            v = self._output(channel - 1, t, averaged, delay=16 / F_CLOCK)
            return v
        if wiring.source in ("out1", "out2"):
            index = int(wiring.source[-1]) - 1
            v = wiring.gain * self._through(index, t, averaged, wiring)
        elif wiring.source == "cavity":
            v = self._cavity(t, averaged)
        elif wiring.source == "photodiode":
            v = np.full(n, self.params.photodiode_gain * self.world.transmitted_power())
        else:
            v = np.zeros(n)
        if wiring.noise:
            sigma = wiring.noise / math.sqrt(averaged)
            v = v + self.rng.normal(0.0, sigma, n)
        if wiring.pickup:
            v = v + wiring.pickup * np.sin(2 * np.pi * 50.0 * t)
        return v

    def _output(
        self, index: int, t: np.ndarray, averaged: int, delay: float
    ) -> np.ndarray:
        generator = self.generators[index]
        if generator.burst == "BURST":
            return generator.burst_value(t - delay)
        if self._sweeping(index):
            return self._swept(
                index, t - delay, lambda f: dirichlet(f, averaged), dc_gain=1.0
            )
        series = generator.series()
        gain = dirichlet(series.freqs, averaged) * np.exp(
            -2j * np.pi * series.freqs * delay
        )
        return self._gated(generator, series, gain, series.dc, t - delay)

    def _sweeping(self, index: int) -> bool:
        return self.sweeps is not None and self.sweeps.active(index) is not None

    def _swept(
        self, index: int, t: np.ndarray, gain: Gain, dc_gain: float
    ) -> np.ndarray:
        """A swept output through `gain` (quasi-static: the sweep is slow).

        The phase is the integral of the swept frequency; each harmonic is
        weighted by the path's response at its instantaneous frequency.
        """
        generator = self.generators[index]
        idle = generator.idle_level()
        sweeps = self.sweeps
        if sweeps is None or generator.started_at is None or not generator.output:
            return np.full(len(t), idle)
        f = sweeps.frequencies(index, t)
        cycles = sweeps.cycles(index, t) + generator.phase / 360.0
        dc, orders, coefficients = harmonics(
            generator.function, round(generator.duty, 4), generator.arbitrary
        )
        v = np.full(len(t), (generator.amplitude * dc + generator.offset) * dc_gain)
        for order, coefficient in zip(orders, coefficients, strict=True):
            fk = order * f
            term = coefficient * gain(fk) * np.exp(2j * np.pi * order * cycles)
            v += np.where(fk < NYQUIST, generator.amplitude * term.real, 0.0)
        return np.where(t >= generator.started_at, v, idle)

    def _gated(
        self,
        generator: Generator,
        series: Series,
        gain: np.ndarray,
        dc: float,
        t: np.ndarray,
    ) -> np.ndarray:
        """The series (times `gain`) where the generator runs, idle elsewhere."""
        idle = generator.idle_level()
        if generator.started_at is None or not generator.output:
            return np.full(len(t), idle)
        phasors = series.coeffs * gain
        v = np.full(len(t), dc)
        if len(phasors):
            rel = t - series.t_ref
            v += np.real(np.exp(2j * np.pi * np.outer(rel, series.freqs)) @ phasors)
        return np.where(t >= generator.started_at, v, idle)

    def _through(
        self, index: int, t: np.ndarray, averaged: int, wiring: InputParams
    ) -> np.ndarray:
        """An output seen through the cable (and resonator) at times `t`."""
        generator = self.generators[index]
        if generator.burst == "BURST":
            return generator.burst_value(t - wiring.delay)
        if self._sweeping(index):
            return self._swept(
                index,
                t - wiring.delay,
                lambda f: self._response(f, wiring) * dirichlet(f, averaged),
                dc_gain=0.0 if wiring.resonator is not None else 1.0,
            )
        series = generator.series()
        response = self._response(series.freqs, wiring)
        gain = response * dirichlet(series.freqs, averaged)
        dc = series.dc * (0.0 if wiring.resonator is not None else 1.0)
        v = self._gated(generator, series, gain, dc, t - wiring.delay)
        if wiring.resonator is not None:
            v += self._ring(generator, series, t - wiring.delay, wiring)
        return v

    def _response(self, freqs: np.ndarray, wiring: InputParams) -> np.ndarray:
        h = one_pole(freqs, self.params.aa_corner)  # the delay: times shifted
        if wiring.resonator is not None:
            r = wiring.resonator
            h = h * r.gain * resonator(freqs, r.f0, r.q)
        return h

    def _ring(
        self, generator: Generator, series: Series, t: np.ndarray, wiring: InputParams
    ) -> np.ndarray:
        """The resonator's free ringing after the drive changed at `changed_at`.

        At the change the response is continuous; the difference between the
        old and the new steady state decays at the resonance with the
        amplitude time constant Q / (pi f0).
        """
        r = wiring.resonator
        assert r is not None
        t_c = generator.changed_at
        tau = r.q / (math.pi * r.f0)
        if not math.isfinite(t_c) or t[-1] < t_c or t[0] > t_c + 12 * tau:
            return np.zeros(len(t))
        old = generator.before_change
        before = 0.0j
        if old is not None:
            before = complex(
                np.sum(old.phasors(t_c) * self._response(old.freqs, wiring))
            )
        after = 0.0j
        if generator.started_at is not None and generator.output:
            after = complex(
                np.sum(series.phasors(t_c) * self._response(series.freqs, wiring))
            )
        delta = before - after
        rel = t - t_c
        decay = np.exp((2j * np.pi * r.f0 - 1.0 / tau) * np.clip(rel, 0.0, None))
        return np.where(rel >= 0, np.real(delta * decay), 0.0)

    def _cavity(self, t: np.ndarray, averaged: int) -> np.ndarray:
        p = self.params.cavity
        index = int(p.actuator[-1]) - 1
        generator = self.generators[index]
        if generator.burst == "BURST":
            piezo = generator.burst_value(t)
        elif self._sweeping(index):
            piezo = self._swept(
                index,
                t,
                lambda f: one_pole(f, p.piezo_bandwidth) * dirichlet(f, averaged),
                dc_gain=1.0,
            )
        else:
            series = generator.series()
            gain = one_pole(series.freqs, p.piezo_bandwidth) * dirichlet(
                series.freqs, averaged
            )
            piezo = self._gated(generator, series, gain, series.dc, t)
        return self.cavity.transmission(piezo, float(t[-1]))

    # -- slow inputs ------------------------------------------------------

    def output_level(self, index: int, t: float) -> float:
        """The slowly varying level of a fast output (its mean) at `t`."""
        generator = self.generators[index]
        if generator.started_at is None or not generator.output:
            return generator.idle_level()
        return generator.series().dc

    def slow(self, index: int) -> float:
        """Slow analog input AIN<index>, V (0 to 3.3)."""
        source = self.params.slow_inputs.get(f"ain{index}", "none")  # type: ignore[call-overload]
        if source == "cavity":
            actuator = int(self.params.cavity.actuator[-1]) - 1
            now = time.monotonic()
            value = float(
                self.cavity.transmission(self.output_level(actuator, now), now)
            )
        elif source.startswith("aout"):
            value = self.aout[int(source[-1])]
        else:
            value = 0.0
        value += float(self.rng.normal(0.0, self.params.slow_noise))
        return min(max(value, 0.0), 3.3)


def quantise(volts: np.ndarray, jumper: str) -> np.ndarray:
    """The ADC's 14-bit codes for input voltages (clipped at full scale)."""
    codes = np.round(volts / FULL_SCALE[jumper] * 8192.0)
    return np.clip(codes, -8192, 8191).astype(np.int16)
