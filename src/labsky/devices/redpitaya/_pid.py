"""The software PID of a Red Pitaya as an ophyd-async device."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import cached_property

from ophyd_async.core import (
    MovableLogic,
    SignalR,
    SignalRW,
    StandardMovable,
    StandardReadable,
    TimeoutCalculator,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.redpitaya._access import BoardAccess
from labsky.transports import InstrumentTimeoutError


@dataclass
class SetpointLogic(MovableLogic[float]):
    """Set the setpoint; with the loop running, wait until the input follows."""

    owner: PidSetpoint

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:
        """Set, then wait for |input - setpoint| < tolerance (loop enabled)."""
        owner = self.owner
        await self.setpoint.set(new_position)
        if not await owner._enabled[0].get_value():
            return
        deadline = time.monotonic() + (timeout() or owner.settle_timeout)
        while True:
            value = await self.readback.get_value(cached=False)
            if abs(value - new_position) < owner.tolerance:
                return
            if time.monotonic() > deadline:
                raise InstrumentTimeoutError(
                    f"{owner.name}: the input reads {value:.4g} V, not within "
                    f"{owner.tolerance:g} V of the setpoint {new_position:g} V "
                    f"after {owner.settle_timeout:g} s; is the loop locked?"
                )
            await asyncio.sleep(0.05)


class PidSetpoint(StandardReadable, StandardMovable[float]):
    """The PID's setpoint; its position is the input the loop controls.

    Args:
        target: The setpoint signal.
        measured: The input reading.
        enabled: Whether the loop runs.
        tolerance: How close the input must come, V.
        settle_timeout: Seconds to wait for it.
        name: The device name.
    """

    def __init__(
        self,
        target: SignalRW[float],
        measured: SignalR[float],
        enabled: SignalR[bool],
        tolerance: float,
        settle_timeout: float,
        name: str = "",
    ):
        self.tolerance = tolerance
        self.settle_timeout = settle_timeout
        self._enabled = (enabled,)  # the PID's signal: not a child here
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.target = target
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.measured = measured
        super().__init__(name=name)

    @cached_property
    def movable_logic(self) -> SetpointLogic:
        """Set and wait for the lock to follow."""
        return SetpointLogic(setpoint=self.target, readback=self.measured, owner=self)


class RedPitayaPid(StandardReadable):
    """A PI loop from a slow input to an output (PyRPL's law and gain units).

    `setpoint` is a movable whose position is the measured input; `p`
    (V/V) and `i` (Hz) need the sign opposite to the plant's gain; `ival`
    is the integrator (write 0, or run `reset_integrator`); `enabled` starts
    and stops the loop. Readings: `error`, `ival` and `output_value`.

    Args:
        access: How the board is reached.
        tolerance: How close the input must come to a new setpoint, V.
        settle_timeout: Seconds a setpoint move may take.
        name: The device name.
    """

    def __init__(
        self,
        access: BoardAccess,
        tolerance: float = 0.02,
        settle_timeout: float = 10.0,
        name: str = "",
    ):
        self.enabled = access.rw("pid.enabled")
        with self.add_children_as_readables():
            self.setpoint = PidSetpoint(
                access.rw("pid.setpoint"),
                access.r("pid.input_value"),
                self.enabled,
                tolerance,
                settle_timeout,
            )
        with self.add_children_as_readables(Format.UNCACHED_SIGNAL):
            self.error = access.r("pid.error")
            self.ival = access.rw("pid.ival")
            self.output_value = access.r("pid.output_value")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.p = access.rw("pid.p")
            self.i = access.rw("pid.i")
            self.input = access.rw("pid.input")
            self.output = access.rw("pid.output")
            self.min_voltage = access.rw("pid.min_voltage")
            self.max_voltage = access.rw("pid.max_voltage")
            self.rate = access.rw("pid.rate")
        self.iterations = access.r("pid.iterations")
        self.reset_integrator = access.command("pid.reset_integrator")
        super().__init__(name=name)
