"""Newport ESP300 motion controller: one serial port, up to three axes."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from ophyd_async.core import (
    AsyncStatus,
    MovableLogic,
    SignalR,
    SignalRW,
    SoftSignalBackend,
    StandardMovable,
    StandardReadable,
    TimeoutCalculator,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.link_device import LinkConnector, query_retrying
from labsky.transports import (
    InstrumentRefusedError,
    InstrumentTimeoutError,
    LineSettings,
    Link,
    ReplyError,
    SerialLink,
    SerialSettings,
    excerpt,
)

POLL = 0.05  # seconds between motion-done polls
MOVE_MARGIN = 5.0  # seconds added to a move's computed duration


def parse_number(reply: str, what: str) -> float:
    """Parse a numeric reply.

    Raises:
        ReplyError: If `reply` is not a finite number.
    """
    try:
        value = float(reply.strip())
    except ValueError:
        raise ReplyError(f"{what}: expected a number, got {reply!r}") from None
    if not math.isfinite(value):
        raise ReplyError(f"{what}: expected a finite number, got {reply!r}")
    return value


def parse_motion_done(reply: str, what: str) -> bool:
    """Parse `MD?`: `1` when the axis has stopped, `0` while it moves (manual)."""
    reply = reply.strip()
    if reply not in ("0", "1"):
        raise ReplyError(f"{what}: MD? answers 0 or 1, got {reply!r}")
    return reply == "1"


def parse_error(reply: str, who: str = "ESP300") -> tuple[int, str]:
    """Parse `TB?`: `code, timestamp, MESSAGE`.

    Args:
        reply: The reply.
        who: The device, for the message.

    Raises:
        ReplyError: If the reply does not have that shape.
    """
    parts = [p.strip() for p in reply.split(",", 2)]
    if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()):
        raise ReplyError(
            f"{who}: TB? answers 'code, timestamp, message', got {excerpt(reply)}"
        )
    return int(parts[0]), parts[2]


def move_time(distance: float, velocity: float, acceleration: float) -> float:
    """Seconds a trapezoidal move of `distance` takes."""
    distance = abs(distance)
    if velocity <= 0:
        return math.inf
    if acceleration <= 0:
        return distance / velocity
    ramp = velocity / acceleration
    if acceleration * ramp * ramp >= distance:
        return 2 * math.sqrt(distance / acceleration)
    return 2 * ramp + (distance - acceleration * ramp * ramp) / velocity


async def raise_errors(link: Link, who: str) -> None:
    """Read the ESP300's error buffer; raise the first error it holds."""
    code, message = parse_error(await query_retrying(link, "TB?"), who)
    if code:
        raise InstrumentRefusedError(
            f"{who}: the ESP300 reports error {code}: {message}"
        )


@dataclass
class Esp300MoveLogic(MovableLogic[float]):
    """Moves are `nPA x`, then `nMD?` is polled until the axis has stopped."""

    axis: Esp300Axis

    async def check_move(self, new_position: float) -> None:
        """Refuse targets outside the controller's software limits."""
        axis = self.axis
        low, high = await asyncio.gather(
            axis.low_limit_travel.get_value(), axis.high_limit_travel.get_value()
        )
        if not (math.isfinite(new_position) and low <= new_position <= high):
            raise ValueError(
                f"{axis.name}: {new_position} {axis.units} is outside the soft limits "
                f"[{low:g}, {high:g}] {axis.units}; move within them or change "
                f"{axis.name}.low_limit_travel / high_limit_travel"
            )

    async def calculate_timeout(
        self, old_position: float, new_position: float
    ) -> float:
        """The move's duration at the axis's speed and acceleration, plus a margin."""
        velocity, acceleration = await asyncio.gather(
            self.axis.velocity.get_value(), self.axis.acceleration.get_value()
        )
        return (
            move_time(new_position - old_position, velocity, acceleration) + MOVE_MARGIN
        )

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:
        """Send the move and wait until the controller says the axis stopped."""
        axis = self.axis
        await self.setpoint.set(new_position)
        await axis.link.send(f"{axis.number}PA{new_position:.6f}")
        await raise_errors(axis.link, axis.name)
        await axis.wait_stopped(timeout() or 60.0)

    async def stop(self) -> None:
        """Stop the axis."""
        await self.axis.link.send(f"{self.axis.number}ST")


