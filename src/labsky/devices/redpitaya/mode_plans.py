"""Plans for the board's sweep, deep-memory and split-trigger modes.

- `generator_sweep`: a generator sweeps its frequency (the board retunes it
  continuously) while detectors are read; each event records the swept
  frequency, and the sweep's settings are in the run's configuration.
- `deep_traces`: long traces of both inputs through deep memory, stored in
  the run's HDF5 file (`rp-scope-deep_ch1`, `rp-scope-deep_ch2`).
- `split_traces`: traces with a trigger, decimation and delay per input.

Arguments are checked before the run opens; the scope's mode and the
sweep's state are restored when the run ends, however it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

from labsky.devices.redpitaya._asg import RedPitayaAsg
from labsky.devices.redpitaya._scope import DECIMATIONS, RedPitayaScope
from labsky.devices.redpitaya._scpi import HALF
from labsky.devices.redpitaya._settings import (
    ScopeMode,
    SweepDirection,
    SweepMode,
    TriggerSource,
)

__all__ = ["deep_traces", "generator_sweep", "split_traces"]

#: Highest generator frequency (half the 125 MHz clock).
F_MAX = 62.5e6
#: Longest sweep time the board takes (an int32 of microseconds).
SWEEP_TIME_MAX = (2**31 - 1) * 1e-6


def _factor(name: str, value: int) -> None:
    if not (value in (1, 2, 4, 8) or 16 <= value <= 65536) or value != int(value):
        raise ValueError(
            f"{name}={value}: use 1, 2, 4, 8 or a whole number from 16 to 65536"
        )


def _restore_mode(scope: RedPitayaScope, plan: MsgGenerator[Any]) -> MsgGenerator[Any]:
    """Run `plan`; put the scope back in the mode it was in, however it ends."""
    previous = yield from bps.rd(scope.mode)
    result = yield from bpp.finalize_wrapper(
        plan, bps.mv(scope.mode, ScopeMode(previous))
    )
    return result


def generator_sweep(
    asg: RedPitayaAsg,
    start: float,
    stop: float,
    sweep_time: float,
    mode: SweepMode = SweepMode.LINEAR,
    direction: SweepDirection = SweepDirection.NORMAL,
    detectors: Sequence[Readable] = (),
    num: int = 10,
    delay: float = 0.0,
    keep_sweeping: bool = False,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Sweep a generator's frequency and read `detectors` `num` times meanwhile.

    The board sweeps from `start` to `stop` in `sweep_time` seconds, then
    starts again (`NORMAL`) or comes back (`UP_DOWN`); the generator must be
    running (`output` on, `start` triggered) for its output to show it.
    Events hold the generator's swept frequency beside the detectors'
    readings (a scope trace shows the chirp).

    Args:
        asg: The generator (`rp.asg1`).
        start: Start frequency, Hz (the board keeps whole hertz).
        stop: Stop frequency, Hz.
        sweep_time: Seconds from start to stop (1 us to 35 min).
        mode: LINEAR or LOG.
        direction: NORMAL or UP_DOWN.
        detectors: What to read during the sweep (e.g. `rp.scope`).
        num: Readings to take.
        delay: Seconds between readings.
        keep_sweeping: Leave the sweep running after the run.
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if not (1 <= start <= F_MAX and 1 <= stop <= F_MAX):
        raise ValueError(
            f"generator_sweep: start={start:g}, stop={stop:g} Hz; give frequencies "
            f"from 1 Hz to {F_MAX:g} Hz"
        )
    if not 1e-6 <= sweep_time <= SWEEP_TIME_MAX:
        raise ValueError(
            f"generator_sweep: sweep_time={sweep_time:g} s; give 1e-06 to "
            f"{SWEEP_TIME_MAX:.0f} s"
        )
    if num < 1:
        raise ValueError(f"generator_sweep: num={num}; take at least one reading")
    mode, direction = SweepMode(mode), SweepDirection(direction)
    sweep = asg.sweep
    yield from bps.mv(sweep.enabled, False)
    yield from bps.mv(
        sweep.start_frequency, float(round(start)),
        sweep.stop_frequency, float(round(stop)),
        sweep.time, max(int(round(sweep_time * 1e6)), 1),
        sweep.mode, mode,
        sweep.direction, direction,
    )  # fmt: skip
    _md = {
        "plan_name": "generator_sweep",
        "sweep": {
            "start": start,
            "stop": stop,
            "time": sweep_time,
            "mode": mode.value,
            "direction": direction.value,
        },
        "num_points": num,
        **(md or {}),
    }
    readables = [*detectors, asg]

    @bpp.stage_decorator(readables)
    @bpp.run_decorator(md=_md)
    def run() -> MsgGenerator[None]:
        # the sweep's clock starts now: the first reading is at the start
        yield from bps.mv(sweep.enabled, True)
        for index in range(num):
            yield from bps.trigger_and_read(readables)
            if delay and index < num - 1:
                yield from bps.sleep(delay)

    plan = (
        run()
        if keep_sweeping
        else bpp.finalize_wrapper(run(), bps.mv(sweep.enabled, False))
    )
    uid = yield from plan
    return str(uid)


def deep_traces(
    scope: RedPitayaScope,
    num: int = 1,
    samples: int = 262144,
    decimation: int | None = None,
    trigger: TriggerSource = TriggerSource.NOW,
    level: float = 0.0,
    delay: int = 0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Take `num` deep-memory traces of both inputs, `samples` each.

    The traces go to the run's HDF5 file (`rp-scope-deep_ch1`, `..._ch2`,
    one row per trace) with their means; the time axis is in the
    configuration (sample k at `t0 + k * dt`, the trigger at samples / 2 -
    delay). A stock STEMlab reserves 2 MiB for deep memory: up to 524288
    samples per input.

    Args:
        scope: The board's scope (`rp.scope`).
        num: Traces to take.
        samples: Samples per input (a multiple of 8).
        decimation: 1, 2, 4, ... 65536 (default: as it is).
        trigger: What starts each trace.
        level: Trigger level for the input edges, V.
        delay: Trigger delay in samples from the middle of the trace.
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if num < 1:
        raise ValueError(f"deep_traces: num={num}; take at least one trace")
    if samples < 8 or samples % 8:
        raise ValueError(f"deep_traces: samples={samples}; give a multiple of 8")
    if decimation is not None and decimation not in DECIMATIONS:
        raise ValueError(
            f"deep_traces: decimation={decimation}; use a power of two from 1 to 65536"
        )
    if abs(delay) > samples // 2:
        raise ValueError(
            f"deep_traces: delay={delay}; within +-{samples // 2} samples of the middle"
        )
    trigger = TriggerSource(trigger)
    settings: list[Any] = [
        scope.mode, ScopeMode.DEEP,
        scope.deep_samples, samples,
        scope.trigger_source, trigger,
        scope.trigger_level, level,
        scope.trigger_delay, delay,
    ]  # fmt: skip
    if decimation is not None:
        settings += [scope.decimation, decimation]
    _md = {
        "plan_name": "deep_traces",
        "trigger": trigger.value,
        "samples": samples,
        "num_points": num,
        **(md or {}),
    }

    def take() -> MsgGenerator[str]:
        yield from bps.mv(*settings)
        uid: str = yield from bp.count([scope], num, md=_md)
        return uid

    uid: str = yield from _restore_mode(scope, take())
    return uid


def split_traces(
    scope: RedPitayaScope,
    num: int = 1,
    trigger1: TriggerSource = TriggerSource.CH1_PE,
    level1: float = 0.0,
    decimation1: int = 1,
    delay1: int = 0,
    trigger2: TriggerSource = TriggerSource.CH2_PE,
    level2: float = 0.0,
    decimation2: int = 1,
    delay2: int = 0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Take `num` traces with a trigger, decimation and delay per input.

    Each input waits for its own trigger (`ACQ:SPLIT:TRig`), so two signals
    of different time scales are each caught on their own edge. Events hold
    both 16384-sample traces; IN1's time axis is `t0 + k * dt`, IN2's
    `ch2_t0 + k * ch2_dt`, each from its own trigger.

    Args:
        scope: The board's scope (`rp.scope`).
        num: Traces to take.
        trigger1: IN1's trigger.
        level1: IN1's trigger level, V.
        decimation1: IN1's decimation (1, 2, 4, 8, 16 ... 65536).
        delay1: IN1's trigger delay, samples (0 centres the trigger).
        trigger2: IN2's trigger.
        level2: IN2's trigger level, V.
        decimation2: IN2's decimation.
        delay2: IN2's trigger delay, samples.
        md: Metadata for the run's start document.

    Returns:
        The run's uid.
    """
    if num < 1:
        raise ValueError(f"split_traces: num={num}; take at least one trace")
    _factor("split_traces: decimation2", decimation2)
    if decimation1 not in DECIMATIONS:
        raise ValueError(
            f"split_traces: decimation1={decimation1}; IN1 takes the scope's "
            "decimation: a power of two from 1 to 65536"
        )
    for name, value in (("delay1", delay1), ("delay2", delay2)):
        if value < -HALF:
            raise ValueError(f"split_traces: {name}={value}; at least -8192 samples")
    for name, value in (("level1", level1), ("level2", level2)):
        if abs(value) > 20:
            raise ValueError(f"split_traces: {name}={value} V; within +-20 V")
    trigger1, trigger2 = TriggerSource(trigger1), TriggerSource(trigger2)
    settings: list[Any] = [
        scope.mode, ScopeMode.SPLIT,
        scope.trigger_source, trigger1,
        scope.trigger_level, level1,
        scope.decimation, decimation1,
        scope.trigger_delay, delay1,
        scope.ch2_trigger_source, trigger2,
        scope.ch2_trigger_level, level2,
        scope.ch2_decimation, decimation2,
        scope.ch2_trigger_delay, delay2,
    ]  # fmt: skip
    _md = {
        "plan_name": "split_traces",
        "triggers": [trigger1.value, trigger2.value],
        "num_points": num,
        **(md or {}),
    }

    def take() -> MsgGenerator[str]:
        yield from bps.mv(*settings)
        uid: str = yield from bp.count([scope], num, md=_md)
        return uid

    uid: str = yield from _restore_mode(scope, take())
    return uid
