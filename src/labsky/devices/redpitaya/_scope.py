"""The Red Pitaya's two-channel scope as a StandardDetector.

Three modes (`scope.mode`): NORMAL (both inputs on one trigger, 16384
samples each, in the events), SPLIT (each input on its own trigger,
decimation and delay; still 16384 samples each, in the events) and DEEP
(both inputs into the board's RAM, `deep_samples` each, written to HDF5 and
referenced by stream documents: `_deep`). The data logic follows the mode
the scope is staged in.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from bluesky.protocols import Reading
from event_model import DataKey
from ophyd_async.core import (
    Array1D,
    AsyncStatus,
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    PathProvider,
    ReadableDataProvider,
    SignalDict,
    SignalR,
    StandardDetector,
    WatchableAsyncStatus,
    WatcherUpdate,
    derived_signal_r,
    soft_signal_r_and_setter,
)

from labsky.devices.redpitaya._access import Acquirer, BoardAccess
from labsky.devices.redpitaya._deep import DeepDataLogic
from labsky.devices.redpitaya._scpi import F_CLOCK, SAMPLES, Trace
from labsky.devices.redpitaya._settings import ScopeMode, TriggerSource

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
    """Run one acquisition per trigger and publish (or store) its trace.

    A failing acquisition also fails `failure`, the future the scope's
    trigger races against: in DEEP mode the trigger otherwise waits for a
    trace count that will not grow.
    """

    def __init__(self, scope: RedPitayaScope):
        self.scope = scope
        self._task: asyncio.Task[Trace] | None = None
        self.failure: asyncio.Future[None] | None = None

    async def start_acquiring(self) -> None:
        """Start the acquisition (it runs while `trigger()` waits)."""
        task = asyncio.get_running_loop().create_task(self.scope.take())
        failure = self.failure
        if failure is not None:
            task.add_done_callback(lambda t: _report(t, failure))
        self._task = task

    async def wait_for_idle(self) -> None:
        """Wait for the trace (it is published or stored by then)."""
        task = self._task
        if task is None:
            return
        self._task = None
        await task

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
    """NORMAL and SPLIT traces travel in the events (64 KiB per channel)."""

    def __init__(self, scope: RedPitayaScope):
        self.scope = scope

    async def prepare_single(self, datakey_name: str) -> ReadableDataProvider:
        """Read the data signals after each trigger."""
        return TraceProvider(self.scope.data_signals)

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        """The means: what a live table or plot can show."""
        return [self.scope.ch1_mean.name, self.scope.ch2_mean.name]


class RedPitayaScope(StandardDetector):
    """The scope: IN1 and IN2 at 125 MS/s / decimation.

    Each trigger takes one acquisition with the configured trigger source
    (`NOW`, an edge of either input at `trigger_level`, the external input,
    or the generator's start) and reads both channels. In NORMAL mode events
    hold `ch1` and `ch2` (float32 arrays of 16384 samples, oldest first, the
    trigger at index 8192 - `trigger_delay`) and their means; the time axis
    is in the configuration: sample k is at `t0 + k * dt` from the trigger.

    In SPLIT mode IN2 has its own trigger (`ch2_trigger_source`,
    `ch2_trigger_level`), decimation and delay: its samples are at
    `ch2_t0 + k * ch2_dt` from its own trigger. In DEEP mode both inputs are
    written to the board's RAM, `deep_samples` each (the trigger at index
    deep_samples / 2 - `trigger_delay`), and stored in an HDF5 file
    (`deep_ch1`, `deep_ch2` and their means), which needs `path_provider`.

    Args:
        access: How the board is reached (SCPI or the IOC).
        path_provider: Where DEEP traces are written.
        name: The device name.
    """

    def __init__(
        self,
        access: BoardAccess,
        path_provider: PathProvider | None = None,
        name: str = "",
    ):
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
        self.mode = access.rw("scope.mode")
        self.ch2_decimation = access.rw("scope.ch2_decimation")
        self.ch2_trigger_source = access.rw("scope.ch2_trigger_source")
        self.ch2_trigger_level = access.rw("scope.ch2_trigger_level")
        self.ch2_trigger_delay = access.rw("scope.ch2_trigger_delay")
        self.deep_samples = access.rw("scope.deep_samples")
        self.dt = derived_signal_r(_dt, derived_units="s", decimation=self.decimation)
        self.t0 = derived_signal_r(
            _t0,
            derived_units="s",
            decimation=self.decimation,
            trigger_delay=self.trigger_delay,
            mode=self.mode,
            deep_samples=self.deep_samples,
        )
        self.ch2_dt = derived_signal_r(
            _ch2_dt,
            derived_units="s",
            decimation=self.decimation,
            ch2_decimation=self.ch2_decimation,
            mode=self.mode,
        )
        self.ch2_t0 = derived_signal_r(
            _ch2_t0,
            derived_units="s",
            decimation=self.decimation,
            trigger_delay=self.trigger_delay,
            ch2_decimation=self.ch2_decimation,
            ch2_trigger_delay=self.ch2_trigger_delay,
            mode=self.mode,
            deep_samples=self.deep_samples,
        )
        self.deep_written, self.set_deep_written = soft_signal_r_and_setter(int, 0)
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
            self.units, self.gain1, self.gain2, self.dt, self.t0, self.mode,
            self.ch2_decimation, self.ch2_trigger_source, self.ch2_trigger_level,
            self.ch2_trigger_delay, self.ch2_dt, self.ch2_t0, self.deep_samples,
        ]  # fmt: skip
        self.last_trace: Trace | None = None
        self._scope_acquire = ScopeAcquireLogic(self)
        self._trace_logic = ScopeDataLogic(self)
        self._deep_logic = DeepDataLogic(self, path_provider)
        self._staged_mode: ScopeMode | None = None
        self.add_detector_logics(
            ScopeTriggerLogic(self), self._scope_acquire, self._trace_logic
        )
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def stage(self) -> None:
        """Pick the data logic of the current mode, then stage as usual."""
        mode = ScopeMode(await self.mode.get_value())
        logic = self._deep_logic if mode is ScopeMode.DEEP else self._trace_logic
        self._data_logics = (logic,)
        self._staged_mode = mode
        await super().stage()

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Stop as usual; the scope is no longer staged in a mode."""
        await super().unstage()
        self._staged_mode = None

    def trigger(self) -> WatchableAsyncStatus[int]:  # type: ignore[override]
        """Take one trace; a failing acquisition ends the trigger at once."""
        failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failure.add_done_callback(_consume)
        self._scope_acquire.failure = failure
        inner = super().trigger()
        return WatchableAsyncStatus(_race(inner, failure), name=self.name)

    async def take(self) -> Trace:
        """Acquire; publish a NORMAL or SPLIT trace, store a DEEP one."""
        trace = await self.acquirer.acquire()
        staged = self._staged_mode
        deep = trace.mode is ScopeMode.DEEP
        if staged is None and deep:
            raise ValueError(
                f"{self.name}: a DEEP trace is stored in the run's HDF5 file; "
                "stage the scope (a plan such as count does) before triggering it"
            )
        if staged is not None and deep != (staged is ScopeMode.DEEP):
            raise ValueError(
                f"{self.name}: staged in {staged.value} mode but the board took a "
                f"{trace.mode.value} trace; set scope.mode before the run"
            )
        if deep:
            await self._deep_logic.store(trace)
        self.publish(trace)
        return trace

    def publish(self, trace: Trace) -> None:
        """Make a trace the scope's current reading.

        A deep trace is kept (`last_trace`) and its means are published; the
        16384-sample `ch1`/`ch2` signals keep the last NORMAL or SPLIT trace.
        """
        self.last_trace = trace
        if trace.mode is not ScopeMode.DEEP:
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


