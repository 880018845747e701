"""The Red Pitaya's two-channel 16384-sample scope as a StandardDetector."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
from bluesky.protocols import Reading
from event_model import DataKey
from ophyd_async.core import (
    Array1D,
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    ReadableDataProvider,
    SignalDict,
    SignalR,
    StandardDetector,
    derived_signal_r,
    soft_signal_r_and_setter,
)

from labsky.devices.redpitaya._access import Acquirer, BoardAccess
from labsky.devices.redpitaya._scpi import F_CLOCK, HALF, SAMPLES, Trace
from labsky.devices.redpitaya._settings import TriggerSource

DECIMATIONS = tuple(2**k for k in range(17))


def decimation_for(duration: float) -> int:
    """The smallest decimation whose trace lasts at least `duration` seconds.

    Raises:
        ValueError: Beyond the longest trace (8.6 s at decimation 65536).
    """
    for decimation in DECIMATIONS:
        if SAMPLES * decimation / F_CLOCK >= duration * (1 - 1e-9):
            return decimation
    longest = SAMPLES * DECIMATIONS[-1] / F_CLOCK
    raise ValueError(
        f"a trace lasts at most {longest:.2f} s (decimation 65536); "
        f"{duration:g} s asked"
    )


class ScopeTriggerLogic(DetectorTriggerLogic):
    """Internal (the configured trigger source) or external-edge triggering.

    A livetime picks the decimation: the shortest trace lasting that long.
    """

    def __init__(self, scope: RedPitayaScope):
        self.scope = scope

    def config_sigs(self) -> set[SignalR]:
        """Settings recorded with every run."""
        return set(self.scope.config_signals)

    def get_deadtime(self, config_values: SignalDict) -> float:
        """Reading two channels over the network: a few milliseconds."""
        return 5e-3

    async def _livetime(self, livetime: float) -> None:
        if livetime:
            await self.scope.decimation.set(decimation_for(livetime))

    async def prepare_internal(
        self, num: int, livetime: float, deadtime: float
    ) -> None:
        """One trace per trigger, with the configured trigger source."""
        await self._livetime(livetime)

    async def prepare_edge(self, num: int, livetime: float) -> None:
        """One trace per rising edge on the external trigger input."""
        await self.scope.trigger_source.set(TriggerSource.EXT_PE)
        await self._livetime(livetime)


class ScopeAcquireLogic(DetectorAcquireLogic):
    """Run one acquisition per trigger and publish its trace."""

    def __init__(self, scope: RedPitayaScope):
        self.scope = scope
        self._task: asyncio.Task[Trace] | None = None

    async def start_acquiring(self) -> None:
        """Start the acquisition (it runs while `trigger()` waits)."""
        self._task = asyncio.get_running_loop().create_task(
            self.scope.acquirer.acquire()
        )

    async def wait_for_idle(self) -> None:
        """Wait for the trace and publish it on the data signals."""
        task = self._task
        if task is None:
            return
        self._task = None
        self.scope.publish(await task)

    async def ensure_stopped(self) -> None:
        """Abandon an acquisition in flight."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.scope.acquirer.stop()


class TraceProvider(ReadableDataProvider):
    """Both traces and their means, read in every event."""

    def __init__(self, signals: list[SignalR[Any]]):
        self.signals = signals

    async def make_datakeys(self) -> dict[str, DataKey]:
        """Data keys of the traces (shape [16384]) and scalars."""
        keys: dict[str, DataKey] = {}
        for signal in self.signals:
            keys.update(await signal.describe())
        return keys

    async def make_readings(self) -> dict[str, Reading]:
        """The last trace."""
        readings: dict[str, Reading] = {}
        for signal in self.signals:
            readings.update(await signal.read(cached=False))
        return readings


