"""The Red Pitaya's two fast outputs as sums of sinusoids.

A continuous generator output is periodic, so it is held as its Fourier
series: a DC level plus harmonics, each a complex amplitude at a frequency.
Anything linear between the output and an input (cable delay, the
anti-aliasing filter, a resonator, the averaging of decimation) multiplies
each harmonic by its transfer function at that frequency, and sampling a
sum of sinusoids at any instants is exact, aliasing included. That is what
makes a 16384-sample trace at any decimation cost a few milliseconds.

Bursts are not periodic; they are evaluated sample by sample (see
`Generator.burst_value`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

F_CLOCK = 125e6  # ADC and DAC clock, Hz
NYQUIST = F_CLOCK / 2
TABLE = 512  # points per period used to find a waveform's harmonics
MAX_HARMONICS = 63

#: SOUR<n>:FUNC choices.
FUNCTIONS = (
    "SINE",
    "SQUARE",
    "TRIANGLE",
    "SAWU",
    "SAWD",
    "DC",
    "DC_NEG",
    "PWM",
    "ARBITRARY",
)


def period_table(function: str, duty: float = 0.5, arbitrary: tuple = ()) -> np.ndarray:
    """One period of a waveform, `TABLE` points, values in [-1, 1]."""
    theta = np.arange(TABLE) / TABLE  # fraction of the period
    if function == "SINE":
        return np.sin(2 * np.pi * theta)
    if function == "SQUARE":
        return np.where(theta < 0.5, 1.0, -1.0)
    if function == "TRIANGLE":  # starts at 0 rising, like the sine
        return 1 - 4 * np.abs(((theta + 0.25) % 1.0) - 0.5)
    if function == "SAWU":
        return 2 * theta - 1
    if function == "SAWD":
        return 1 - 2 * theta
    if function == "DC":
        return np.ones(TABLE)
    if function == "DC_NEG":
        return -np.ones(TABLE)
    if function == "PWM":
        return np.where(theta < duty, 1.0, -1.0)
    if function == "ARBITRARY":
        points = np.asarray(arbitrary or (0.0,), float)
        x = np.arange(len(points) + 1) / len(points)
        return np.interp(theta, x, np.append(points, points[0]))
    raise ValueError(f"unknown waveform {function}")


@lru_cache(maxsize=64)
def harmonics(
    function: str, duty: float = 0.5, arbitrary: tuple = ()
) -> tuple[float, np.ndarray, np.ndarray]:
    """Fourier series of a waveform: `w(theta) = dc + Re sum c_k e^{j k theta}`.

    Returns:
        The mean, the harmonic numbers k and their complex amplitudes c_k
        (only those that matter: at most `MAX_HARMONICS`).
    """
    table = period_table(function, duty, arbitrary)
    spectrum = np.fft.rfft(table) / TABLE
    dc = float(spectrum[0].real)
    coefficients = 2 * spectrum[1:]
    orders = np.arange(1, len(spectrum))
    keep = np.abs(coefficients) > 1e-4 * max(np.abs(coefficients).max(), 1e-12)
    orders, coefficients = (
        orders[keep][:MAX_HARMONICS],
        coefficients[keep][:MAX_HARMONICS],
    )
    return dc, orders, coefficients


@dataclass
class Series:
    """A periodic signal: `dc + Re sum c_n e^{j 2 pi f_n (t - t_ref)}`."""

    dc: float = 0.0
    freqs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    coeffs: np.ndarray = field(default_factory=lambda: np.zeros(0, complex))
    t_ref: float = 0.0

    def phasors(self, t: float) -> np.ndarray:
        """Each harmonic's complex value at time `t`."""
        return self.coeffs * np.exp(2j * np.pi * self.freqs * (t - self.t_ref))