class Esp300Axis(StandardReadable, StandardMovable[float]):
    """One axis of an ESP300 (reads `nTP?`, moves with `nPA`).

    Args:
        link: The controller's link (the controller opens it).
        number: Axis number, 1-3.
        units: Engineering units of the stage (`mm` or `deg`).
        name: The device name.
    """

    def __init__(self, link: Link, number: int, units: str = "mm", name: str = ""):
        self.link = link
        self.number = number
        self.units = units
        n = number
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.user_readback = SignalR(
                SoftSignalBackend(
                    float,
                    units=units,
                    precision=4,
                    getter=lambda: self._query_number(f"{n}TP?"),
                    poll_period=0.1,
                )
            )
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.velocity = self._setting(f"{n}VA", f"{units}/s")
            self.acceleration = self._setting(f"{n}AC", f"{units}/s^2")
            self.low_limit_travel = self._setting(f"{n}SL", units)
            self.high_limit_travel = self._setting(f"{n}SR", units)
            self.deceleration = self._setting(f"{n}AG", f"{units}/s^2")
            self.stage_id, self._set_stage_id = soft_signal_r_and_setter(str)
        self.user_setpoint = soft_signal_rw(float, units=units, precision=4)
        super().__init__(name=name)

    async def wait_stopped(self, timeout: float) -> None:
        """Poll `nMD?` until the axis has stopped, then check the error buffer.

        Raises:
            InstrumentTimeoutError: If it still moves after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            reply = await self.link.query(f"{self.number}MD?")
            if parse_motion_done(reply, f"{self.name}: {self.number}MD?"):
                break
            if time.monotonic() > deadline:
                raise InstrumentTimeoutError(
                    f"{self.name}: still moving after {timeout:g} s; check the "
                    "stage for a collision or a limit switch"
                )
            await asyncio.sleep(POLL)
        await raise_errors(self.link, self.name)

    @AsyncStatus.wrap
    async def home(self, mode: int | None = None, timeout: float = 120.0) -> None:
        """Search for home (`nOR`) and wait until the axis has stopped there.

        Args:
            mode: Home search mode 0-6 (manual, `OR`); None uses the
                controller's own (`OM`, home and index signals by default).
            timeout: Seconds the search may take.
        """
        if mode is not None and mode not in range(7):
            raise ValueError(f"{self.name}: home search mode {mode}: use 0 to 6")
        await self.link.send(f"{self.number}OR{'' if mode is None else mode}")
        await raise_errors(self.link, self.name)
        await self.wait_stopped(timeout)

    @AsyncStatus.wrap
    async def define_home(self, position: float = 0.0) -> None:
        """Call where the axis stands `position` from now on (`nDH`); nothing moves."""
        if not math.isfinite(position):
            raise ValueError(f"{self.name}: cannot define home as {position}")
        await self.link.send(f"{self.number}DH{position:.6f}")
        await raise_errors(self.link, self.name)

    def _setting(self, mnemonic: str, units: str) -> SignalRW[float]:
        async def write(value: float | None) -> None:
            await self.link.send(f"{mnemonic}{float(value or 0):.6f}")
            await raise_errors(self.link, self.name)

        return soft_signal_rw(
            float,
            units=units,
            getter=lambda: self._query_number(f"{mnemonic}?"),
            setter=write,
        )

    async def _query_number(self, command: str) -> float:
        reply = await query_retrying(self.link, command)
        return parse_number(reply, f"{self.name}: {command}")

    @cached_property
    def movable_logic(self) -> Esp300MoveLogic:
        """How the axis moves."""
        return Esp300MoveLogic(
            setpoint=self.user_setpoint, readback=self.user_readback, axis=self
        )


class Esp300(StandardReadable):
    """A Newport ESP300 controller; its axes are children named as declared.

    Reading the controller reads every axis (as in a baseline).

    At connect it checks the firmware answers as an ESP300 and turns the
    declared axes' motors on (they are off at power-up).

    Args:
        port: Serial port (19200 baud, 8N1, RTS/CTS).
        axes: Child name -> axis number, e.g. `{"x": 1, "y": 2}`.
        units: Units of the stages.
        timeout: Seconds to wait for a reply.
        name: The device name.
    """

    def __init__(
        self,
        port: str,
        axes: Mapping[str, int],
        units: str = "mm",
        timeout: float = 1.0,
        name: str = "",
    ):
        self.link = SerialLink(
            port,
            SerialSettings(baudrate=19200, rtscts=True),
            LineSettings(
                write_termination="\r\n", read_termination="\r\n", timeout=timeout
            ),
        )
        self.axes: dict[str, Esp300Axis] = {}
        with self.add_children_as_readables():
            for child, number in axes.items():
                axis = Esp300Axis(self.link, number, units)
                setattr(self, child, axis)
                self.axes[child] = axis
        super().__init__(name=name, connector=LinkConnector(self.link, self._handshake))

    async def _handshake(self) -> None:
        self.link.label = self.name
        version = await query_retrying(self.link, "VE?")
        if "ESP300" not in version:
            raise ReplyError(
                f"{self.name}: {self.link.address} answered VE? with {version!r}, "
                "not an ESP300; check the port"
            )
        for _ in range(20):  # empty the error buffer left by earlier sessions
            if (await self.link.query("TE?")).strip() == "0":
                break
        for axis in self.axes.values():
            await self.link.send(f"{axis.number}MO")
            reply = await query_retrying(self.link, f"{axis.number}ID?")
            axis._set_stage_id(reply.strip())  # stage model, serial number
        await raise_errors(self.link, self.name)

    async def disconnect(self) -> None:
        """Close the port."""
        await self.link.close()
