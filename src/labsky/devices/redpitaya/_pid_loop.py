"""A software PI loop on a Red Pitaya running the stock SCPI server.

The stock FPGA image has no PID, so the loop runs on the host at tens of
hertz: it reads a slow analog input, and drives a fast output's DC level
(`SOUR<n>:VOLT:OFFS` of a DC waveform) or a slow analog output. The law is
PyRPL's (`red_pitaya_pid_block.v`), so gains carry over:

    e = input - setpoint
    ival <- clamp(ival + 2 pi i dt e, -4 V, 4 V)
    out = clamp(p e + ival, min_voltage, max_voltage)

so stable feedback needs p and i of the sign opposite to the plant's gain.
The loop belongs to whoever owns the board: the session in-process, or
`labsky ioc redpitaya` (then every client sees and tunes the same loop).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from labsky.devices.redpitaya._settings import SETTINGS, PidInput, PidOutput

logger = logging.getLogger(__name__)

IVAL_LIMIT = 4.0

ReadInput = Callable[[PidInput], Awaitable[float]]
WriteOutput = Callable[[PidOutput, float], Awaitable[None]]
Engage = Callable[[PidOutput, float], Awaitable[None]]


def clamp(value: float, low: float, high: float) -> float:
    """`value` limited to [low, high]."""
    return min(max(value, low), high)


class SoftwarePid:
    """The loop's settings, state and task.

    Args:
        read_input: Reads the input (V).
        write_output: Sets the output (V).
        engage: Prepares the output before the loop starts (e.g. a DC
            waveform on a fast output) at the given value.
        label: Name for messages.
    """

    def __init__(
        self,
        read_input: ReadInput,
        write_output: WriteOutput,
        engage: Engage,
        label: str = "pid",
    ):
        self.values: dict[str, Any] = {
            name.removeprefix("pid."): setting.initial
            for name, setting in SETTINGS.items()
            if setting.source == "pid"
        }
        self._read_input = read_input
        self._write_output = write_output
        self._engage = engage
        self.label = label
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failure: BaseException | None = None

    def get(self, key: str) -> Any:
        """A setting or reading (`setpoint`, `ival`, `error`, ...)."""
        if key == "enabled":
            return self.running
        return self.values[key]

    @property
    def running(self) -> bool:
        """Whether the loop runs."""
        return self._task is not None and not self._task.done()

    async def put(self, key: str, value: Any) -> None:
        """Change a setting; `enabled` starts or stops the loop."""
        if key == "enabled":
            await (self.start() if value else self.stop())
            return
        if key == "ival":
            value = clamp(float(value), -IVAL_LIMIT, IVAL_LIMIT)
        elif key == "rate" and not 0 < float(value) <= 1000:
            raise ValueError(f"{self.label}: rate {value} Hz: use 0 < rate <= 1000")
        elif key in ("input", "output"):
            value = (PidInput if key == "input" else PidOutput)(value)
            if self.running:
                raise ValueError(
                    f"{self.label}: disable the loop before changing its {key}"
                )
        self.values[key] = value

    def reset_integrator(self) -> None:
        """Set the integrator to 0."""
        self.values["ival"] = 0.0

    async def start(self) -> None:
        """Prepare the output and start the loop."""
        if self.running:
            return
        v = self.values
        if v["min_voltage"] >= v["max_voltage"]:
            raise ValueError(
                f"{self.label}: min_voltage {v['min_voltage']} is not below "
                f"max_voltage {v['max_voltage']}"
            )
        start = clamp(v["ival"], v["min_voltage"], v["max_voltage"])
        await self._engage(PidOutput(v["output"]), start)
        self.failure = None
        v["iterations"] = 0
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop; the output keeps its last value."""
        task, self._task = self._task, None
        self._stopping = True  # seen at the next tick if the cancel is lost
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        v = self.values
        last = loop.time()
        tick = last
        try:
            while not self._stopping:
                measured = await self._read_input(PidInput(v["input"]))
                now = loop.time()
                dt, last = now - last, now
                error = measured - v["setpoint"]
                ival = v["ival"] + 2 * math.pi * v["i"] * dt * error
                v["ival"] = clamp(ival, -IVAL_LIMIT, IVAL_LIMIT)
                out = clamp(
                    v["p"] * error + v["ival"], v["min_voltage"], v["max_voltage"]
                )
                await self._write_output(PidOutput(v["output"]), out)
                v.update(
                    error=error,
                    input_value=measured,
                    output_value=out,
                    iterations=v["iterations"] + 1,
                )
                tick += 1.0 / v["rate"]
                tick = max(tick, loop.time())  # late: do not try to catch up
                await asyncio.sleep(tick - loop.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, loop stops
            self.failure = exc
            logger.error("%s: loop stopped: %s", self.label, exc)
