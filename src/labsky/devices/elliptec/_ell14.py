"""Thorlabs ELL14 rotation mount as an ophyd-async movable."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from ophyd_async.core import (
    AsyncStatus,
    MovableLogic,
    SignalR,
    SoftSignalBackend,
    StandardMovable,
    StandardReadable,
    TimeoutCalculator,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.elliptec._bus import (
    ADDRESSES,
    ElliptecBus,
    decode_pulses,
    encode_pulses,
    parse_info,
)
from labsky.devices.link_device import LinkConnector
from labsky.transports import ReplyError

#: Top speed of an ELL14 (deg/s) and the margin added to a move's timeout (s).
FULL_SPEED = 430.0
MOVE_MARGIN = 2.0


@dataclass
class Ell14MoveLogic(MovableLogic[float]):
    """Moves go out as `ma` and end when the mount answers `PO`."""

    mount: Ell14

    async def check_move(self, new_position: float) -> None:
        """Refuse positions that are not finite numbers."""
        if not math.isfinite(new_position):
            raise ValueError(f"{self.mount.name}: cannot move to {new_position}")

    async def calculate_timeout(
        self, old_position: float, new_position: float
    ) -> float:
        """The time the move needs at the set velocity, plus a margin."""
        velocity = max(1, await self.mount.velocity.get_value())
        distance = abs((new_position - old_position + 180) % 360 - 180)
        return distance / (FULL_SPEED * velocity / 100) + MOVE_MARGIN

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:
        """Move (shortest way round) and wait for the mount to answer."""
        await self.setpoint.set(new_position)
        await self.mount.rotate("ma", new_position, timeout() or 60.0)

    async def stop(self) -> None:
        """Ask the mount to stop."""
        await self.mount.bus.stop(self.mount.address)


class Ell14(StandardReadable, StandardMovable[float]):
    """An ELL14 rotation mount on an Elliptec bus (positions in degrees, 0-360).

    `read()` asks the mount where it is (`gp`); `set()` sends an absolute move
    and completes when the mount reports it has arrived, with the mount's
    own position as the readback. While it moves, the last known position
    is reported without asking (the bus carries the move's answer).

    Args:
        bus: The bus the mount is on.
        address: Its address on the bus, one hex digit.
        name: The device name.
    """

    def __init__(self, bus: ElliptecBus, address: str, name: str = ""):
        address = address.upper()
        if len(address) != 1 or address not in ADDRESSES:
            raise ValueError(f"ELL14 address {address!r}: use one hex digit, 0-F")
        self.bus = bus
        self.address = address
        self._pulses_per_degree = 143360 / 360
        self._last = 0.0
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.position = SignalR(
                SoftSignalBackend(
                    float,
                    units="deg",
                    precision=3,
                    getter=self._read_position,
                    poll_period=0.1,
                )
            )
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.velocity = soft_signal_rw(
                int, units="%", getter=self._read_velocity, setter=self._write_velocity
            )
            self.jog_step = soft_signal_rw(
                float,
                units="deg",
                precision=3,
                getter=lambda: self._read_angle("gj", "GJ"),
                setter=lambda deg: self._write_angle("sj", deg),
            )
            self.home_offset = soft_signal_rw(
                float,
                units="deg",
                precision=3,
                getter=lambda: self._read_angle("go", "HO"),
                setter=lambda deg: self._write_angle("so", deg),
            )
            self.serial_number, self._set_serial = soft_signal_r_and_setter(str)
            self.firmware, self._set_firmware = soft_signal_r_and_setter(str)
        self.setpoint = soft_signal_rw(float, units="deg", precision=3)
        super().__init__(name=name, connector=LinkConnector(bus, self._handshake))

    @cached_property
    def movable_logic(self) -> Ell14MoveLogic:
        """How the mount moves."""
        return Ell14MoveLogic(
            setpoint=self.setpoint, readback=self.position, mount=self
        )

    async def _handshake(self) -> None:
        payload = await self.bus.query(self.name, self.address, "in", "IN")
        try:
            info = parse_info(payload)
        except ReplyError as exc:
            raise ReplyError(f"{self.name}: {exc}") from None
        if info.model != "0E":
            raise ReplyError(
                f"{self.name}: the device at address {self.address} on {self.bus.port} "
                f"is Elliptec type {info.model}, not an ELL14 (0E); check the address"
            )
        self._pulses_per_degree = info.pulses_per_unit
        self._set_serial(info.serial)
        self._set_firmware(info.firmware)

    def _degrees(self, pulses: int) -> float:
        return round((pulses / self._pulses_per_degree) % 360, 4)

    async def _read_position(self) -> float:
        if self.address not in self.bus.moving:
            payload = await self.bus.query(self.name, self.address, "gp", "PO")
            try:
                self._last = self._degrees(decode_pulses(payload))
            except ReplyError as exc:
                raise ReplyError(f"{self.name}: {exc}") from None
        return self._last

    async def _read_angle(self, command: str, code: str) -> float:
        """A setting kept in pulses (`gj`, `go`), in degrees."""
        payload = await self.bus.query(self.name, self.address, command, code)
        try:
            return round(decode_pulses(payload) / self._pulses_per_degree, 4)
        except ReplyError as exc:
            raise ReplyError(f"{self.name}: {exc}") from None

    async def _write_angle(self, command: str, degrees: float | None) -> None:
        """Set a setting kept in pulses (`sj` jog step, `so` home offset)."""
        degrees = float(degrees or 0.0)
        if not math.isfinite(degrees) or not 0 <= degrees < 360:
            raise ValueError(
                f"{self.name}: {degrees} deg is not within 0-360 deg (the mount "
                "turns once per 360)"
            )
        pulses = int(round(degrees * self._pulses_per_degree))
        await self.bus.transaction(
            self.name, self.address, command, encode_pulses(pulses), ("GS",)
        )

    async def _read_velocity(self) -> int:
        payload = await self.bus.query(self.name, self.address, "gv", "GV")
        try:
            return int(payload, 16)
        except ValueError:
            raise ReplyError(f"{self.name}: velocity {payload!r} is not hex") from None

    async def _write_velocity(self, percent: int | None) -> None:
        percent = int(percent or 0)
        if not 1 <= percent <= 100:
            raise ValueError(f"{self.name}: velocity {percent}% is not within 1-100%")
        await self.bus.transaction(
            self.name, self.address, "sv", f"{percent:02X}", ("GS",)
        )

    async def rotate(self, command: str, degrees: float, timeout: float) -> float:
        """Run `ma` (to `degrees`) or `mr` (by `degrees`); return where it stopped."""
        pulses = int(round(degrees * self._pulses_per_degree))
        if command == "ma":
            pulses %= int(round(360 * self._pulses_per_degree))
        stopped = await self.bus.move(
            self.name, self.address, command, encode_pulses(pulses), timeout
        )
        self._last = self._degrees(stopped)
        return self._last

    @AsyncStatus.wrap
    async def home(self) -> None:
        """Find the mount's home (zero) position, turning clockwise."""
        stopped = await self.bus.move(self.name, self.address, "ho", "0", 10.0)
        self._last = self._degrees(stopped)

    @AsyncStatus.wrap
    async def jog(self, forward: bool = True) -> None:
        """Turn by the mount's jog step (5 deg unless reconfigured)."""
        stopped = await self.bus.move(
            self.name, self.address, "fw" if forward else "bw", "", 10.0
        )
        self._last = self._degrees(stopped)

    @AsyncStatus.wrap
    async def move_relative(self, degrees: float) -> None:
        """Turn by `degrees` (negative: the other way) with one `mr` command."""
        speed = FULL_SPEED * max(1, await self.velocity.get_value()) / 100
        await self.rotate("mr", degrees, abs(degrees) / speed + MOVE_MARGIN)

    async def disconnect(self) -> None:
        """Close the bus (other mounts on it reopen it when they connect)."""
        await self.bus.disconnect()
