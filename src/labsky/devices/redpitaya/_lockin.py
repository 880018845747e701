"""IQ demodulation in software, from scope traces (the stock FPGA has no IQ).

Each trigger restarts the reference generator through the scope's AWG
trigger, so the generator's phase at every sample is known; the trace
starts `settle_time` after the restart (the device under test has rung up)
and is demodulated at the generator's frequency with a Hann window:

    I + jQ = 2 sum w_k x_k exp(-j 2 pi f t_k) / sum w_k

then corrected for the boxcar averaging of decimation. Amplitude and phase
are those of the input relative to the generator's sine: a cable reads its
gain and delay, a resonance its transfer function. The decimation is chosen
so there are at least `oversampling` samples per period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.redpitaya._asg import RedPitayaAsg
from labsky.devices.redpitaya._scope import DECIMATIONS, RedPitayaScope
from labsky.devices.redpitaya._scpi import F_CLOCK, HALF, SAMPLES, Trace
from labsky.devices.redpitaya._settings import TriggerSource


@dataclass(frozen=True)
class Demodulated:
    """The input at the reference frequency."""

    amplitude: float  # V, peak
    phase: float  # degrees, relative to the generator's sine
    i: float
    q: float


def lockin_decimation(frequency: float, oversampling: float) -> int:
    """The largest decimation keeping `oversampling` samples per period."""
    best = 1
    for decimation in DECIMATIONS:
        if F_CLOCK / decimation >= oversampling * frequency:
            best = decimation
    return best


def demodulate(
    samples: np.ndarray,
    frequency: float,
    decimation: int,
    t_first: float,
    generator_phase: float = 0.0,
) -> Demodulated:
    """Amplitude and phase of `samples` at `frequency`.

    Args:
        samples: The trace (volts).
        frequency: Reference frequency, Hz.
        decimation: Decimation the trace was taken at (averaging on).
        t_first: Time of the first sample relative to the generator's
            start, s.
        generator_phase: The generator's start phase, degrees.
    """
    n = len(samples)
    dt = decimation / F_CLOCK
    # each sample is the mean of `decimation` clock samples: its centre
    t = t_first + np.arange(n) * dt + (decimation - 1) / (2 * F_CLOCK)
    window = np.hanning(n)
    z = (
        2
        * np.sum(window * samples * np.exp(-2j * np.pi * frequency * t))
        / window.sum()
    )
    x = math.pi * frequency / F_CLOCK
    boxcar = math.sin(decimation * x) / (decimation * math.sin(x)) if x else 1.0
    z /= boxcar
    # the generator is A sin(2 pi f t + phi) = Re(A e^{j(2 pi f t + phi - pi/2)})
    z *= np.exp(-1j * (math.radians(generator_phase) - math.pi / 2))
    return Demodulated(
        amplitude=float(abs(z)),
        phase=float(math.degrees(np.angle(z))),
        i=float(z.real),
        q=float(z.imag),
    )


class RedPitayaLockIn(StandardReadable):
    """A lock-in amplifier made of the scope and a generator.

    `trigger()` sets the scope for the reference frequency, restarts the
    generator, takes a trace and demodulates `input_channel`. Readings:
    `amplitude` (V), `phase` (deg), `i`, `q` and `gain_db` (amplitude over
    the generator's amplitude, in dB). It takes over the scope's settings
    while it measures.

    Args:
        scope: The board's scope.
        reference: The generator driving the device under test.
        name: The device name.
    """

    def __init__(self, scope: RedPitayaScope, reference: RedPitayaAsg, name: str = ""):
        self._parts = (scope, reference)  # a tuple: not children of the lock-in
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.amplitude, self._set_amplitude = soft_signal_r_and_setter(
                float, math.nan, units="V", precision=6
            )
            self.phase, self._set_phase = soft_signal_r_and_setter(
                float, math.nan, units="deg", precision=3
            )
        with self.add_children_as_readables():
            self.i, self._set_i = soft_signal_r_and_setter(float, math.nan, units="V")
            self.q, self._set_q = soft_signal_r_and_setter(float, math.nan, units="V")
            self.gain_db, self._set_gain_db = soft_signal_r_and_setter(
                float, math.nan, units="dB", precision=3
            )
            self.frequency, self._set_frequency = soft_signal_r_and_setter(
                float, math.nan, units="Hz"
            )
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.input_channel = soft_signal_rw(int, 1)
            self.settle_time = soft_signal_rw(float, 1e-3, units="s")
            self.oversampling = soft_signal_rw(float, 8.0)
            self.averages = soft_signal_rw(int, 1)
        self.last_trace: Trace | None = None
        super().__init__(name=name)

    @property
    def scope(self) -> RedPitayaScope:
        """The scope the lock-in takes its traces with."""
        return self._parts[0]

    @property
    def reference(self) -> RedPitayaAsg:
        """The generator driving the device under test (its frequency is swept)."""
        return self._parts[1]

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Measure at the generator's present frequency."""
        scope, reference = self._parts
        channel = await self.input_channel.get_value()
        if channel not in (1, 2):
            raise ValueError(f"{self.name}: input_channel {channel}: use 1 or 2")
        frequency = await reference.frequency.value.get_value()
        amplitude = await reference.amplitude.value.get_value()
        phase = await reference.phase.get_value()
        settle = await self.settle_time.get_value()
        decimation = lockin_decimation(frequency, await self.oversampling.get_value())
        dt = decimation / F_CLOCK
        delay = HALF + math.ceil(settle / dt)  # the whole trace after settling
        await scope.decimation.set(decimation)
        await scope.averaging.set(True)
        await scope.trigger_delay.set(delay)
        await scope.awg_channel.set(reference.channel)
        await scope.trigger_source.set(TriggerSource.AWG_PE)
        results = []
        for _ in range(max(1, await self.averages.get_value())):
            trace = await scope.acquire()
            samples = trace.ch1 if channel == 1 else trace.ch2
            results.append(
                demodulate(samples[:SAMPLES], frequency, decimation, trace.t0, phase)
            )
            self.last_trace = trace
        i = float(np.mean([r.i for r in results]))
        q = float(np.mean([r.q for r in results]))
        magnitude = math.hypot(i, q)
        self._set_i(i)
        self._set_q(q)
        self._set_amplitude(magnitude)
        self._set_phase(math.degrees(math.atan2(q, i)))
        self._set_frequency(frequency)
        self._set_gain_db(
            20 * math.log10(magnitude / amplitude)
            if magnitude > 0 and amplitude > 0
            else math.nan
        )
