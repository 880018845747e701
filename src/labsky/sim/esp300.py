"""Newport ESP300 three-axis motion controller.

Protocol (ESP300 user manual): RS-232 at 19200 baud, 8N1, RTS/CTS hardware
handshake (the controller ignores a host that does not assert it); commands
end with CR (CR LF accepted) and replies with CR LF. A command is
`{axis}{mnemonic}{parameter}`; several may share a line, separated by `;`.
Queries end in `?` and get one reply line each. Set commands are silent:
errors go to the error buffer, read with `TE?` (code) or `TB?`
(`code, timestamp, MESSAGE`).

| command | meaning |
|---|---|
| `VE?` | firmware version (`ESP300 Version 3.04 07/27/01`) |
| `nPA x` / `nPA?` | move to x / target position |
| `nPR d` | move by d |
| `nTP` or `nTP?` | actual position |
| `nMD?` | motion done: `1` when stopped, `0` while moving |
| `nVA v` / `nVA?`, `nAC a` / `nAC?` | velocity (units/s), acceleration (units/s^2) |
| `nMO` / `nMF` / `nMO?` | motor on / off / state (off at power-up) |
| `nOR` | home (search for the origin) |
| `nST` | stop |
| `nSL x` / `nSL?`, `nSR x` / `nSR?` | left / right software limits |
| `nID?` | stage model |
| `TE?` / `TB?` | oldest error code / with timestamp and message |

Note `MD?`: the manual says 1 means *done*. rust-daq's driver read it the
other way round; labsky's driver and this simulator follow the manual.
"""

from __future__ import annotations

import re
import time
from collections import deque
from typing import ClassVar

from pydantic import Field

from labsky.sim.serial_sim import SerialSimParams, SerialSimulator
from labsky.sim.world import World
from labsky.transports.stream import SerialSettings

VERSION = "ESP300 Version 3.04 07/27/01"

#: Error codes: general ones, and axis ones (reported as axis * 100 + code).
ERRORS = {
    0: "NO ERROR DETECTED",
    6: "COMMAND DOES NOT EXIST",
    7: "PARAMETER OUT OF RANGE",
    9: "AXIS NUMBER OUT OF RANGE",
}
AXIS_ERRORS = {
    13: "MOTOR NOT ENABLED",
    25: "DESTINATION EXCEEDS SOFTWARE LIMITS",
}

_COMMAND = re.compile(r"^\s*([1-9]?)\s*([A-Za-z]{2})\s*(\?|[-+]?[\d.eE+-]*)\s*$")


class Esp300SimParams(SerialSimParams):
    """Settings of a simulated ESP300."""

    axes: int = Field(default=3, ge=1, le=3, description="Axes fitted.")
    stage_model: str = Field(default="ILS50CC", description="What `nID?` reports.")


class _AxisState:
    def __init__(self, travel: float):
        self.motor_on = False
        self.left = -travel
        self.right = travel


class Esp300Sim(SerialSimulator[Esp300SimParams]):
    """An ESP300 whose axes are the world's stage axes 1-3."""

    kind: ClassVar[str] = "esp300"
    Params = Esp300SimParams

    def __init__(self, world: World, name: str, params: Esp300SimParams):
        super().__init__(world, name, params)
        travel = world.params.stage.travel
        self.axes = {n: _AxisState(travel) for n in range(1, params.axes + 1)}
        self.errors: deque[tuple[int, float]] = deque(maxlen=10)
        self.powered_at = time.monotonic()

    def serial_settings(self) -> SerialSettings:
        """19200 8N1 with RTS/CTS."""
        return SerialSettings(baudrate=19200, rtscts=True)

    def error(self, code: int) -> None:
        """Queue an error, as the controller's error buffer does."""
        self.errors.append((code, time.monotonic()))

    def handle(self, line: str) -> None:
        """Run each `;`-separated command of a line."""
        for command in line.split(";"):
            if command.strip():
                self.run(command)

    def run(self, command: str) -> None:
        """Run one command."""
        match = _COMMAND.match(command)
        if match is None:
            self.error(6)
            return
        axis_text, mnemonic, parameter = match.groups()
        mnemonic = mnemonic.upper()
        if not axis_text:
            self._controller(mnemonic, parameter)
            return
        number = int(axis_text)
        if number not in self.axes:
            self.error(9)
            return
        self._axis(number, mnemonic, parameter)

    def _controller(self, mnemonic: str, parameter: str) -> None:
        if mnemonic == "VE":
            self.reply(VERSION)
        elif mnemonic == "TE" and parameter == "?":
            code = self.errors.popleft()[0] if self.errors else 0
            self.reply(str(code))
        elif mnemonic == "TB" and parameter == "?":
            code, at = self.errors.popleft() if self.errors else (0, self.powered_at)
            base = code % 100 if code >= 100 else code
            message = (AXIS_ERRORS if code >= 100 else ERRORS).get(base, "UNKNOWN")
            stamp = int((at - self.powered_at) * 1000)
            self.reply(f"{code}, {stamp}, {message}")
        else:
            self.error(6)

    def _axis(self, number: int, mnemonic: str, parameter: str) -> None:
        state = self.axes[number]
        axis = self.world.stage_axis(number)
        query = parameter == "?"
        value: float | None = None
        if parameter and not query:
            try:
                value = float(parameter)
            except ValueError:
                self.error(7)
                return
        if mnemonic == "TP":
            self.reply(f"{axis.position():.6f}")
        elif mnemonic == "MD" and query:
            self.reply("0" if axis.moving() else "1")
        elif mnemonic in ("PA", "PR"):
            if query:
                self.reply(f"{axis.target():.6f}")
                return
            if value is None:
                self.error(7)
                return
            target = value if mnemonic == "PA" else axis.position() + value
            self._move(number, target)
        elif mnemonic in ("VA", "AC"):
            attribute = "velocity" if mnemonic == "VA" else "acceleration"
            if query:
                self.reply(f"{getattr(axis, attribute):.6f}")
            elif value is None or value <= 0:
                self.error(7)
            else:
                setattr(axis, attribute, value)
        elif mnemonic == "MO":
            if query:
                self.reply("1" if state.motor_on else "0")
            else:
                state.motor_on = True
        elif mnemonic == "MF":
            axis.stop()
            state.motor_on = False
        elif mnemonic == "OR":
            self._move(number, 0.0)
        elif mnemonic == "ST":
            axis.stop()
        elif mnemonic in ("SL", "SR"):
            attribute = "left" if mnemonic == "SL" else "right"
            if query:
                self.reply(f"{getattr(state, attribute):.6f}")
            elif value is None:
                self.error(7)
            else:
                setattr(state, attribute, value)
        elif mnemonic == "ID" and query:
            self.reply(self.params.stage_model)
        else:
            self.error(6)

    def _move(self, number: int, target: float) -> None:
        state = self.axes[number]
        if not state.motor_on:
            self.error(number * 100 + 13)
            return
        if not state.left <= target <= state.right:
            self.error(number * 100 + 25)
            return
        self.world.stage_axis(number).move_to(target)
