r"""Thorlabs Elliptec ELL14 rotation mounts on one RS-485 bus.

Protocol (Thorlabs ELLx modules protocol manual; rust-daq's driver notes):
9600 baud 8N1, no flow control. Commands are `{address}{command}{data}`
with no terminator (a CR LF after them is ignored as line noise), `address`
one hex digit, commands lower case; every reply is
`{ADDRESS}{COMMAND}{data}\r\n` in upper case. Positions are 8 hex digits
(two's complement) in encoder pulses, 143360 per revolution (398.2 per
degree).

| command | data | reply |
|---|---|---|
| `in` | | `IN` + type, serial, year, firmware, hardware, travel, pulses/rev |
| `gs` | | `GS` + status (`00` ok, `09` busy, ...; an error is repeated once) |
| `gp` | | `PO` + position |
| `ma` / `mr` | 8 hex | `PO` + position, when the move has finished |
| `ho` | `0` (cw) / `1` (ccw) | `PO` when homed (at the home offset) |
| `fw` / `bw` | | `PO` after a jog of the jog step (step 0: turn until `st`) |
| `gj` / `sj` | / 8 hex | `GJ` + step / `GS00` |
| `go` / `so` | / 8 hex | `HO` + home offset / `GS00` |
| `gv` / `sv` | / 2 hex | `GV` + percent / `GS00` |
| `i1` / `i2` | | `I1`/`I2` + loop, motor, current, ramp up, ramp down, periods |
| `f1` `b1` `f2` `b2` | 4 hex | forward / backward period of a motor: `GS00` |
| `s1` / `s2` | | search a motor's resonant frequency (busy), `GS00` |
| `sk` / `se` | | skip / run the frequency search at power-up: `GS00` |
| `om` / `cm` | | optimise motors / clean mechanics (busy), `GS00`; `st` stops |
| `us` | | save user data: `GS00` |
| `ca` | 1 hex | change address: `GS00` from the new address |
| `ga` | 1 hex | listen to a group address until the next move ends |
| `is` | 2 hex | isolate for n minutes (`00` ends it): `GS00`; meanwhile `GS05` |
| `st` | | ends a move (its `PO` comes at once) or a long operation |

Commands a mount does not know get `GS03`; values out of range `GS04`.
A move takes the time the mount needs at 430 deg/s (scaled by the velocity
percentage) plus settling. The bus power supply feeds two motors at most: a
third simultaneous move is refused with status `0D` (over current).
Incomplete commands are dropped after 50 ms of silence, as the mount does
(a `ho` without its direction is then run clockwise).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
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
CLOCK = 14_740_000  # Hz: motor frequency = CLOCK / period
PERIOD_RANGE = (CLOCK // 120_000, CLOCK // 70_000)  # 70-120 kHz

#: Data characters that follow each command (`ho` may also come without).
DATA_LENGTH = {
    "ma": 8,
    "mr": 8,
    "ho": 1,
    "sv": 2,
    "sj": 8,
    "so": 8,
    "ca": 1,
    "ga": 1,
    "is": 2,
    "f1": 4,
    "b1": 4,
    "f2": 4,
    "b2": 4,
}
OPTIONAL_DATA = {"ho"}
#: Status codes (GS).
OK, COMMAND_ERROR, OUT_OF_RANGE_VALUE, ISOLATED, OUT_OF_ISOLATION, BUSY = (
    0x00,
    0x03,
    0x04,
    0x05,
    0x06,
    0x09,
)
OVER_CURRENT = 0x0D
HEX = "0123456789ABCDEF"


class Ell14SimParams(SerialSimParams):
    """Settings of a simulated ELL14 bus."""

    addresses: list[str] = Field(
        default_factory=lambda: ["2"],
        description="Hex addresses (0-F) of the mounts on the bus.",
    )
    serial_base: int = Field(
        default=11400500, description="Serial number of the first mount."
    )
    search_time: float = Field(
        default=0.3, ge=0, description="Seconds a frequency search (s1, s2) takes."
    )
    optimize_time: float = Field(
        default=1.0,
        ge=0,
        description="Seconds motor optimisation or cleaning (om, cm) takes.",
    )


def to_hex(pulses: int) -> str:
    """Encode pulses as 8 upper-case hex digits, two's complement."""
    return f"{pulses & 0xFFFFFFFF:08X}"


