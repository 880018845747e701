"""Newport ESP300 three-axis motion controller.

Protocol (ESP300 user's manual, section 3): RS-232 at 19200 baud, 8N1. The
cable carries an RTS/CTS handshake, but the controller only looks at the RTS
line, which pyserial raises when it opens a port: a host answers whether or
not it enables CRTSCTS. Commands end with CR (CR LF accepted); replies always
end with CR LF. A command is `{xx}{MNEMONIC}{nn}`: `xx` an axis, group,
program or bit number, `nn` parameters separated by commas; several commands
share a line separated by `;` (at most 80 characters). Queries (`nn` is `?`)
get one reply line each. Set commands are silent: errors go to a ten-deep
error buffer, read with `TE?` (code) or `TB?` (`code, timestamp, MESSAGE`).
Axis errors are reported as `axis * 100 + code` (113: axis 1, motor not
enabled).

Commands run in the order received. `WS`, `WP`, `WT`, `UH`, `UL` and `HW`
suspend the command stream until their condition is met, so a query sent
after `1WS` is answered only once axis 1 has stopped. Stored programs (`EP`
... `QP`, `EX`) run in their own stream while the host keeps talking.

The full table of what is implemented, and how faithfully, is in the docs
(`docs/reference/simulators/esp300.md`). `MD?`: the manual says 1 means
*done*. rust-daq's driver read it the other way round; labsky's driver and
this simulator follow the manual.

Motion keeps the simulator's physics: a trapezoidal profile at `VA` and `AC`
(deceleration uses the same rate), evaluated lazily by the world's axes, so
the camera sees the spot move while the controller reports it. Positions the
controller reports are the world's stage positions (mm) shifted by the home
definition (`DH`, homing) and scaled to the axis's units (`SN`).
"""

from __future__ import annotations

import asyncio
import copy
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field

from labsky.errors import LabskyError
from labsky.sim.serial_sim import SerialSimParams, SerialSimulator
from labsky.sim.world import World
from labsky.transports.stream import SerialSettings

VERSION = "ESP300 Version 3.04 07/27/01"

#: General error codes (manual, appendix A).
GENERAL_ERRORS = {
    0: "NO ERROR DETECTED",
    1: "PCI COMMUNICATION TIME-OUT",
    4: "EMERGENCY SOP ACTIVATED",
    6: "COMMAND DOES NOT EXIST",
    7: "PARAMETER OUT OF RANGE",
    8: "CABLE INTERLOCK ERROR",
    9: "AXIS NUMBER OUT OF RANGE",
    13: "GROUP NUMBER MISSING",
    14: "GROUP NUMBER OUT OF RANGE",
    15: "GROUP NUMBER NOT ASSIGNED",
    16: "GROUP NUMBER ALREADY ASSIGNED",
    17: "GROUP AXIS OUT OF RANGE",
    18: "GROUP AXIS ALREADY ASSIGNED",
    19: "GROUP AXIS DUPLICATED",
    20: "DATA ACQUISITION IS BUSY",
    21: "DATA ACQUISITION SETUP ERROR",
    22: "DATA ACQUISITION NOT ENABLED",
    23: "SERVO CYCLE TICK FAILURE",
    25: "DOWNLOAD IN PROGRESS",
    26: "STORED PROGRAM NOT STARTED",
    27: "COMMAND NOT ALLOWED",
    28: "STORED PROGRAM FLASH AREA FULL",
    29: "GROUP PARAMETER MISSING",
    30: "GROUP PARAMETER OUT OF RANGE",
    31: "GROUP MAXIMUM VELOCITY EXCEEDED",
    32: "GROUP MAXIMUM ACCELERATION EXCEEDED",
    33: "GROUP MAXIMUM DECELERATION EXCEEDED",
    34: "GROUP MOVE NOT ALLOWED DURING MOTION",
    35: "PROGRAM NOT FOUND",
    37: "AXIS NUMBER MISSING",
    38: "COMMAND PARAMETER MISSING",
    39: "PROGRAM LABEL NOT FOUND",
    40: "LAST COMMAND CANNOT BE REPEATED",
    41: "MAX NUMBER OF LABELS PER PROGRAM EXCEEDED",
}
#: Axis error codes, reported as axis * 100 + code.
AXIS_ERRORS = {
    0: "MOTOR TYPE NOT DEFINED",
    1: "PARAMETER OUT OF RANGE",
    2: "AMPLIFIER FAULT DETECTED",
    3: "FOLLOWING ERROR THRESHOLD EXCEEDED",
    4: "POSITIVE HARDWARE LIMIT DETECTED",
    5: "NEGATIVE HARDWARE LIMIT DETECTED",
    6: "POSITIVE SOFTWARE LIMIT DETECTED",
    7: "NEGATIVE SOFTWARE LIMIT DETECTED",
    8: "MOTOR / STAGE NOT CONNECTED",
    9: "FEEDBACK SIGNAL FAULT DETECTED",
    10: "MAXIMUM VELOCITY EXCEEDED",
    11: "MAXIMUM ACCELERATION EXCEEDED",
    13: "MOTOR NOT ENABLED",
    15: "MAXIMUM JERK EXCEEDED",
    16: "MAXIMUM DAC OFFSET EXCEEDED",
    17: "ESP CRITICAL SETTINGS ARE PROTECTED",
    18: "ESP STAGE DEVICE ERROR",
    19: "ESP STAGE DATA INVALID",
    20: "HOMING ABORTED",
    21: "MOTOR CURRENT NOT DEFINED",
    22: "UNIDRIVE COMMUNICATIONS ERROR",
    23: "UNIDRIVE NOT DETECTED",
    24: "SPEED OUT OF RANGE",
    25: "INVALID TRAJECTORY MASTER AXIS",
    26: "PARAMETER CHARGE NOT ALLOWED",
    27: "INVALID TRAJECTORY MODE FOR HOMING",
    28: "INVALID ENCODER STEP RATIO",
    29: "DIGITAL I/O INTERLOCK DETECTED",
    30: "COMMAND NOT ALLOWED DURING HOMING",
    31: "COMMAND NOT ALLOWED DUE TO GROUP",
    32: "INVALID TRAJECTORY MODE FOR MOVING",
}

#: `SN` unit codes and their size in millimetres (linear) or degrees.
UNITS = {
    0: ("encoder count", None),
    1: ("motor step", None),
    2: ("millimeter", 1.0),
    3: ("micrometer", 1e-3),
    4: ("inches", 25.4),
    5: ("milli-inches", 25.4e-3),
    6: ("micro-inches", 25.4e-6),
    7: ("degree", 1.0),
    8: ("gradian", 0.9),
    9: ("radian", 180 / math.pi),
    10: ("milliradian", 0.18 / math.pi),
    11: ("microradian", 1.8e-4 / math.pi),
}
#: Home search modes (`OR`, `OM`).
HOME_MODES = range(0, 7)
PROGRAM_MEMORY = 65536  # bytes for stored programs
MAX_PROGRAMS = 100
MAX_GROUPS = 2  # three axes make at most two groups of two (or one of three)
POLL = 0.005  # s between checks of a pending wait
SERVO_CYCLE = 400e-6  # s, the controller's servo tick
ERROR_DEPTH = 10

