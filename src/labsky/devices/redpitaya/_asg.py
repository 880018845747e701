"""The Red Pitaya's two arbitrary signal generators (OUT1, OUT2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from ophyd_async.core import (
    MovableLogic,
    SignalRW,
    StandardMovable,
    StandardReadable,
    TimeoutCalculator,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.redpitaya._access import BoardAccess
from labsky.transports import InstrumentRefusedError


@dataclass
class ToleranceLogic(MovableLogic[float]):
    """Set the value, then check the board's read-back within a tolerance.

    The board prints floats with 6 significant digits (`%g`), so an exact
    comparison would never finish; a relative and an absolute tolerance say
    how close is reached.
    """

    owner: SettingMovable

    async def check_move(self, new_position: float) -> None:
        """Refuse non-finite and out-of-limits values before sending them."""
        low, high = self.owner.limits
        if not (math.isfinite(new_position) and low <= new_position <= high):
            raise ValueError(
                f"{self.owner.name}: {new_position} is outside {low:g} .. {high:g}"
            )

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:
        """Set, read back, compare."""
        await self.setpoint.set(new_position, timeout=timeout() or 10.0)
        got = await self.readback.get_value(cached=False)
        owner = self.owner
        allowed = max(owner.absolute, owner.relative * abs(new_position))
        if abs(got - new_position) > allowed:
            raise InstrumentRefusedError(
                f"{owner.name}: set {new_position:g}, the board reports {got:g} "
                f"(tolerance {allowed:g})"
            )


class SettingMovable(StandardReadable, StandardMovable[float]):
    """A numeric setting as a movable: `set()` completes when it is read back.

    Args:
        signal: The setting's signal.
        limits: Lowest and highest value.
        relative: Relative tolerance of the read-back.
        absolute: Absolute tolerance of the read-back.
        name: The device name.
    """

    def __init__(
        self,
        signal: SignalRW[float],
        limits: tuple[float, float],
        relative: float = 1e-5,
        absolute: float = 1e-4,
        name: str = "",
    ):
        self.limits = limits
        self.relative = relative
        self.absolute = absolute
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.value = signal
        super().__init__(name=name)

    @cached_property
    def movable_logic(self) -> ToleranceLogic:
        """Set and compare."""
        return ToleranceLogic(setpoint=self.value, readback=self.value, owner=self)


class AsgSweep(StandardReadable):
    """A generator's frequency sweep, run by the board (`SOUR<n>:SWeep:*`).

    While `enabled`, the board retunes the generator continuously (phase
    continuous) from `start_frequency` to `stop_frequency` in `time`
    microseconds, linearly or logarithmically (`mode`), then starts again or
    comes back (`direction` NORMAL or UP_DOWN). The board keeps the
    frequencies as whole hertz. The sweep's clock restarts when a setting
    changes or it is enabled; the board's `sweep_reset`, `sweep_pause` and
    `sweep_resume` act on both generators. Every setting is recorded in the
    configuration of a run that reads the generator.

    Args:
        access: How the board is reached.
        channel: 1 or 2.
        name: The device name.
    """

    def __init__(self, access: BoardAccess, channel: int, name: str = ""):
        prefix = f"asg{channel}"
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.enabled = access.rw(f"{prefix}.sweep")
            self.start_frequency = access.rw(f"{prefix}.sweep_start")
            self.stop_frequency = access.rw(f"{prefix}.sweep_stop")
            self.time = access.rw(f"{prefix}.sweep_time")
            self.mode = access.rw(f"{prefix}.sweep_mode")
            self.direction = access.rw(f"{prefix}.sweep_direction")
        super().__init__(name=name)


class RedPitayaAsg(StandardReadable):
    """One generator: `frequency` and `amplitude` are movables.

    `start` (a command) starts the waveform from its beginning; with
    `output` off the connector stays at 0 V. The board refuses an amplitude
    and offset adding up to more than 1 V. `sweep` is its frequency sweep;
    while it runs, `frequency` reads the swept frequency.

    Args:
        access: How the board is reached.
        channel: 1 or 2.
        name: The device name.
    """

    def __init__(self, access: BoardAccess, channel: int, name: str = ""):
        prefix = f"asg{channel}"
        self.channel = channel
        with self.add_children_as_readables():
            self.frequency = SettingMovable(
                access.rw(f"{prefix}.frequency"), (1e-3, 62.5e6), absolute=1e-3
            )
            self.amplitude = SettingMovable(access.rw(f"{prefix}.amplitude"), (0, 1))
            self.sweep = AsgSweep(access, channel)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.waveform = access.rw(f"{prefix}.waveform")
            self.offset = access.rw(f"{prefix}.offset")
            self.phase = access.rw(f"{prefix}.phase")
            self.duty_cycle = access.rw(f"{prefix}.duty_cycle")
            self.output = access.rw(f"{prefix}.output")
            self.trigger_source = access.rw(f"{prefix}.trigger_source")
            self.burst = access.rw(f"{prefix}.burst")
            self.burst_cycles = access.rw(f"{prefix}.burst_cycles")
            self.burst_count = access.rw(f"{prefix}.burst_count")
            self.burst_period = access.rw(f"{prefix}.burst_period")
        self.start = access.command(f"{prefix}.start")
        super().__init__(name=name)