def from_hex(text: str) -> int:
    """Decode 8 hex digits, two's complement."""
    value = int(text, 16)
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass
class _Motor:
    """One of the mount's two piezo motors."""

    forward: int = 171  # periods, CLOCK ticks (86.2 kHz)
    backward: int = 164  # (89.9 kHz)
    current: int = 1680  # 1866 per ampere
    ramp_up: int = 0x0FFF
    ramp_down: int = 0x0FFF
    loop: bool = True
    on: bool = True


@dataclass
class _Mount:
    address: str
    axis: Axis
    serial: int
    velocity: int = 100  # percent
    jog_step: int = int(round(5 * PULSES_PER_DEG))
    home_offset: int = 0  # pulses
    group: str | None = None
    motors: list[_Motor] = field(default_factory=lambda: [_Motor(), _Motor()])
    pending: asyncio.TimerHandle | None = None  # a move or long operation
    busy_with: str = ""  # "move", "s1", "om", ...
    last_error: int = OK
    isolated_until: float = 0.0
    saved: dict[str, object] = field(default_factory=dict)

    def answers_to(self, address: str) -> bool:
        return address in (self.address, self.group)


class Ell14Sim(SerialSimulator[Ell14SimParams]):
    """ELL14 mounts on one bus, sharing the world's rotator axes."""

    kind: ClassVar[str] = "ell14"
    Params = Ell14SimParams

    def __init__(self, world: World, name: str, params: Ell14SimParams):
        super().__init__(world, name, params)
        self.mounts = [
            _Mount(a.upper(), world.rotator(a), params.serial_base + i)
            for i, a in enumerate(params.addresses)
        ]
        self._idle: asyncio.TimerHandle | None = None

    # -- framing -------------------------------------------------------------

    def received(self, data: bytes) -> None:
        """Parse commands out of the byte stream (no terminator)."""
        self._pending += data
        self._parse(final=False)
        if self._pending and self.loop is not None:  # finish or drop half commands
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self.loop.call_later(0.05, self._silence)

    def _silence(self) -> None:
        self._parse(final=True)
        self._pending = b""

    def _parse(self, final: bool) -> None:
        while self._pending:
            address = chr(self._pending[0]).upper()
            if address not in HEX:
                self._pending = self._pending[1:]  # line noise, CR, LF
                continue
            if len(self._pending) < 3:
                return
            command = self._pending[1:3].decode("ascii", "replace").lower()
            size = 3 + DATA_LENGTH.get(command, 0)
            if command in OPTIONAL_DATA:
                if len(self._pending) < size:
                    if not final:
                        return  # the direction may still come
                    size = 3
                elif chr(self._pending[3]) not in "01":
                    size = 3
            elif len(self._pending) < size:
                return
            data_text = self._pending[3:size].decode("ascii", "replace")
            self._pending = self._pending[size:]
            self.dispatch(address, command, data_text)

    def dispatch(self, address: str, command: str, data: str) -> None:
        """Hand a command to every mount listening to `address`."""
        for mount in [m for m in self.mounts if m.answers_to(address)]:
            self.command(mount, command, data)

    def _send(
        self, mount: _Mount, code: str, data: str = "", delay: float = 0.0
    ) -> None:
        self.reply(f"{mount.address}{code}{data}", delay)

    def _status(self, mount: _Mount, status: int, address: str | None = None) -> None:
        if status not in (OK, BUSY):
            mount.last_error = status
        self.reply(f"{address or mount.address}GS{status:02X}")

    # -- commands ----------------------------------------------------------------

    def command(self, mount: _Mount, command: str, data: str) -> None:
        """Act on one command addressed to `mount`."""
        now = time.monotonic()
        if mount.isolated_until > now and command != "is":
            if command == "gs":
                self._status(mount, ISOLATED)
            return  # an isolated module ignores the bus
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            self._status(mount, COMMAND_ERROR)
            return
        handler(mount, data)

    def _cmd_in(self, mount: _Mount, data: str) -> None:
        # type 0E (ELL14), serial, year, firmware 17, hardware 01 (metric),
        # travel 0x168 = 360 deg, pulses per revolution
        info = f"0E{mount.serial:08d}202317010168{PULSES_PER_REV:08X}"
        self._send(mount, "IN", info)

    def _cmd_gs(self, mount: _Mount, data: str) -> None:
        status, mount.last_error = mount.last_error, OK  # an error is told twice
        if status == OK and (mount.busy_with or mount.axis.moving()):
            status = BUSY
        self.reply(f"{mount.address}GS{status:02X}")

    def _cmd_gp(self, mount: _Mount, data: str) -> None:
        self._send(mount, "PO", to_hex(self._position(mount)))

    def _cmd_gv(self, mount: _Mount, data: str) -> None:
        self._send(mount, "GV", f"{mount.velocity:02X}")

    def _cmd_sv(self, mount: _Mount, data: str) -> None:
        value = self._hex(data, mount)
        if value is not None:
            mount.velocity = max(1, min(100, value))
            self._status(mount, OK)

    def _cmd_gj(self, mount: _Mount, data: str) -> None:
        self._send(mount, "GJ", to_hex(mount.jog_step))

    def _cmd_sj(self, mount: _Mount, data: str) -> None:
        value = self._signed(data, mount)
        if value is not None:
            mount.jog_step = abs(value)
            self._status(mount, OK)

    def _cmd_go(self, mount: _Mount, data: str) -> None:
        self._send(mount, "HO", to_hex(mount.home_offset))

    def _cmd_so(self, mount: _Mount, data: str) -> None:
        value = self._signed(data, mount)
        if value is None:
            return
        if not 0 <= value < PULSES_PER_REV:
            self._status(mount, OUT_OF_RANGE_VALUE)
            return
        mount.home_offset = value
        self._status(mount, OK)

    def _motor(self, mount: _Mount, number: str) -> _Motor | None:
        index = int(number) - 1
        return mount.motors[index] if 0 <= index < len(mount.motors) else None

    def _info(self, mount: _Mount, number: str) -> None:
        motor = self._motor(mount, number)
        assert motor is not None
        self._send(
            mount,
            f"I{number}",
            f"{int(motor.loop)}{int(motor.on)}{motor.current:04X}"
            f"{motor.ramp_up:04X}{motor.ramp_down:04X}"
            f"{motor.forward:04X}{motor.backward:04X}",
        )

    def _cmd_i1(self, mount: _Mount, data: str) -> None:
        self._info(mount, "1")

    def _cmd_i2(self, mount: _Mount, data: str) -> None:
        self._info(mount, "2")

    def _period(self, mount: _Mount, number: str, attribute: str, data: str) -> None:
        value = self._hex(data, mount)
        if value is None:
            return
        period = value & 0x7FFF  # bit 15 asks to keep the value fixed
        if not PERIOD_RANGE[0] <= period <= PERIOD_RANGE[1]:
            self._status(mount, OUT_OF_RANGE_VALUE)
            return
        motor = self._motor(mount, number)
        assert motor is not None
        setattr(motor, attribute, period)
        self._status(mount, OK)

    def _cmd_f1(self, mount: _Mount, data: str) -> None:
        self._period(mount, "1", "forward", data)

    def _cmd_b1(self, mount: _Mount, data: str) -> None:
        self._period(mount, "1", "backward", data)

    def _cmd_f2(self, mount: _Mount, data: str) -> None:
        self._period(mount, "2", "forward", data)

    def _cmd_b2(self, mount: _Mount, data: str) -> None:
        self._period(mount, "2", "backward", data)

    def _long_operation(self, mount: _Mount, what: str, seconds: float) -> None:
        """A search, optimisation or cleaning: busy, then `GS00`."""
        if mount.busy_with or mount.axis.moving():
            self._status(mount, BUSY)
            return
        assert self.loop is not None

        def done() -> None:
            mount.pending = None
            mount.busy_with = ""
            if what in ("s1", "s2"):
                motor = self._motor(mount, what[1])
                assert motor is not None
                motor.forward, motor.backward = 171, 164  # the resonances found
            self._status(mount, OK)

        mount.busy_with = what
        mount.pending = self.loop.call_later(seconds, done)

    def _cmd_s1(self, mount: _Mount, data: str) -> None:
        self._long_operation(mount, "s1", self.params.search_time)

    def _cmd_s2(self, mount: _Mount, data: str) -> None:
        self._long_operation(mount, "s2", self.params.search_time)

    def _cmd_om(self, mount: _Mount, data: str) -> None:
        self._long_operation(mount, "om", self.params.optimize_time)

    def _cmd_cm(self, mount: _Mount, data: str) -> None:
        self._long_operation(mount, "cm", self.params.optimize_time)

    def _cmd_sk(self, mount: _Mount, data: str) -> None:
        mount.saved["search_at_power_up"] = False
        self._status(mount, OK)

    def _cmd_se(self, mount: _Mount, data: str) -> None:
        mount.saved["search_at_power_up"] = True
        self._status(mount, OK)

    def _cmd_us(self, mount: _Mount, data: str) -> None:
        mount.saved.update(
            address=mount.address,
            velocity=mount.velocity,
            jog_step=mount.jog_step,
            home_offset=mount.home_offset,
            motors=[(m.forward, m.backward) for m in mount.motors],
        )
        self._status(mount, OK)

    def _cmd_ca(self, mount: _Mount, data: str) -> None:
        new = data.upper()
        if len(new) != 1 or new not in HEX:
            self._status(mount, COMMAND_ERROR)
            return
        mount.address = new
        self._status(mount, OK)

    def _cmd_ga(self, mount: _Mount, data: str) -> None:
        group = data.upper()
        if len(group) != 1 or group not in HEX:
            self._status(mount, COMMAND_ERROR)
            return
        mount.group = None if group == mount.address else group
        self._status(mount, OK, address=group)

    def _cmd_is(self, mount: _Mount, data: str) -> None:
        minutes = self._hex(data, mount)
        if minutes is None:
            return
        if minutes == 0:
            was = mount.isolated_until > time.monotonic()
            mount.isolated_until = 0.0
            self._status(mount, OUT_OF_ISOLATION if was else OK)
            return
        mount.isolated_until = time.monotonic() + 60 * minutes
        self._status(mount, OK)

    def _cmd_st(self, mount: _Mount, data: str) -> None:
        if mount.pending is None:
            self._status(mount, OK)
            return
        mount.pending.cancel()
        mount.pending = None
        if mount.busy_with and mount.busy_with != "move":
            mount.busy_with = ""
            self._status(mount, OK)
            return
        mount.busy_with = ""
        mount.axis.stop()
        mount.group = None
        self._send(mount, "PO", to_hex(self._position(mount)))

    def _cmd_ma(self, mount: _Mount, data: str) -> None:
        self._move(mount, "ma", data)

    def _cmd_mr(self, mount: _Mount, data: str) -> None:
        self._move(mount, "mr", data)

    def _cmd_ho(self, mount: _Mount, data: str) -> None:
        self._move(mount, "ho", data or "0")

    def _cmd_fw(self, mount: _Mount, data: str) -> None:
        self._move(mount, "fw", data)

    def _cmd_bw(self, mount: _Mount, data: str) -> None:
        self._move(mount, "bw", data)

    # -- helpers -------------------------------------------------------------------

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

    def _position(self, mount: _Mount) -> int:
        """Where the mount is, in pulses from its home (0 to one turn)."""
        degrees = mount.axis.position() - mount.home_offset / PULSES_PER_DEG
        return int(round(degrees * PULSES_PER_DEG)) % PULSES_PER_REV

    def _move(self, mount: _Mount, command: str, data: str) -> None:
        axis = mount.axis
        moving = sum(m.axis.moving() for m in self.mounts if m is not mount)
        if axis.moving() or mount.busy_with:
            self._status(mount, BUSY)
            return
        if moving >= MAX_MOVING:
            self._status(mount, OVER_CURRENT)
            return
        here = axis.position()
        offset = mount.home_offset / PULSES_PER_DEG
        if command == "ma":
            pulses = self._signed(data, mount)
            if pulses is None:
                return
            target = (pulses % PULSES_PER_REV) / PULSES_PER_DEG + offset
            target = here + ((target - here + 180) % 360 - 180)  # shortest way
        elif command == "mr":
            pulses = self._signed(data, mount)
            if pulses is None:
                return
            target = here + pulses / PULSES_PER_DEG
        elif command == "ho":
            rest = (here - offset) % 360
            target = here - rest if data == "0" else here + (-rest % 360)
        else:
            step = mount.jog_step / PULSES_PER_DEG
            if step == 0:  # continuous jog, until st
                step = 360.0 * 1000
            target = here + (step if command == "fw" else -step)
        axis.velocity = FULL_SPEED * mount.velocity / 100
        duration = axis.move_to(target) + SETTLE
        assert self.loop is not None
        mount.busy_with = "move"
        mount.pending = self.loop.call_later(duration, self._arrived, mount)

    def _arrived(self, mount: _Mount) -> None:
        mount.pending = None
        mount.busy_with = ""
        mount.group = None  # a group address lasts one move
        position = mount.axis.position() % 360
        mount.axis.set_position(position)
        self._send(mount, "PO", to_hex(self._position(mount)))
