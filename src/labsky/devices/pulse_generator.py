"""A simulated pulse generator: the trigger source of hardware-timed fly scans.

It plays the part a PandA or a delay generator plays in the lab: `prepare`
sets a pulse train, `kickoff` starts it on a trigger line of the simulated
table, `complete` ends when the last pulse has. A camera in edge or level
mode on the same line takes one exposure per pulse.

The lines come from the session's `sim_world` fixture (`labsky.sim.table`),
typed here by what the generator needs of them (`TriggerLines`), so device
code never imports the simulation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from ophyd_async.core import AsyncStatus, StandardReadable, soft_signal_rw
from ophyd_async.core import StandardReadableFormat as Format
from pydantic import BaseModel, ConfigDict, Field

from labsky.kinds import DeviceKind


class PulseLine(Protocol):
    """A trigger line pulses are scheduled on."""

    def schedule(self, start: float, period: float, width: float, count: int) -> float:
        """Add `count` pulses every `period` from `start` (monotonic s).

        Returns:
            When the last pulse ends.
        """
        ...

    def clear(self) -> None:
        """Forget pulses not taken yet."""
        ...


class TriggerLines(Protocol):
    """Where the trigger lines are: the `sim_world` fixture."""

    def trigger_line(self, name: str) -> PulseLine:
        """The trigger line `name`."""
        ...


class PulseTrain(BaseModel):
    """What `prepare` sets."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, description="Number of pulses.")
    period: float = Field(gt=0, description="Seconds from one rising edge to the next.")
    width: float = Field(
        default=1e-4, gt=0, description="Pulse width, s (the exposure in level mode)."
    )
    delay: float = Field(
        default=0.01, ge=0, description="Seconds from kickoff to the first edge."
    )


class SimPulseGenerator(StandardReadable):
    """Pulses on a trigger line of the simulated table.

    Args:
        lines: Where the line is: the simulated table.
        line: The trigger line (a camera's `trigger_line`).
        name: The device name.
    """

    def __init__(self, lines: TriggerLines, line: str = "camera", name: str = ""):
        self._line = lines.trigger_line(line)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.count = soft_signal_rw(int, 1)
            self.period = soft_signal_rw(float, 0.1, units="s")
            self.width = soft_signal_rw(float, 1e-4, units="s")
            self.delay = soft_signal_rw(float, 0.01, units="s")
        self._end: float | None = None
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def prepare(self, value: PulseTrain | dict[str, Any]) -> None:
        """Set the pulse train of the next kickoff."""
        train = PulseTrain.model_validate(value)
        await asyncio.gather(
            self.count.set(train.count),
            self.period.set(train.period),
            self.width.set(train.width),
            self.delay.set(train.delay),
        )

    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Start the pulses."""
        count, period, width, delay = await asyncio.gather(
            self.count.get_value(),
            self.period.get_value(),
            self.width.get_value(),
            self.delay.get_value(),
        )
        self._line.clear()
        self._end = self._line.schedule(time.monotonic() + delay, period, width, count)

    def complete(self) -> AsyncStatus:
        """Done once the last pulse has ended."""

        async def wait() -> None:
            if self._end is not None:
                await asyncio.sleep(max(0.0, self._end - time.monotonic()))

        return AsyncStatus(wait())


class PulseGeneratorParams(BaseModel):
    """Parameters of a simulated pulse generator."""

    model_config = ConfigDict(extra="forbid")

    line: str = Field(
        default="camera", description="Trigger line of the simulated table."
    )


def sim_pulse_generator(
    params: PulseGeneratorParams, sim_world: TriggerLines | None
) -> SimPulseGenerator:
    """Build a pulse generator on the profile's simulated table."""
    if sim_world is None:
        raise ValueError(
            "a sim_pulse_generator drives the simulated table: give the profile a "
            "`simulation:` section"
        )
    return SimPulseGenerator(sim_world, params.line)


KINDS = (
    DeviceKind(
        "sim_pulse_generator",
        sim_pulse_generator,
        PulseGeneratorParams,
        summary="Simulated pulse generator: triggers a simulated camera in fly scans.",
    ),
)