# How a setting scales with the axis's units: by length, per second, per
# second squared, per second cubed, or not at all (gains, integers, words).
LENGTH, SPEED, ACCEL, JERK, PLAIN, INT, WORD = (
    "length",
    "speed",
    "accel",
    "jerk",
    "plain",
    "int",
    "word",
)


@dataclass(frozen=True)
class Setting:
    """An axis parameter set with `xxMNnn` and read with `xxMN?`."""

    kind: str
    default: float
    low: float = -2e9
    high: float = 2e9
    protected: bool = False  # read from an ESP-compatible stage: refused (x17)


#: Axis parameters: mnemonic -> how it scales, its default and range. Lengths
#: are in mm, speeds in mm/s (the world's stage units).
SETTINGS: dict[str, Setting] = {
    "AC": Setting(ACCEL, 80.0, 0.0),  # acceleration
    "AE": Setting(ACCEL, 400.0, 0.0),  # e-stop deceleration
    "AF": Setting(PLAIN, 0.0, 0.0, 2e9),  # acceleration feed-forward gain
    "AG": Setting(ACCEL, 80.0, 0.0),  # deceleration
    "AU": Setting(ACCEL, 400.0, 0.0),  # maximum acceleration and deceleration
    "BA": Setting(LENGTH, 0.0, 0.0),  # backlash compensation
    "CL": Setting(INT, 0, 0, 60000),  # closed-loop update interval
    "CO": Setting(PLAIN, 0.0),  # linear compensation
    "DO": Setting(PLAIN, 0.0, -10.0, 10.0),  # DAC offset, V
    "FE": Setting(LENGTH, 0.2, 0.0),  # maximum following error threshold
    "FP": Setting(INT, 6, 0, 7),  # position display resolution
    "FR": Setting(LENGTH, 0.0005, 1e-9, protected=True),  # full-step resolution
    "GR": Setting(PLAIN, 1.0),  # master-slave reduction ratio
    "JH": Setting(SPEED, 20.0, 0.0),  # jog high speed
    "JK": Setting(JERK, 1600.0, 0.0),  # jerk rate
    "JW": Setting(SPEED, 2.0, 0.0),  # jog low speed
    "KD": Setting(PLAIN, 0.0, 0.0),  # derivative gain
    "KI": Setting(PLAIN, 0.0, 0.0),  # integral gain
    "KP": Setting(PLAIN, 0.0, 0.0),  # proportional gain
    "KS": Setting(PLAIN, 0.0, 0.0, 1.0),  # saturation level of integral factor
    "OH": Setting(SPEED, 10.0, 0.0),  # home search high speed
    "OL": Setting(SPEED, 2.0, 0.0),  # home search low speed
    "OM": Setting(INT, 1, 0, 6),  # home search mode
    "QG": Setting(PLAIN, 0.0, 0.0, protected=True),  # gear constant
    "QI": Setting(PLAIN, 1.0, 0.0, 3.0, protected=True),  # maximum motor current
    "QM": Setting(INT, 1, 0, 4, protected=True),  # motor type (1: DC servo)
    "QS": Setting(INT, 1, 1, 250, protected=True),  # microstep factor
    "QT": Setting(PLAIN, 0.0, 0.0, protected=True),  # tachometer gain
    "QV": Setting(PLAIN, 24.0, 0.0, 48.0, protected=True),  # average motor voltage
    "SH": Setting(LENGTH, 0.0),  # home preset position
    "SI": Setting(INT, 0, 0, 60000),  # master-slave jog velocity update interval
    "SS": Setting(INT, 0, 0, 3),  # master axis of a master-slave pair (0: none)
    "SU": Setting(LENGTH, 0.0005, 1e-9, protected=True),  # encoder resolution
    "TJ": Setting(INT, 1, 1, 6),  # trajectory mode
    "VA": Setting(SPEED, 20.0, 0.0),  # velocity
    "VB": Setting(SPEED, 0.0, 0.0),  # base velocity for step motors
    "VU": Setting(SPEED, 100.0, 0.0),  # maximum velocity
    "ZA": Setting(WORD, 0x163, 0, 0xFFFF),  # amplifier I/O configuration
    "ZB": Setting(WORD, 0x13, 0, 0xFFFF),  # feedback configuration
    "ZE": Setting(WORD, 0x3, 0, 0xFFFF),  # e-stop configuration
    "ZF": Setting(WORD, 0x1, 0, 0xFFFF),  # following error configuration
    "ZH": Setting(WORD, 0x24, 0, 0xFFFF),  # hardware limit configuration
    "ZS": Setting(WORD, 0x5, 0, 0xFFFF),  # software limit configuration
}
#: Settings a speed or acceleration may not exceed, and the error it gets.
CEILINGS = {
    "VA": ("VU", 10),
    "JH": ("VU", 10),
    "JW": ("VU", 10),
    "OH": ("VU", 10),
    "OL": ("VU", 10),
    "AC": ("AU", 11),
    "AG": ("AU", 11),
    "AE": ("AU", 11),
}

_COMMAND = re.compile(r"^\s*(\d*)\s*([A-Za-z]{2})\s*(.*?)\s*$")


class EspError(LabskyError):
    """A command failed: its code goes to the error buffer."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def message(code: int) -> str:
    """The controller's text for an error code."""
    if code >= 100:
        return AXIS_ERRORS.get(code % 100, "UNKNOWN ERROR")
    return GENERAL_ERRORS.get(code, "UNKNOWN ERROR")


class Esp300SimParams(SerialSimParams):
    """Settings of a simulated ESP300."""

    axes: int = Field(default=3, ge=1, le=3, description="Axes fitted.")
    stage_model: str = Field(default="ILS50CC", description="What `nID?` reports.")
    stage_serial: str = Field(
        default="B3041", description="Serial number `nID?` reports."
    )
    esp_stages: bool = Field(
        default=True,
        description="The stages are ESP-compatible: the controller read their "
        "motor settings and protects them (error x17).",
    )
    index_pitch: float = Field(
        default=1.0, gt=0, description="Distance between encoder index marks, mm."
    )


@dataclass
class _Axis:
    """What the controller knows of one axis."""

    settings: dict[str, float]
    units: int = 2
    motor_on: bool = False
    offset: float = 0.0  # controller position (mm) minus the world's position
    left: float = -25.0  # software limits, controller mm
    right: float = 25.0
    homing: bool = False
    arrival: asyncio.TimerHandle | None = None  # what happens when a move ends
    last_target: float = 0.0  # controller mm
    home: float = 0.0  # the position the last DH defined, controller mm


