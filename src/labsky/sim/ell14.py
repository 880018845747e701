r"""Thorlabs Elliptec ELL14 rotation mounts on one RS-485 bus.

Protocol (Thorlabs ELLx manual; rust-daq's driver notes): 9600 baud 8N1, no
flow control. Commands are `{address}{command}{data}` with no terminator,
`address` one hex digit; every reply is `{ADDRESS}{COMMAND}{data}\r\n`.
Position data are 8 hex digits (two's complement) in encoder pulses, 143360
per revolution (398.2 per degree).

| command | data | reply |
|---|---|---|
| `in` | | `IN` + type, serial, year, firmware, hardware, travel, pulses/rev |
| `gp` | | `PO` + position |
| `ma` / `mr` | 8 hex | `PO` + position, when the move has finished |
| `ho` | `0` (cw) / `1` (ccw) | `PO00000000` when homed |
| `fw` / `bw` | | `PO` after a jog of the jog step |
| `gj` / `sj` | / 8 hex | `GJ` + step / `GS00` |
| `gs` | | `GS` + status (`00` ok, `09` busy, ...) |
| `gv` / `sv` | / 2 hex | `GV` + percent / `GS00` |
| `st` | | ends a move: its `PO` comes at once |

A move takes the time the mount needs at 430 deg/s (scaled by the velocity
percentage) plus settling. The bus power supply feeds two motors at most: a
third simultaneous move is refused with status `0D` (over current).
Incomplete commands are dropped after 50 ms of silence, as the mount does.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import Field

from labsky.sim.motion import Axis
from labsky.sim.serial_sim import SerialSimParams, SerialSimulator
from labsky.sim.world import World

PULSES_PER_REV = 143360
PULSES_PER_DEG = PULSES_PER_REV / 360
FULL_SPEED = 430.0  # deg/s
SETTLE = 0.03  # s
MAX_MOVING = 2

#: Data characters that follow each command.
DATA_LENGTH = {"ma": 8, "mr": 8, "ho": 1, "sv": 2, "sj": 8, "so": 8}
#: Status codes (GS).
OK, BUSY, COMMAND_ERROR, OVER_CURRENT = 0x00, 0x09, 0x03, 0x0D


class Ell14SimParams(SerialSimParams):
    """Settings of a simulated ELL14 bus."""

    addresses: list[str] = Field(
        default_factory=lambda: ["2"],
        description="Hex addresses (0-F) of the mounts on the bus.",
    )
    serial_base: int = Field(
        default=11400500, description="Serial number of the first mount."
    )


def to_hex(pulses: int) -> str:
    """Encode pulses as 8 upper-case hex digits, two's complement."""
    return f"{pulses & 0xFFFFFFFF:08X}"


def from_hex(text: str) -> int:
    """Decode 8 hex digits, two's complement."""
    value = int(text, 16)
    return value - (1 << 32) if value & 0x80000000 else value


class _Mount:
    def __init__(self, address: str, axis: Axis, serial: int):
        self.address = address
        self.axis = axis
        self.serial = serial
        self.velocity = 100  # percent
        self.jog_step = int(round(5 * PULSES_PER_DEG))
        self.pending: asyncio.TimerHandle | None = None