def _samples(mode: ScopeMode, deep_samples: int) -> int:
    return deep_samples if mode is ScopeMode.DEEP else SAMPLES


def _t0(
    decimation: int, trigger_delay: int, mode: ScopeMode, deep_samples: int
) -> float:
    half = _samples(mode, deep_samples) // 2
    return -(half - trigger_delay) * decimation / F_CLOCK


def _ch2_dt(decimation: int, ch2_decimation: int, mode: ScopeMode) -> float:
    return (ch2_decimation if mode is ScopeMode.SPLIT else decimation) / F_CLOCK


def _ch2_t0(
    decimation: int,
    trigger_delay: int,
    ch2_decimation: int,
    ch2_trigger_delay: int,
    mode: ScopeMode,
    deep_samples: int,
) -> float:
    if mode is ScopeMode.SPLIT:
        return -(SAMPLES // 2 - ch2_trigger_delay) * ch2_decimation / F_CLOCK
    return _t0(decimation, trigger_delay, mode, deep_samples)


def _report(task: asyncio.Task[Trace], failure: asyncio.Future[None]) -> None:
    """Fail `failure` with the task's error (the trigger then ends at once)."""
    if task.cancelled() or failure.done():
        return
    error = task.exception()
    if error is not None:
        failure.set_exception(error)


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "never retrieved" warning


async def _race(
    inner: WatchableAsyncStatus[int], failure: asyncio.Future[None]
) -> AsyncIterator[WatcherUpdate[int]]:
    """`inner`'s progress until it ends; `failure`'s error if that comes first."""
    updates: asyncio.Queue[WatcherUpdate[int]] = asyncio.Queue()

    def forward(**values: Any) -> None:
        updates.put_nowait(WatcherUpdate(**values))

    inner.watch(forward)  # type: ignore[arg-type]
    while True:
        update = asyncio.ensure_future(updates.get())
        finished, _ = await asyncio.wait(
            {update, inner.task, failure}, return_when=asyncio.FIRST_COMPLETED
        )
        if update in finished:
            yield update.result()
            continue
        update.cancel()
        if inner.task not in finished:  # the acquisition failed first
            inner.task.cancel()
            failure.result()  # raises the acquisition's error
        while not updates.empty():
            yield updates.get_nowait()
        await inner
        return