class ScopeDataLogic(DetectorDataLogic):
    """Traces travel in the events (64 KiB per channel)."""

    def __init__(self, scope: RedPitayaScope):
        self.scope = scope

    async def prepare_single(self, datakey_name: str) -> ReadableDataProvider:
        """Read the data signals after each trigger."""
        return TraceProvider(self.scope.data_signals)

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        """The means: what a live table or plot can show."""
        return [self.scope.ch1_mean.name, self.scope.ch2_mean.name]


class RedPitayaScope(StandardDetector):
    """The scope: IN1 and IN2, 16384 samples each, at 125 MS/s / decimation.

    Each trigger takes one acquisition with the configured trigger source
    (`NOW`, an edge of either input at `trigger_level`, the external input,
    or the generator's start) and reads both channels: events hold `ch1` and
    `ch2` (float32 arrays of 16384 samples, oldest first, the trigger at
    index 8192 - `trigger_delay`) and their means. The time axis is in the
    configuration: sample k is at `t0 + k * dt` from the trigger.

    Args:
        access: How the board is reached (SCPI or the IOC).
        name: The device name.
    """

    def __init__(self, access: BoardAccess, name: str = ""):
        self.decimation = access.rw("scope.decimation")
        self.averaging = access.rw("scope.averaging")
        self.trigger_source = access.rw("scope.trigger_source")
        self.trigger_level = access.rw("scope.trigger_level")
        self.trigger_hysteresis = access.rw("scope.trigger_hysteresis")
        self.trigger_delay = access.rw("scope.trigger_delay")
        self.units = access.rw("scope.units")
        self.gain1 = access.rw("scope.gain1")
        self.gain2 = access.rw("scope.gain2")
        self.awg_channel = access.rw("scope.awg_channel")
        self.timeout = access.rw("scope.timeout")
        self.dt = derived_signal_r(_dt, derived_units="s", decimation=self.decimation)
        self.t0 = derived_signal_r(
            _t0,
            derived_units="s",
            decimation=self.decimation,
            trigger_delay=self.trigger_delay,
        )
        self.acquirer: Acquirer = access.acquirer()
        zeros = np.zeros(SAMPLES, np.float32)
        self.ch1, self._set_ch1 = soft_signal_r_and_setter(Array1D[np.float32], zeros)
        self.ch2, self._set_ch2 = soft_signal_r_and_setter(Array1D[np.float32], zeros)
        self.ch1_mean, self._set_ch1_mean = soft_signal_r_and_setter(
            float, math.nan, precision=5
        )
        self.ch2_mean, self._set_ch2_mean = soft_signal_r_and_setter(
            float, math.nan, precision=5
        )
        self.sequence, self._set_sequence = soft_signal_r_and_setter(int, 0)
        self.data_signals: list[SignalR[Any]] = [
            self.ch1, self.ch2, self.ch1_mean, self.ch2_mean, self.sequence
        ]  # fmt: skip
        self.config_signals: list[SignalR[Any]] = [
            self.decimation, self.averaging, self.trigger_source,
            self.trigger_level, self.trigger_hysteresis, self.trigger_delay,
            self.units, self.gain1, self.gain2, self.dt, self.t0,
        ]  # fmt: skip
        self.last_trace: Trace | None = None
        self.add_detector_logics(
            ScopeTriggerLogic(self), ScopeAcquireLogic(self), ScopeDataLogic(self)
        )
        super().__init__(name=name)

    def publish(self, trace: Trace) -> None:
        """Make a trace the scope's current reading."""
        self.last_trace = trace
        self._set_ch1(trace.ch1)
        self._set_ch2(trace.ch2)
        self._set_ch1_mean(float(np.mean(trace.ch1)))
        self._set_ch2_mean(float(np.mean(trace.ch2)))
        self._set_sequence(trace.sequence)

    async def acquire(self) -> Trace:
        """Take one trace outside a plan (at the prompt, in a notebook)."""
        trace = await self.acquirer.acquire()
        self.publish(trace)
        return trace


def _dt(decimation: int) -> float:
    return decimation / F_CLOCK


def _t0(decimation: int, trigger_delay: int) -> float:
    return -(HALF - trigger_delay) * decimation / F_CLOCK