class Ell14Sim(SerialSimulator[Ell14SimParams]):
    """ELL14 mounts on one bus, sharing the world's rotator axes."""

    kind: ClassVar[str] = "ell14"
    Params = Ell14SimParams

    def __init__(self, world: World, name: str, params: Ell14SimParams):
        super().__init__(world, name, params)
        self.mounts = {
            a.upper(): _Mount(a.upper(), world.rotator(a), params.serial_base + i)
            for i, a in enumerate(params.addresses)
        }
        self._idle: asyncio.TimerHandle | None = None

    def received(self, data: bytes) -> None:
        """Parse fixed-length commands out of the byte stream."""
        self._pending += data
        while self._pending:
            address = chr(self._pending[0]).upper()
            if address not in "0123456789ABCDEF":
                self._pending = self._pending[1:]  # line noise
                continue
            if len(self._pending) < 3:
                break
            command = self._pending[1:3].decode("ascii", "replace").lower()
            size = 3 + DATA_LENGTH.get(command, 0)
            if len(self._pending) < size:
                break
            data_text = self._pending[3:size].decode("ascii", "replace")
            self._pending = self._pending[size:]
            mount = self.mounts.get(address)
            if mount is not None:  # other addresses: not ours, stay silent
                self.command(mount, command, data_text)
        if self._pending and self.loop is not None:  # drop half commands
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self.loop.call_later(0.05, self._drop_partial)

    def _drop_partial(self) -> None:
        self._pending = b""

    def _send(
        self, mount: _Mount, code: str, data: str = "", delay: float = 0.0
    ) -> None:
        self.reply(f"{mount.address}{code}{data}", delay)

    def _status(self, mount: _Mount, status: int) -> None:
        self._send(mount, "GS", f"{status:02X}")

    def command(self, mount: _Mount, command: str, data: str) -> None:
        """Act on one command addressed to `mount`."""
        axis = mount.axis
        if command == "in":
            # type 0E (ELL14), serial, year, firmware 17, hardware 01, travel
            # 0x168 = 360 deg, pulses per revolution
            info = f"0E{mount.serial:08d}202317010168{PULSES_PER_REV:08X}"
            self._send(mount, "IN", info)
        elif command == "gp":
            self._send(mount, "PO", to_hex(self._pulses(axis.position())))
        elif command == "gs":
            self._status(mount, BUSY if axis.moving() else OK)
        elif command == "gv":
            self._send(mount, "GV", f"{mount.velocity:02X}")
        elif command == "sv":
            mount.velocity = max(1, min(100, self._hex(data, mount) or 0))
            self._status(mount, OK)
        elif command == "gj":
            self._send(mount, "GJ", to_hex(mount.jog_step))
        elif command == "sj":
            mount.jog_step = self._signed(data, mount) or 0
            self._status(mount, OK)
        elif command in ("ma", "mr", "ho", "fw", "bw"):
            self._move(mount, command, data)
        elif command == "st":
            if mount.pending is not None:
                mount.pending.cancel()
                mount.pending = None
                axis.stop()
                self._send(mount, "PO", to_hex(self._pulses(axis.position())))
            else:
                self._status(mount, OK)
        else:
            self._status(mount, COMMAND_ERROR)

    def _hex(self, text: str, mount: _Mount) -> int | None:
        try:
            return int(text, 16)
        except ValueError:
            self._status(mount, COMMAND_ERROR)
            return None

    def _signed(self, text: str, mount: _Mount) -> int | None:
        try:
            return from_hex(text)
        except ValueError:
            self._status(mount, COMMAND_ERROR)
            return None

    @staticmethod
    def _pulses(degrees: float) -> int:
        return int(round(degrees * PULSES_PER_DEG)) % PULSES_PER_REV

    def _move(self, mount: _Mount, command: str, data: str) -> None:
        axis = mount.axis
        moving = sum(m.axis.moving() for m in self.mounts.values() if m is not mount)
        if axis.moving():
            self._status(mount, BUSY)
            return
        if moving >= MAX_MOVING:
            self._status(mount, OVER_CURRENT)
            return
        here = axis.position()
        if command == "ma":
            pulses = self._signed(data, mount)
            if pulses is None:
                return
            target = (pulses % PULSES_PER_REV) / PULSES_PER_DEG
            target = here + ((target - here + 180) % 360 - 180)  # shortest way
        elif command == "mr":
            pulses = self._signed(data, mount)
            if pulses is None:
                return
            target = here + pulses / PULSES_PER_DEG
        elif command == "ho":
            target = here - (here % 360) if data == "0" else here + (-here % 360)
        else:
            step = mount.jog_step / PULSES_PER_DEG
            target = here + (step if command == "fw" else -step)
        axis.velocity = FULL_SPEED * mount.velocity / 100
        duration = axis.move_to(target) + SETTLE
        assert self.loop is not None
        mount.pending = self.loop.call_later(duration, self._arrived, mount)

    def _arrived(self, mount: _Mount) -> None:
        mount.pending = None
        position = mount.axis.position() % 360
        mount.axis.set_position(position)
        self._send(mount, "PO", to_hex(self._pulses(position)))