@dataclass
class _Group:
    axes: list[int]
    on: bool = False
    velocity: float = 10.0
    acceleration: float = 40.0
    deceleration: float = 40.0
    estop: float = 400.0
    jerk: float = 1600.0


@dataclass
class _Stream:
    """A command stream: the host's buffer, or a stored program running."""

    name: str
    commands: deque[str] = field(default_factory=deque)
    program: list[str] | None = None
    pc: int = 0
    repeats: int = 1
    loops: dict[int, int] = field(default_factory=dict)
    until: Callable[[], bool] | None = None  # a wait in progress
    waiting_for: str = ""
    timer: asyncio.TimerHandle | None = None

    def next(self) -> str | None:
        """The next command, or None when the stream is empty."""
        if self.program is None:
            return self.commands.popleft() if self.commands else None
        if self.pc >= len(self.program):
            self.repeats -= 1
            if self.repeats <= 0:
                return None
            self.pc, self.loops = 0, {}
        command = self.program[self.pc]
        self.pc += 1
        return command


@dataclass
class _Acquisition:
    mode: int = 0
    axis: int = 1
    points: int = 0
    interval: int = 1  # servo cycles between samples
    started: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)


class Esp300Sim(SerialSimulator[Esp300SimParams]):
    """An ESP300 whose axes are the world's stage axes 1-3."""

    kind: ClassVar[str] = "esp300"
    Params = Esp300SimParams
    checks_rtscts: ClassVar[bool] = False  # the controller only sees RTS

    def __init__(self, world: World, name: str, params: Esp300SimParams):
        super().__init__(world, name, params)
        travel = world.params.stage.travel
        self.travel = travel
        self.axes: dict[int, _Axis] = {}
        for number in range(1, params.axes + 1):
            values = {m: s.default for m, s in SETTINGS.items()}
            world_axis = world.stage_axis(number)
            values["VA"] = world_axis.velocity
            values["AC"] = values["AG"] = world_axis.acceleration
            self.axes[number] = _Axis(values, left=-travel, right=travel)
        self.saved = copy.deepcopy(self.axes)
        self.errors: deque[tuple[int, float]] = deque(maxlen=ERROR_DEPTH)
        self.powered_at = time.monotonic()
        self.host = _Stream("host")
        self.running: list[_Stream] = []
        self.programs: dict[int, list[str]] = {}
        self.recording: int | None = None
        self.auto_execute: int = 0
        self.groups: dict[int, _Group] = {}
        self.dio_direction = 0  # BO: bit set = output, ports A (bits 0-7), B, C
        self.dio_state = 0xFFFFFF  # inputs float high
        self.extras: dict[str, tuple[float, ...]] = {}  # DIO words, SK, QR, ZZ
        self.device_address = 1
        self.acquisition = _Acquisition()
        self.acquisition_enabled = False

    # -- framing ---------------------------------------------------------------

    def serial_settings(self) -> SerialSettings:
        """19200 8N1; the RTS/CTS handshake is on the cable."""
        return SerialSettings(baudrate=19200, rtscts=True)

    def error(self, code: int) -> None:
        """Queue an error, as the controller's error buffer does."""
        self.errors.append((code, time.monotonic()))

    def handle(self, line: str) -> None:
        """Store a line in program memory, or queue its commands and run them."""
        commands = [c for c in line[:80].split(";") if c.strip()]
        if self.recording is not None:
            commands = self._record(commands)
        self.host.commands.extend(commands)
        self._pump(self.host)

    def _record(self, commands: list[str]) -> list[str]:
        """Store commands in the program being entered; return those after QP."""
        assert self.recording is not None
        program = self.programs.setdefault(self.recording, [])
        for i, command in enumerate(commands):
            match = _COMMAND.match(command)
            if match is not None and match.group(2).upper() == "QP":
                self.recording = None
                return commands[i + 1 :]
            if self._memory_used() + len(command) + 1 > PROGRAM_MEMORY:
                self.error(28)
                continue
            program.append(command.strip())
        return []

    def _memory_used(self) -> int:
        return sum(len(c) + 1 for p in self.programs.values() for c in p)

    # -- execution -------------------------------------------------------------

    def _pump(self, stream: _Stream) -> None:
        """Run a stream's commands until it is empty or waits."""
        while stream.until is None:
            if stream is self.host and self.recording is not None:
                self.host.commands = deque(self._record(list(self.host.commands)))
            command = stream.next()
            if command is None:
                if stream is not self.host and stream in self.running:
                    self.running.remove(stream)
                return
            try:
                self.run(command, stream)
            except EspError as exc:
                self.error(exc.code)
        self._check_later(stream)

    def _check_later(self, stream: _Stream) -> None:
        if self.loop is not None and stream.timer is None:
            stream.timer = self.loop.call_later(POLL, self._check_wait, stream)

    def _check_wait(self, stream: _Stream) -> None:
        stream.timer = None
        if stream.until is not None and stream.until():
            stream.until = None
            stream.waiting_for = ""
        self._pump(stream)

    def _wait(self, stream: _Stream, until: Callable[[], bool], what: str) -> None:
        """Suspend a stream until `until()` is true."""
        stream.until = until
        stream.waiting_for = what

    def run(self, command: str, stream: _Stream | None = None) -> None:
        """Run one command (errors raise `EspError`)."""
        stream = stream or self.host
        match = _COMMAND.match(command)
        if match is None:
            raise EspError(6)
        prefix, mnemonic, rest = match.groups()
        mnemonic = mnemonic.upper()
        query = rest == "?"
        params = [] if query or not rest else [p.strip() for p in rest.split(",")]
        xx = int(prefix) if prefix else None
        if mnemonic in SETTINGS:
            self._setting(self._axis_number(xx), mnemonic, query, params)
            return
        handler = getattr(self, f"_cmd_{mnemonic}", None)
        if handler is None:
            raise EspError(6)
        handler(xx, query, params, stream)

    def _axis_number(self, xx: int | None) -> int:
        if xx is None:
            raise EspError(37)
        if xx not in self.axes:
            raise EspError(9)
        return xx

    def _axes_or_all(self, xx: int | None) -> list[int]:
        return list(self.axes) if xx is None else [self._axis_number(xx)]

    # -- numbers and units -----------------------------------------------------

    @staticmethod
    def _number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise EspError(7) from None
        if not math.isfinite(value):
            raise EspError(7)
        return value

    def _param(self, params: list[str], index: int = 0) -> float:
        if len(params) <= index or params[index] == "":
            raise EspError(38)
        return self._number(params[index])

    def unit_size(self, number: int) -> float:
        """Millimetres (or degrees) per unit of axis `number`."""
        axis = self.axes[number]
        size = UNITS[axis.units][1]
        if size is None:  # encoder counts or motor steps
            size = axis.settings["SU" if axis.units == 0 else "FR"]
        return size

    def _scale(self, number: int, kind: str) -> float:
        """Factor from the axis's units to mm for a kind of setting."""
        return self.unit_size(number) if kind in (LENGTH, SPEED, ACCEL, JERK) else 1.0

    def _format(self, value: float) -> str:
        return f"{value:.6f}"

    def position(self, number: int, now: float | None = None) -> float:
        """Actual position of an axis in controller mm."""
        return self.world.stage_axis(number).position(now) + self.axes[number].offset

    def _to_units(self, number: int, mm: float) -> float:
        return mm / self.unit_size(number)

    def _velocity(self, number: int) -> float:
        """Actual speed of an axis (mm/s), from its motion profile."""
        now = time.monotonic()
        dt = 1e-3
        axis = self.world.stage_axis(number)
        return (axis.position(now + dt) - axis.position(now - dt)) / (2 * dt)

    # -- settings --------------------------------------------------------------

    def _setting(
        self, number: int, mnemonic: str, query: bool, params: list[str]
    ) -> None:
        setting = SETTINGS[mnemonic]
        axis = self.axes[number]
        scale = self._scale(number, setting.kind)
        if query:
            value = axis.settings[mnemonic]
            if setting.kind == WORD:
                self.reply(f"{int(value):X}H")
            elif setting.kind == INT:
                self.reply(str(int(value)))
            else:
                self.reply(self._format(value / scale))
            return
        if not params or params[0] == "":
            raise EspError(38)
        text = params[0]
        if setting.kind == WORD:
            try:
                value = float(
                    int(text[:-1], 16) if text.upper().endswith("H") else int(text)
                )
            except ValueError:
                raise EspError(7) from None
        else:
            value = self._number(text)
        if not setting.low <= value <= setting.high:
            raise EspError(7)
        if setting.kind == INT and value != int(value):
            raise EspError(7)
        if setting.protected and self.params.esp_stages:
            if value != axis.settings[mnemonic]:
                raise EspError(number * 100 + 17)
        value *= scale
        ceiling = CEILINGS.get(mnemonic)
        if ceiling is not None and value > axis.settings[ceiling[0]] + 1e-12:
            raise EspError(number * 100 + ceiling[1])
        axis.settings[mnemonic] = value
        world_axis = self.world.stage_axis(number)
        if mnemonic == "VA":
            world_axis.velocity = value
        elif mnemonic == "AC":
            world_axis.acceleration = value

    # -- controller commands ---------------------------------------------------

    def _cmd_VE(self, xx, query, params, stream) -> None:  # noqa: N802
        """Firmware version."""
        self.reply(VERSION)

    def _cmd_TE(self, xx, query, params, stream) -> None:  # noqa: N802
        """Oldest error code (removed from the buffer)."""
        code = self.errors.popleft()[0] if self.errors else 0
        self.reply(str(code))

    def _cmd_TB(self, xx, query, params, stream) -> None:  # noqa: N802
        """Oldest error with its timestamp (servo cycles since power-up)."""
        code, at = self.errors.popleft() if self.errors else (0, time.monotonic())
        stamp = int((at - self.powered_at) / SERVO_CYCLE)
        self.reply(f"{code}, {stamp}, {message(code)}")

    def _cmd_TS(self, xx, query, params, stream) -> None:  # noqa: N802
        """Controller status byte as a character."""
        status = 0x40
        for number in self.axes:
            if self.world.stage_axis(number).moving():
                status |= 1 << (number - 1)
        if any(a.motor_on for a in self.axes.values()):
            status |= 0x10
        self.reply(chr(status))

    def _cmd_TX(self, xx, query, params, stream) -> None:  # noqa: N802
        """Controller activity byte as a character."""
        activity = 0x40
        if self.running:
            activity |= 0x01
        if any(s.until is not None for s in (self.host, *self.running)):
            activity |= 0x02
        if any(self.world.stage_axis(n).moving() for n in self.axes):
            activity |= 0x10
        self.reply(chr(activity))

    def _cmd_PH(self, xx, query, params, stream) -> None:  # noqa: N802
        """Hardware status: two registers in hex (limits, home, index, inputs)."""
        first, second = 0, 0
        for number in self.axes:
            physical = self.world.stage_axis(number).position()
            bit = number - 1
            if physical >= self.travel - 1e-9:
                first |= 1 << bit  # positive hardware limit
            if physical <= -self.travel + 1e-9:
                first |= 1 << (bit + 4)  # negative hardware limit
            pitch = self.params.index_pitch
            if abs(physical / pitch - round(physical / pitch)) < 1e-6:
                first |= 1 << (bit + 8)  # index signal
            if physical >= 0:
                second |= 1 << bit  # home signal (high on the positive side)
            if not self.axes[number].motor_on:
                second |= 1 << (bit + 8)  # amplifier disabled
        first |= (self.dio_state & 0x3) << 16
        self.reply(f"{first:X}H, {second:X}H")

    def _cmd_XM(self, xx, query, params, stream) -> None:  # noqa: N802
        """Program memory left, bytes."""
        self.reply(str(PROGRAM_MEMORY - self._memory_used()))

    def _cmd_RQ(self, xx, query, params, stream) -> None:  # noqa: N802
        """Generate a service request (IEEE-488 only; nothing to do on RS-232)."""

    def _cmd_SA(self, xx, query, params, stream) -> None:  # noqa: N802
        """IEEE-488 device address."""
        if query:
            self.reply(str(self.device_address))
            return
        value = self._param(params)
        if not 1 <= value <= 30 or value != int(value):
            raise EspError(7)
        self.device_address = int(value)

    def _cmd_SM(self, xx, query, params, stream) -> None:  # noqa: N802
        """Save the axes' settings to non-volatile memory."""
        self.saved = copy.deepcopy(
            {n: _Axis(dict(a.settings), a.units) for n, a in self.axes.items()}
        )

    def _cmd_RS(self, xx, query, params, stream) -> None:  # noqa: N802
        """Reset: stop, motors off, saved settings back, errors and waits cleared."""
        for number, axis in self.axes.items():
            self._stop(number)
            saved = self.saved.get(number)
            if saved is not None:
                axis.settings = dict(saved.settings)
                axis.units = saved.units
            axis.motor_on = False
            axis.offset = -self.world.stage_axis(number).position()  # counts from 0
            world_axis = self.world.stage_axis(number)
            world_axis.velocity = axis.settings["VA"]
            world_axis.acceleration = axis.settings["AC"]
        self.errors.clear()
        self.running.clear()
        self.groups.clear()
        self.host.commands.clear()
        self.host.until = None

    def _cmd_AB(self, xx, query, params, stream) -> None:  # noqa: N802
        """Abort motion: every axis stops at once and its motor turns off."""
        for number, axis in self.axes.items():
            self._stop(number)
            axis.motor_on = False

    def _cmd_WT(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait `nn` milliseconds before the next command."""
        delay = self._param(params) if params else 0.0
        if delay < 0:
            raise EspError(7)
        end = time.monotonic() + delay / 1000
        self._wait(stream, lambda: time.monotonic() >= end, "WT")

    # -- DIO -------------------------------------------------------------------

    def _cmd_BO(self, xx, query, params, stream) -> None:  # noqa: N802
        """Direction of DIO ports A, B, C (bit set: output)."""
        if query:
            self.reply(f"{self.dio_direction:X}H")
            return
        self.dio_direction = self._word(params) & 0x7

    def _cmd_SB(self, xx, query, params, stream) -> None:  # noqa: N802
        """State of the DIO ports (24 bits)."""
        if query:
            self.reply(f"{self.dio_state:X}H")
            return
        self.dio_state = self._word(params) & 0xFFFFFF

    def _word(self, params: list[str]) -> int:
        if not params or not params[0]:
            raise EspError(38)
        text = params[0]
        try:
            return int(text[:-1], 16) if text.upper().endswith("H") else int(text)
        except ValueError:
            raise EspError(7) from None

    def _dio_assignment(self, mnemonic: str, xx, query, params) -> None:
        key = f"{mnemonic}{xx or ''}"
        if query:
            values = self.extras.get(key, (0,))
            self.reply(", ".join(f"{int(v):X}H" for v in values))
            return
        if not params:
            raise EspError(38)
        self.extras[key] = tuple(float(self._word([p])) for p in params)

    def _cmd_BG(self, xx, query, params, stream) -> None:  # noqa: N802
        """Assign DIO bits to execute stored programs."""
        self._dio_assignment("BG", xx, query, params)

    def _cmd_BK(self, xx, query, params, stream) -> None:  # noqa: N802
        """Assign DIO bits to inhibit motion."""
        self._dio_assignment("BK", self._axis_number(xx), query, params)

    def _cmd_BL(self, xx, query, params, stream) -> None:  # noqa: N802
        """Enable DIO bits to inhibit motion."""
        self._dio_assignment("BL", self._axis_number(xx), query, params)

    def _cmd_BM(self, xx, query, params, stream) -> None:  # noqa: N802
        """Assign DIO bits to notify motion status."""
        self._dio_assignment("BM", self._axis_number(xx), query, params)

    def _cmd_BN(self, xx, query, params, stream) -> None:  # noqa: N802
        """Enable DIO bits to notify motion status."""
        self._dio_assignment("BN", self._axis_number(xx), query, params)

    def _cmd_BP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Assign DIO bits for jog mode."""
        self._dio_assignment("BP", self._axis_number(xx), query, params)

    def _cmd_BQ(self, xx, query, params, stream) -> None:  # noqa: N802
        """Enable DIO bits for jog mode."""
        self._dio_assignment("BQ", self._axis_number(xx), query, params)

    def _bit(self, xx: int | None) -> int:
        if xx is None:
            raise EspError(38)
        if not 0 <= xx < 24:
            raise EspError(7)
        return xx

    def _cmd_UH(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait for DIO bit `xx` to be high."""
        bit = self._bit(xx)
        self._wait(stream, lambda: bool(self.dio_state >> bit & 1), "UH")

    def _cmd_UL(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait for DIO bit `xx` to be low."""
        bit = self._bit(xx)
        self._wait(stream, lambda: not self.dio_state >> bit & 1, "UL")

    # -- programs --------------------------------------------------------------

    def _program_number(self, xx: int | None) -> int:
        if xx is None:
            raise EspError(38)
        if not 1 <= xx <= MAX_PROGRAMS:
            raise EspError(7)
        return xx

    def _cmd_EP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Enter program mode: what follows is stored in program `xx` until QP."""
        number = self._program_number(1 if xx is None else xx)
        if stream is not self.host:
            raise EspError(27)
        self.programs[number] = []
        self.recording = number

    def _cmd_QP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Quit program mode (outside it there is nothing to quit)."""
        raise EspError(27)

    def _cmd_XX(self, xx, query, params, stream) -> None:  # noqa: N802
        """Erase program `xx`, or every program."""
        if xx is None:
            self.programs.clear()
            return
        if self.programs.pop(self._program_number(xx), None) is None:
            raise EspError(35)

    def _cmd_LP(self, xx, query, params, stream) -> None:  # noqa: N802
        """List program `xx`, one line per command."""
        program = self.programs.get(self._program_number(xx))
        if program is None:
            raise EspError(35)
        for line in program:
            self.reply(line)

    def _cmd_EX(self, xx, query, params, stream) -> None:  # noqa: N802
        """Execute program `xx` (`nn` times)."""
        number = self._program_number(xx)
        program = self.programs.get(number)
        if program is None:
            raise EspError(35)
        repeats = int(self._param(params)) if params else 1
        runner = _Stream(f"program {number}", program=program, repeats=repeats)
        self.running.append(runner)
        if self.loop is not None:
            self.loop.call_soon(self._pump, runner)

    def _cmd_AP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Abort every program being executed."""
        for runner in self.running:
            if runner.timer is not None:
                runner.timer.cancel()
        self.running.clear()

    def _cmd_EO(self, xx, query, params, stream) -> None:  # noqa: N802
        """Program executed automatically at power-on (0: none)."""
        if query:
            self.reply(str(self.auto_execute))
            return
        self.auto_execute = 0 if xx is None else self._program_number(xx)

    def _cmd_DL(self, xx, query, params, stream) -> None:  # noqa: N802
        """Define label `xx` (a marker in a program: nothing to do when reached)."""
        if stream.program is None:
            raise EspError(27)

    def _cmd_JL(self, xx, query, params, stream) -> None:  # noqa: N802
        """Jump to label `xx`, `nn` times (for ever without `nn`)."""
        if stream.program is None:
            raise EspError(27)
        if xx is None:
            raise EspError(38)
        target = next(
            (
                i
                for i, command in enumerate(stream.program)
                if re.match(rf"^\s*{xx}\s*DL\s*$", command, re.IGNORECASE)
            ),
            None,
        )
        if target is None:
            raise EspError(39)
        times = int(self._param(params)) if params else None
        done = stream.loops.get(stream.pc, 0)
        if times is None or done < times:
            stream.loops[stream.pc] = done + 1
            stream.pc = target + 1
        else:
            stream.loops[stream.pc] = 0

    # -- data acquisition ------------------------------------------------------

    def _cmd_DC(self, xx, query, params, stream) -> None:  # noqa: N802
        """Set up data acquisition: mode, axis, points, servo cycles per sample."""
        acq = self.acquisition
        if query:
            self.reply(f"{acq.mode}, {acq.axis}, {acq.points}, {acq.interval}")
            return
        if self.acquisition_enabled:
            raise EspError(20)
        if len(params) < 4:
            raise EspError(21)
        mode, axis, points, interval = (int(self._number(p)) for p in params[:4])
        if axis not in self.axes or points <= 0 or interval <= 0 or mode < 0:
            raise EspError(21)
        self.acquisition = _Acquisition(mode, axis, points, interval)

    def _cmd_DE(self, xx, query, params, stream) -> None:  # noqa: N802
        """Enable (1) or disable (0) data acquisition."""
        if query:
            self.reply("1" if self.acquisition_enabled else "0")
            return
        enable = self._param(params) != 0
        acq = self.acquisition
        if enable and acq.points == 0:
            raise EspError(21)
        self.acquisition_enabled = enable
        acq.started = time.monotonic() if enable else None
        acq.samples = []

    def _samples(self) -> list[tuple[float, float]]:
        acq = self.acquisition
        if acq.started is None:
            return acq.samples
        period = acq.interval * SERVO_CYCLE
        taken = min(acq.points, int((time.monotonic() - acq.started) / period) + 1)
        for i in range(len(acq.samples), taken):
            at = acq.started + i * period
            acq.samples.append((i * period, self.position(acq.axis, at)))
        return acq.samples

    def _cmd_DD(self, xx, query, params, stream) -> None:  # noqa: N802
        """Data acquisition done: 1 when every point is taken."""
        done = len(self._samples()) >= self.acquisition.points > 0
        self.reply("1" if done else "0")

    def _cmd_DG(self, xx, query, params, stream) -> None:  # noqa: N802
        """Acquired data: sample `nn` (or all) as `time, position` lines."""
        if not self.acquisition_enabled and not self.acquisition.samples:
            raise EspError(22)
        samples = self._samples()
        if params:
            index = int(self._param(params))
            if not 0 <= index < len(samples):
                raise EspError(7)
            samples = [samples[index]]
        axis = self.acquisition.axis
        for at, mm in samples:
            self.reply(f"{at * 1000:.3f}, {self._format(self._to_units(axis, mm))}")

    # -- groups ----------------------------------------------------------------

    def _group(self, xx: int | None) -> _Group:
        if xx is None:
            raise EspError(13)
        if not 1 <= xx <= MAX_GROUPS:
            raise EspError(14)
        group = self.groups.get(xx)
        if group is None:
            raise EspError(15)
        return group

    def _cmd_HN(self, xx, query, params, stream) -> None:  # noqa: N802
        """Create group `xx` from the axes listed."""
        if xx is None:
            raise EspError(13)
        if not 1 <= xx <= MAX_GROUPS:
            raise EspError(14)
        if xx in self.groups:
            raise EspError(16)
        if len(params) < 2:
            raise EspError(29)
        axes = [int(self._number(p)) for p in params]
        if any(a not in self.axes for a in axes):
            raise EspError(17)
        if len(set(axes)) != len(axes):
            raise EspError(19)
        taken = {a for g in self.groups.values() for a in g.axes}
        if taken & set(axes):
            raise EspError(18)
        self.groups[xx] = _Group(axes)

    def _cmd_HX(self, xx, query, params, stream) -> None:  # noqa: N802
        """Delete group `xx`."""
        self._group(xx)
        assert xx is not None
        del self.groups[xx]

    def _cmd_HB(self, xx, query, params, stream) -> None:  # noqa: N802
        """Groups defined, comma separated."""
        self.reply(", ".join(str(n) for n in sorted(self.groups)) or "0")

    def _cmd_HZ(self, xx, query, params, stream) -> None:  # noqa: N802
        """Axes of group `xx`, comma separated."""
        self.reply(", ".join(str(a) for a in self._group(xx).axes))

    def _cmd_HO(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group on (every axis of it must have its motor on)."""
        group = self._group(xx)
        if query:
            self.reply("1" if group.on else "0")
            return
        for number in group.axes:
            if not self.axes[number].motor_on:
                raise EspError(number * 100 + 13)
        group.on = True

    def _cmd_HF(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group off."""
        self._group(xx).on = False

    def _group_value(self, xx, query, params, attribute: str, code: int) -> None:
        group = self._group(xx)
        if query:
            self.reply(self._format(getattr(group, attribute)))
            return
        if not params:
            raise EspError(29)
        value = self._number(params[0])
        if value <= 0:
            raise EspError(30)
        if code and any(
            value > self.axes[a].settings["VU" if code == 31 else "AU"]
            for a in group.axes
        ):
            raise EspError(code)
        setattr(group, attribute, value)

    def _cmd_HV(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group vector velocity."""
        self._group_value(xx, query, params, "velocity", 31)

    def _cmd_HA(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group vector acceleration."""
        self._group_value(xx, query, params, "acceleration", 32)

    def _cmd_HD(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group vector deceleration."""
        self._group_value(xx, query, params, "deceleration", 33)

    def _cmd_HE(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group e-stop deceleration."""
        self._group_value(xx, query, params, "estop", 33)

    def _cmd_HJ(self, xx, query, params, stream) -> None:  # noqa: N802
        """Group jerk."""
        self._group_value(xx, query, params, "jerk", 0)

    def _cmd_HP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Positions of the group's axes."""
        group = self._group(xx)
        self.reply(
            ", ".join(
                self._format(self._to_units(a, self.position(a))) for a in group.axes
            )
        )

    def _group_move(self, group: _Group, targets: list[float]) -> None:
        """Move the group's axes in a straight line at the vector speed."""
        if not group.on:
            raise EspError(27)
        if any(self.world.stage_axis(a).moving() for a in group.axes):
            raise EspError(34)
        starts = [self.position(a) for a in group.axes]
        for number, target in zip(group.axes, targets, strict=True):
            self._check_target(number, target)
        length = math.dist(starts, targets)
        if length == 0:
            return
        for number, start, target in zip(group.axes, starts, targets, strict=True):
            share = abs(target - start) / length
            if share > 0:
                self._start_move(
                    number,
                    target,
                    group.velocity * share,
                    group.acceleration * share,
                )

    def _cmd_HL(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move the group along a line to the positions given."""
        group = self._group(xx)
        if len(params) != len(group.axes):
            raise EspError(29)
        targets = [
            self._number(p) * self.unit_size(a)
            for p, a in zip(params, group.axes, strict=True)
        ]
        self._group_move(group, targets)

    def _cmd_HC(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move the group along an arc: centre x, centre y, sweep angle (deg).

        The end point and the time are those of the arc; the path between
        them is the chord (the world's axes move in straight lines).
        """
        group = self._group(xx)
        if len(group.axes) != 2 or len(params) != 3:
            raise EspError(29)
        a, b = group.axes
        cx = self._number(params[0]) * self.unit_size(a)
        cy = self._number(params[1]) * self.unit_size(b)
        sweep = math.radians(self._number(params[2]))
        x, y = self.position(a) - cx, self.position(b) - cy
        cos, sin = math.cos(sweep), math.sin(sweep)
        targets = [cx + x * cos - y * sin, cy + x * sin + y * cos]
        arc = math.hypot(x, y) * abs(sweep)
        chord = math.dist((x + cx, y + cy), targets)
        velocity = group.velocity
        group.velocity = velocity * (chord / arc if arc else 1.0)
        try:
            self._group_move(group, targets)
        finally:
            group.velocity = velocity

    def _cmd_HS(self, xx, query, params, stream) -> None:  # noqa: N802
        """Stop the group's motion."""
        for number in self._group(xx).axes:
            self._stop(number)

    def _cmd_HW(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait for the group's motion to stop (then `nn` ms)."""
        group = self._group(xx)
        self._wait_stopped(stream, group.axes, params, "HW")

    def _cmd_HQ(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait for room in the group's via-point buffer (always room here)."""
        self._group(xx)

    # -- axis commands ---------------------------------------------------------

    def _cmd_ID(self, xx, query, params, stream) -> None:  # noqa: N802
        """Stage model and serial number."""
        self._axis_number(xx)
        self.reply(f"{self.params.stage_model}, {self.params.stage_serial}")

    def _cmd_SN(self, xx, query, params, stream) -> None:  # noqa: N802
        """Displacement units of an axis (0-11)."""
        number = self._axis_number(xx)
        axis = self.axes[number]
        if query:
            self.reply(str(axis.units))
            return
        value = self._param(params)
        if value not in UNITS:
            raise EspError(7)
        axis.units = int(value)

    def _cmd_MO(self, xx, query, params, stream) -> None:  # noqa: N802
        """Motor on (off at power-up); `MO?`: 1 when on."""
        numbers = self._axes_or_all(xx)
        if query:
            self.reply("1" if self.axes[numbers[0]].motor_on else "0")
            return
        for number in numbers:
            self.axes[number].motor_on = True

    def _cmd_MF(self, xx, query, params, stream) -> None:  # noqa: N802
        """Motor off (an axis moving stops)."""
        for number in self._axes_or_all(xx):
            self._stop(number)
            self.axes[number].motor_on = False

    def _cmd_TP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Actual position."""
        number = self._axis_number(xx)
        self.reply(self._format(self._to_units(number, self.position(number))))

    def _cmd_DP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Desired position: where the trajectory is now (no following error)."""
        self._cmd_TP(xx, query, params, stream)

    def _cmd_TV(self, xx, query, params, stream) -> None:  # noqa: N802
        """Actual velocity."""
        number = self._axis_number(xx)
        self.reply(self._format(self._to_units(number, self._velocity(number))))

    def _cmd_DV(self, xx, query, params, stream) -> None:  # noqa: N802
        """Desired velocity of the trajectory now."""
        self._cmd_TV(xx, query, params, stream)

    def _cmd_DF(self, xx, query, params, stream) -> None:  # noqa: N802
        """Following error (the simulated servo follows exactly)."""
        self._axis_number(xx)
        self.reply(self._format(0.0))

    def _cmd_MD(self, xx, query, params, stream) -> None:  # noqa: N802
        """Motion done: 1 when stopped, 0 while moving."""
        number = self._axis_number(xx)
        self.reply("0" if self.world.stage_axis(number).moving() else "1")

    def _cmd_DH(self, xx, query, params, stream) -> None:  # noqa: N802
        """Define home: the present position becomes `nn` (0 if omitted)."""
        number = self._axis_number(xx)
        axis = self.axes[number]
        if query:
            self.reply(self._format(self._to_units(number, axis.home)))
            return
        if self.world.stage_axis(number).moving():
            raise EspError(number * 100 + (30 if axis.homing else 26))
        value = self._param(params) * self.unit_size(number) if params else 0.0
        axis.offset = value - self.world.stage_axis(number).position()
        axis.home = axis.last_target = value

    def _check_target(self, number: int, target: float) -> None:
        axis = self.axes[number]
        if not axis.motor_on:
            raise EspError(number * 100 + 13)
        if axis.homing:
            raise EspError(number * 100 + 30)
        if int(axis.settings["ZS"]) & 0x1:  # software limits checked
            if target > axis.right + 1e-9:
                raise EspError(number * 100 + 6)
            if target < axis.left - 1e-9:
                raise EspError(number * 100 + 7)

    def _start_move(
        self,
        number: int,
        target: float,
        velocity: float | None = None,
        acceleration: float | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Move an axis to `target` (controller mm); the hardware limits stop it."""
        axis = self.axes[number]
        world_axis = self.world.stage_axis(number)
        if (velocity or axis.settings["VA"]) <= 0:
            raise EspError(number * 100 + 24)  # speed out of range
        physical = target - axis.offset
        limit_error = 0
        if physical > self.travel:
            physical, limit_error = self.travel, 4
        elif physical < -self.travel:
            physical, limit_error = -self.travel, 5
        world_axis.velocity = velocity or axis.settings["VA"]
        world_axis.acceleration = (
            acceleration if acceleration is not None else axis.settings["AC"]
        )
        duration = world_axis.move_to(physical)
        world_axis.velocity = axis.settings["VA"]
        world_axis.acceleration = axis.settings["AC"]
        axis.last_target = target
        if axis.arrival is not None:
            axis.arrival.cancel()
            axis.arrival = None

        def arrived() -> None:
            axis.arrival = None
            if limit_error:
                self.error(number * 100 + limit_error)
            if then is not None:
                then()

        if (limit_error or then is not None) and self.loop is not None:
            axis.arrival = self.loop.call_later(duration, arrived)

    def _stop(self, number: int) -> None:
        axis = self.axes[number]
        self.world.stage_axis(number).stop()
        if axis.arrival is not None:
            axis.arrival.cancel()
            axis.arrival = None
        if axis.homing:
            axis.homing = False
            self.error(number * 100 + 20)

    def _move(self, number: int, target: float) -> None:
        self._check_target(number, target)
        self._start_move(number, target)

    def _cmd_PA(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move to an absolute position; `PA?`: the destination."""
        number = self._axis_number(xx)
        if query:
            target = self.axes[number].last_target
            self.reply(self._format(self._to_units(number, target)))
            return
        self._move(number, self._param(params) * self.unit_size(number))

    def _cmd_PR(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move by a distance; `PR?`: the destination."""
        number = self._axis_number(xx)
        if query:
            self._cmd_PA(xx, query, params, stream)
            return
        distance = self._param(params) * self.unit_size(number)
        self._move(number, self.position(number) + distance)

    def _direction(self, params: list[str]) -> float:
        if not params or params[0] not in ("+", "-"):
            raise EspError(38 if not params or not params[0] else 7)
        return 1.0 if params[0] == "+" else -1.0

    def _cmd_MV(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move indefinitely (`+` or `-`) until stopped or a limit is hit."""
        number = self._axis_number(xx)
        if query:
            self._cmd_MD(xx, query, params, stream)
            return
        sign = self._direction(params)
        axis = self.axes[number]
        if not axis.motor_on:
            raise EspError(number * 100 + 13)
        limit = axis.right if sign > 0 else axis.left
        if not int(axis.settings["ZS"]) & 0x1:
            limit = sign * 1e9
        self._start_move(number, limit)

    def _cmd_MT(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move to the hardware travel limit (`+` or `-`); `MT?`: 1 when there."""
        number = self._axis_number(xx)
        if query:
            self._cmd_MD(xx, query, params, stream)
            return
        sign = self._direction(params)
        axis = self.axes[number]
        if not axis.motor_on:
            raise EspError(number * 100 + 13)
        self._start_move(number, sign * self.travel + axis.offset)

    def _cmd_MZ(self, xx, query, params, stream) -> None:  # noqa: N802
        """Move to the nearest encoder index in a direction (`+` or `-`)."""
        number = self._axis_number(xx)
        if query:
            self._cmd_MD(xx, query, params, stream)
            return
        sign = self._direction(params)
        axis = self.axes[number]
        if not axis.motor_on:
            raise EspError(number * 100 + 13)
        pitch = self.params.index_pitch
        physical = self.world.stage_axis(number).position()
        steps = physical / pitch
        index = (math.floor(steps) + 1) if sign > 0 else (math.ceil(steps) - 1)
        self._start_move(number, index * pitch + axis.offset)

    def _cmd_OR(self, xx, query, params, stream) -> None:  # noqa: N802
        """Search for home (mode `nn`, default `OM`); the position becomes `SH`."""
        numbers = self._axes_or_all(xx)
        if query:
            self._cmd_MD(numbers[0], query, params, stream)
            return
        for number in numbers:
            axis = self.axes[number]
            mode = int(self._param(params)) if params else int(axis.settings["OM"])
            if mode not in HOME_MODES:
                raise EspError(7)
            if not axis.motor_on:
                raise EspError(number * 100 + 13)
            if axis.homing:
                raise EspError(number * 100 + 30)
            if mode == 0:  # to the zero of the position counter
                physical = -axis.offset
            elif mode in (1, 2):  # home switch (and index) at the stage's middle
                physical = 0.0
            elif mode in (3, 5):
                physical = self.travel
            else:
                physical = -self.travel

            def homed(number: int = number, physical: float = physical) -> None:
                home = self.axes[number]
                home.homing = False
                home.offset = home.settings["SH"] - physical
                home.last_target = home.settings["SH"]

            self._start_move(
                number, physical + axis.offset, axis.settings["OH"], then=homed
            )
            axis.homing = True
            if not self.world.stage_axis(number).moving():
                if axis.arrival is not None:
                    axis.arrival.cancel()
                    axis.arrival = None
                homed()

    def _cmd_ST(self, xx, query, params, stream) -> None:  # noqa: N802
        """Stop motion (every axis without a number)."""
        for number in self._axes_or_all(xx):
            self._stop(number)

    def _wait_stopped(
        self, stream: _Stream, numbers: list[int], params: list[str], what: str
    ) -> None:
        delay = self._param(params) / 1000 if params else 0.0
        if delay < 0:
            raise EspError(7)
        stopped_at: list[float] = []

        def done() -> bool:
            if any(self.world.stage_axis(n).moving() for n in numbers) or any(
                self.axes[n].homing for n in numbers
            ):
                return False
            if not stopped_at:
                stopped_at.append(time.monotonic())
            return time.monotonic() - stopped_at[0] >= delay

        if not done():
            self._wait(stream, done, what)

    def _cmd_WS(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait for the axis (every axis without a number) to stop, then `nn` ms."""
        self._wait_stopped(stream, self._axes_or_all(xx), params, "WS")

    def _cmd_WP(self, xx, query, params, stream) -> None:  # noqa: N802
        """Wait until the axis reaches (or passes) position `nn`."""
        number = self._axis_number(xx)
        target = self._param(params) * self.unit_size(number)
        start = self.position(number)
        sign = 1.0 if target >= start else -1.0

        def reached() -> bool:
            here = self.position(number)
            moving = self.world.stage_axis(number).moving()
            return sign * (here - target) >= -1e-9 or not moving

        if not reached():
            self._wait(stream, reached, "WP")

    def _cmd_SL(self, xx, query, params, stream) -> None:  # noqa: N802
        """Left (negative) software limit."""
        self._limit(xx, query, params, "left")

    def _cmd_SR(self, xx, query, params, stream) -> None:  # noqa: N802
        """Right (positive) software limit."""
        self._limit(xx, query, params, "right")

    def _limit(self, xx, query, params, side: str) -> None:
        number = self._axis_number(xx)
        axis = self.axes[number]
        if query:
            self.reply(self._format(self._to_units(number, getattr(axis, side))))
            return
        value = self._param(params) * self.unit_size(number)
        if (side == "left" and value > 0) or (side == "right" and value < 0):
            raise EspError(7)
        setattr(axis, side, value)

    def _cmd_SK(self, xx, query, params, stream) -> None:  # noqa: N802
        """Slave axis jog velocity coefficients (two numbers)."""
        number = self._axis_number(xx)
        key = f"SK{number}"
        if query:
            values = self.extras.get(key, (0.0, 0.0))
            self.reply(", ".join(self._format(v) for v in values))
            return
        if len(params) < 2:
            raise EspError(38)
        self.extras[key] = (self._number(params[0]), self._number(params[1]))

    def _cmd_QR(self, xx, query, params, stream) -> None:  # noqa: N802
        """Reduce motor torque: after `nn1` ms idle, to `nn2` percent."""
        number = self._axis_number(xx)
        key = f"QR{number}"
        if query:
            values = self.extras.get(key, (0.0, 100.0))
            self.reply(", ".join(str(int(v)) for v in values))
            return
        if len(params) < 2:
            raise EspError(38)
        delay, percent = self._number(params[0]), self._number(params[1])
        if not (0 <= delay <= 60000 and 0 <= percent <= 100):
            raise EspError(7)
        self.extras[key] = (float(int(delay)), float(int(percent)))

    def _cmd_QD(self, xx, query, params, stream) -> None:  # noqa: N802
        """Update the motor driver with the settings given."""
        self._axis_number(xx)

    def _cmd_UF(self, xx, query, params, stream) -> None:  # noqa: N802
        """Update the servo filter with the gains given."""
        self._axis_number(xx)

    def _cmd_ZU(self, xx, query, params, stream) -> None:  # noqa: N802
        """ESP system configuration: bit n set when axis n+1 has an ESP stage."""
        value = sum(1 << (n - 1) for n in self.axes) if self.params.esp_stages else 0
        self.reply(f"{value:X}H")

    def _cmd_ZZ(self, xx, query, params, stream) -> None:  # noqa: N802
        """System configuration word."""
        if query:
            self.reply(f"{int(self.extras.get('ZZ', (0.0,))[0]):X}H")
            return
        self.extras["ZZ"] = (float(self._word(params)),)