@dataclass
class Generator:
    """One fast output (OUT1 or OUT2) and its settings (`GEN:RST` defaults).

    The phase of a running generator is continuous across frequency changes
    (the FPGA only changes its phase step); `SOUR<n>:TRig:INT` restarts it.
    """

    function: str = "SINE"
    frequency: float = 1000.0
    amplitude: float = 0.8
    offset: float = 0.0
    phase: float = 0.0  # degrees
    duty: float = 0.5
    output: bool = False
    burst: str = "CONTINUOUS"
    burst_cycles: int = 1
    burst_count: int = 1
    burst_period_us: float = 1000.0
    init_value: float = 0.0
    last_value: float = 0.0
    trigger_source: str = "INT"
    arbitrary: tuple = ()
    started_at: float | None = None  # when generation started; None: waiting
    theta_ref: float = 0.0  # phase (cycles) at t_ref
    t_ref: float = 0.0
    changed_at: float = -math.inf  # last change of a running output
    before_change: Series | None = None

    def cycles_at(self, t: float) -> float:
        """The waveform's phase at `t`, in cycles."""
        return self.theta_ref + self.frequency * (t - self.t_ref)

    def series(self) -> Series:
        """The output after it started, as a Fourier series (continuous mode)."""
        dc, orders, coefficients = harmonics(
            self.function, round(self.duty, 4), self.arbitrary
        )
        freqs = orders * self.frequency
        below = freqs < NYQUIST
        start = (self.theta_ref + self.phase / 360.0) * orders[below]
        coeffs = self.amplitude * coefficients[below] * np.exp(2j * np.pi * start)
        return Series(
            dc=self.amplitude * dc + self.offset,
            freqs=freqs[below],
            coeffs=coeffs,
            t_ref=self.t_ref,
        )

    def idle_level(self) -> float:
        """The output before generation starts (0 V when disabled)."""
        return self.init_value if self.output else 0.0

    def start(self, t: float) -> None:
        """Start (or restart) the waveform from its beginning at `t`."""
        self._note_change(t)
        self.started_at = t
        self.t_ref = t
        self.theta_ref = 0.0

    def stop(self) -> None:
        """Stop generating (the output holds its idle level)."""
        self.started_at = None

    def retune(self, t: float, frequency: float) -> None:
        """Change the frequency at `t`, keeping the phase continuous."""
        if self.started_at is not None:
            self._note_change(t)
            self.theta_ref = self.cycles_at(t)
            self.t_ref = t
        self.frequency = frequency

    def changing(self, t: float) -> None:
        """Record that a setting of a running output changes at `t`."""
        if self.started_at is not None:
            self._note_change(t)

    def _note_change(self, t: float) -> None:
        running = self.started_at is not None and self.output
        self.before_change = self.series() if running else None
        self.changed_at = t

    def burst_value(self, t: np.ndarray) -> np.ndarray:
        """The output at times `t` in burst mode (sample by sample)."""
        start = self.started_at if self.started_at is not None else math.inf
        table = period_table(self.function, self.duty, self.arbitrary)
        elapsed = t - start
        period = self.burst_period_us * 1e-6
        burst_index = np.floor(elapsed / period)
        within = elapsed - burst_index * period
        cycles = within * self.frequency + self.phase / 360.0
        active = (
            (elapsed >= 0)
            & (burst_index < self.burst_count)
            & (within * self.frequency < self.burst_cycles)
        )
        index = ((cycles % 1.0) * TABLE).astype(np.int64) % TABLE
        wave = self.amplitude * table[index] + self.offset
        finished = elapsed >= 0
        idle = np.where(finished, self.last_value, self.idle_level())
        return np.where(active, wave, idle)


def dirichlet(freqs: np.ndarray, decimation: int) -> np.ndarray:
    """Gain of averaging `decimation` consecutive samples at `freqs` (complex).

    The phase refers the average to the first sample of each block.
    """
    if decimation == 1:
        return np.ones_like(freqs, dtype=complex)
    x = np.pi * freqs / F_CLOCK
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.sin(decimation * x) / (decimation * np.sin(x))
    ratio = np.where(np.abs(np.sin(x)) < 1e-15, 1.0, ratio)
    return ratio * np.exp(1j * x * (decimation - 1))


def one_pole(freqs: np.ndarray, corner: float) -> np.ndarray:
    """A first-order low-pass at `freqs`."""
    return 1.0 / (1.0 + 1j * freqs / corner)


def resonator(freqs: np.ndarray, f0: float, q: float) -> np.ndarray:
    """A band-pass resonance of peak gain 1: `1 / (1 + jQ(f/f0 - f0/f))`."""
    with np.errstate(divide="ignore"):
        detune = np.where(freqs > 0, freqs / f0 - f0 / np.maximum(freqs, 1e-30), -1e30)
    return 1.0 / (1.0 + 1j * q * detune)
