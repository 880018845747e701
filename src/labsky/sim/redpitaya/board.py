"""A simulated STEMlab 125-14 behind the stock SCPI command set (OS 2.05).

`Board` is the instrument's state (generators and their sweeps, acquisition
and deep memory, slow I/O, clock) and its command table: the patterns the
vendor's server registers in its 2024.3 release (`scpi-commands.cpp`), in
its order, so `SYSTem:Help?` lists the same. `Session` is what the server
keeps per connection (the error queue, data format). `ACQ:DATA:Units` is
global, as on the board, so one client switching to RAW changes what the
others get. Commands are executed one at a time (the server's global mutex).

What a STEMlab 125-14 lacks answers as on one: AC/DC coupling, the external
trigger level, the 50 ohm load setting and the PLL fail with `Command not
supported`, as do the split-trigger commands when `split_trigger` is off
(the 125-14's FPGA splits the trigger only from OS 2.07-48); the peripheral
buses and the LCR meter are registered but have nothing attached
(`peripherals`).
"""

from __future__ import annotations

import calendar
import re
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from labsky.sim.redpitaya import peripherals
from labsky.sim.redpitaya.acquire_commands import AcquireCommands
from labsky.sim.redpitaya.acquisition import HALF, Acquisition
from labsky.sim.redpitaya.bench import Bench, BenchParams
from labsky.sim.redpitaya.deep_memory import REGION_SIZE, DeepMemory
from labsky.sim.redpitaya.generate_commands import GenerateCommands
from labsky.sim.redpitaya.scpi import (
    CommandSet,
    ScpiError,
    choice,
    execution_error,
    fmt,
    integer,
    missing_value,
    not_supported,
    number,
    on_off,
    rp_error,
    server_error,
    split_message,
)
from labsky.sim.redpitaya.sweep import SweepController
from labsky.sim.redpitaya.waveforms import F_CLOCK, Generator
from labsky.sim.world import World

IDN = "REDPITAYA,INSTR,2024-09-10,2.05-441"
BOARD_NAME = "STEMlab 125-14 v1.0"
BOARD_ID = 1  # STEM_125_14_v1_0 in rp_hw-profiles.h
DIO_PINS = tuple(f"DIO{k}_{side}" for side in "PN" for k in range(8))
LED_PINS = tuple(f"LED{k}" for k in range(8))
#: The debouncers' default: 500 us of 8 ns samples.
DEBOUNCER_DEFAULT = 62500


@dataclass
class Session:
    """Per-connection SCPI context."""

    errors: deque = field(default_factory=lambda: deque(maxlen=32))
    data_format: str = "ASCII"
    esr: int = 0
    ese: int = 0
    sre: int = 0
    ques_event: int = 0
    ques_enable: int = 0

    def push(self, error: ScpiError) -> None:
        """Queue an error (sets `*STB?` bit 2 and ESR)."""
        for entry in (error, *error.also):
            self.errors.append(entry)
            self.esr |= 0x20 if entry.code < 0 else 0x08


@dataclass
class Daisy:
    """The daisy-chain settings (SATA connectors, DIO0_N trigger output)."""

    trigger_sync: bool = False
    clock_sync: bool = False
    trigger_out: bool = False
    trigger_out_source: str = "ADC"


class Board:
    """The board's state and its SCPI commands.

    Args:
        world: The simulated table (external trigger line, photodiode).
        bench: Wiring and physics of the inputs.
        ext_trigger_line: Name of the world's trigger line wired to DIO0_P.
        fill_time_scale: Real-time factor of acquisitions (see `Acquisition`).
        seed: Noise seed.
        split_trigger: Whether the FPGA can split the trigger per input.
        deep_memory_size: Bytes of RAM reserved for deep-memory acquisition.
        long_forms: Accept the SCPI long forms of abbreviated nodes.
    """

    def __init__(
        self,
        world: World,
        bench: BenchParams,
        ext_trigger_line: str | None = "redpitaya",
        fill_time_scale: float = 1.0,
        seed: int = 0,
        *,
        split_trigger: bool = True,
        deep_memory_size: int = REGION_SIZE,
        long_forms: bool = True,
    ):
        self.rng = np.random.default_rng(seed)
        self.generators = [Generator(), Generator()]
        self.bench = Bench(bench, self.generators, world, self.rng)
        line = world.trigger_line(ext_trigger_line) if ext_trigger_line else None
        self.acq = Acquisition(self.bench, line, fill_time_scale)
        self.deep = DeepMemory(self.acq, deep_memory_size)
        self.sweeps = SweepController(self.generators)
        self.bench.sweeps = self.sweeps
        self.split_supported = split_trigger
        self.units = "VOLTS"
        self.acq_debouncer = DEBOUNCER_DEFAULT
        self.gen_debouncer = DEBOUNCER_DEFAULT
        self.daisy = Daisy()
        self.clock_offset = 0.0  # seconds the board's clock is ahead of the host's
        self.dio_out = dict.fromkeys(DIO_PINS, False)
        self.pins = dict.fromkeys(DIO_PINS + LED_PINS, False)
        self.leds = {"MMC": True, "HB": True, "ETH": True}
        self.commands = CommandSet(long_forms)
        self._register()

    # -- execution --------------------------------------------------------

    def execute(self, session: Session, message: str) -> list[bytes]:
        """Run one message (a line without its CR LF); return the replies.

        A header after `;` is relative to the path of the previous known
        header (SCPI compound headers, as the vendor's parser composes them):
        `SOUR1:FREQ:FIX 1000;VOLT 0.5` is `SOUR1:FREQ:VOLT`, and a leading
        `:` starts again at the root. Common (`*`) commands neither take nor
        leave a path.
        """
        replies: list[bytes] = []
        previous = ""
        for header, params in split_message(message):
            if previous and not header.startswith((":", "*")) and ":" in previous:
                header = previous[: previous.rindex(":") + 1] + header
            try:
                command, numbers = self.commands.find(header)
                if not header.startswith("*"):
                    previous = header
                suffix = next((n for n in numbers if n != 1), 1)
                reply = command.handler(session, suffix, params, header)
            except ScpiError as error:
                session.push(error)
                continue
            if reply is not None:
                replies.append(reply if isinstance(reply, bytes) else reply.encode())
        return replies

    # -- helpers the command groups share ----------------------------------

    @staticmethod
    def param(
        params: list[str],
        header: str,
        index: int = 0,
        text: str = "Missing first parameter.",
    ) -> str:
        """Parameter `index`, or the server's missing-parameter errors."""
        if len(params) <= index or not params[index]:
            raise missing_value(header, text)
        return params[index]

    def uint(
        self,
        params: list[str],
        header: str,
        index: int = 0,
        text: str = "Missing first parameter.",
    ) -> int:
        """An unsigned integer parameter."""
        value = integer(self.param(params, header, index, text))
        if value < 0:
            raise missing_value(header, text)
        return value

    def int_param(self, params: list[str], header: str, index: int = 0) -> int:
        """A signed integer parameter."""
        return integer(self.param(params, header, index))

    @staticmethod
    def on_off(value: bool) -> str:
        """A boolean as the server's mnemonics say it."""
        return "ON" if value else "OFF"

    @staticmethod
    def _channel(n: int, header: str) -> int:
        if n not in (1, 2):
            # RP_ParseChArgv*: logged critical, with the API's code 0
            raise ScpiError(9500, f"*{header} Invalid channel number")
        return n

    def adc_channel(self, n: int, header: str) -> int:
        """A fast input's number from a header's suffix."""
        return self._channel(n, header)

    def dac_channel(self, n: int, header: str) -> int:
        """A fast output's number from a header's suffix."""
        return self._channel(n, header)

    def start_generator(self, index: int, t: float) -> None:
        """Start output `index` from the beginning of its waveform at `t`."""
        self.generators[index].start(t)
        self.sweeps.generator_started(index, t)
        self.acq.awg_started(t + 2 / F_CLOCK)

    # -- the command table ------------------------------------------------

    def _register(self) -> None:
        add = self.commands.add
        for pattern, handler in (
            ("*CLS", self._cls),
            ("*ESE", lambda s, n, p, h: setattr(s, "ese", self.int_param(p, h))),
            ("*ESE?", lambda s, *_: str(s.ese)),
            ("*ESR?", self._esr),
            ("*IDN?", lambda *_: IDN),
            ("*OPC", lambda *_: None),
            ("*OPC?", lambda *_: "1"),
            ("*RST", lambda *_: None),  # the server's reset hook only logs
            ("*SRE", lambda s, n, p, h: setattr(s, "sre", self.int_param(p, h))),
            ("*SRE?", lambda s, *_: str(s.sre)),
            ("*STB?", lambda s, *_: str(4 if s.errors else 0)),
            ("*TST?", lambda *_: "0"),
            ("*WAI", lambda *_: None),
            ("SYSTem:ERRor[:NEXT]?", self._next_error),
            ("SYSTem:ERRor:COUNt?", lambda s, *_: str(len(s.errors))),
            ("SYSTem:VERSion?", lambda *_: IDN.split(",")[3]),
            ("SYSTem:BRD:ID?", lambda *_: str(BOARD_ID)),
            ("SYSTem:BRD:Name?", lambda *_: BOARD_NAME),
            ("SYSTem:Help?", self._help),
            ("STATus:QUEStionable[:EVENt]?", self._questionable),
            ("STATus:QUEStionable:ENABle", self._set_ques_enable),
            ("STATus:QUEStionable:ENABle?", lambda s, *_: str(s.ques_enable)),
            ("STATus:PRESet", self._preset),
            ("SYSTem:COMMunication:TCPIP:CONTROL?", self._tcpip_control),
            ("SYSTem:TIME", self._set_time),
            ("SYSTem:TIME?", lambda *_: self._clock("%H:%M:%S")),
            ("SYSTem:DATE", self._set_date),
            ("SYSTem:DATE?", lambda *_: self._clock("%Y-%m-%d")),
            ("RP:INit", self._init),
            ("RP:REset", self._reset_all),
            ("RP:RELease", lambda *_: None),
            ("RP:DIg[:loop]", self._digital_loop),
            ("RP:LOGmode", self._log_mode),
            ("RP:PLL:ENable", self._set_pll),
            ("RP:PLL:ENable?", self._no_pll),
            ("RP:PLL:STATE?", self._no_pll),
        ):
            add(pattern, handler)
        self._register_slow(add)
        self._register_daisy(add)
        AcquireCommands(self).register(add)
        GenerateCommands(self).register(add)
        peripherals.register(add, "UART")
        for led in self.leds:
            add(f"LED:{led}", self._led_setter(led))
            add(f"LED:{led}?", lambda *_, led=led: self.on_off(self.leds[led]))
        for family in ("SPI", "I2C", "CAN", "LCR"):
            peripherals.register(add, family)

    def _register_slow(self, add) -> None:
        for pattern, handler in (
            ("DIG:RST", self._dig_rst),
            ("DIG:PIN", self._set_pin),
            ("DIG:PIN?", self._get_pin),
            ("DIG:PIN:DIR", self._set_direction),
            ("DIG:PIN:DIR?", self._get_direction),
            ("ANALOG:RST", self._analog_rst),
            ("ANALOG:PIN", self._set_analog),
            ("ANALOG:PIN?", self._get_analog),
        ):
            add(pattern, handler)

    def _register_daisy(self, add) -> None:
        d = self.daisy
        flag = self._daisy_flag
        for pattern, handler in (
            ("DAISY:SYNC:TRig", flag("trigger_sync")),
            ("DAISY:SYNC:TRig?", lambda *_: self.on_off(d.trigger_sync)),
            ("DAISY:SYNC:CLK", flag("clock_sync")),
            ("DAISY:SYNC:CLK?", lambda *_: self.on_off(d.clock_sync)),
            ("DAISY:TRIG_O:ENable", flag("trigger_out")),
            ("DAISY:TRig:Out:ENable", flag("trigger_out")),
            ("DAISY:TRIG_O:ENable?", lambda *_: self.on_off(d.trigger_out)),
            ("DAISY:TRig:Out:ENable?", lambda *_: self.on_off(d.trigger_out)),
            ("DAISY:TRIG_O:SOUR", self._set_trigger_out_source),
            ("DAISY:TRig:Out:SOUR", self._set_trigger_out_source),
            ("DAISY:TRIG_O:SOUR?", lambda *_: d.trigger_out_source),
            ("DAISY:TRig:Out:SOUR?", lambda *_: d.trigger_out_source),
        ):
            add(pattern, handler)

    # -- system -----------------------------------------------------------

    def _cls(self, session: Session, *_: object) -> None:
        session.errors.clear()
        session.esr = 0

    def _esr(self, session: Session, *_: object) -> str:
        value, session.esr = session.esr, 0
        return str(value)

    def _next_error(self, session: Session, *_: object) -> str:
        # Red Pitaya entries first, then the parser's (standard SCPI codes)
        for error in list(session.errors):
            if error.code >= 8000:
                session.errors.remove(error)
                return f'{error.code},"{error.text}"'
        if session.errors:
            error = session.errors.popleft()
            return f'{error.code},"{error.text}"'
        return '0,"No error"'

    def _help(self, *_: object) -> str:
        return "\n".join(c.pattern for c in self.commands.commands)

    def _questionable(self, session: Session, *_: object) -> str:
        value, session.ques_event = session.ques_event, 0
        return str(value)

    def _set_ques_enable(self, s: Session, n: int, params: list[str], h: str) -> None:
        s.ques_enable = self.int_param(params, h) & 0xFFFF

    def _preset(self, session: Session, *_: object) -> None:
        session.ques_enable = 0

    def _tcpip_control(self, *_: object) -> str:
        raise execution_error()  # not implemented by the vendor's server

    def _now(self) -> float:
        return time.time() + self.clock_offset

    def _clock(self, pattern: str) -> str:
        return time.strftime(pattern, time.gmtime(self._now()))

    @staticmethod
    def _fields(params: list[str], header: str, separator: str) -> list[int | None]:
        """`sscanf("%d<sep>%d<sep>%d")` of the first parameter (quotes removed)."""
        if not params or not params[0]:
            raise server_error(header, -200, "Unable to read parameter.")
        text = params[0].strip().strip("'\"")
        parts: list[int | None] = []
        for part in text.split(separator)[:3]:
            found = re.match(r"\s*([-+]?\d+)", part)
            if found is None:
                break
            parts.append(int(found.group(1)))
            if found.end() != len(part):
                break
        return parts + [None] * (3 - len(parts))

    def _set_time(self, s: Session, n: int, params: list[str], h: str) -> None:
        hours, minutes, seconds = self._fields(params, h, ":")
        for value, name, top in (
            (hours, "HOURS", 23),
            (minutes, "MINUTES", 59),
            (seconds, "SECONDS", 59),
        ):
            if value is None or not 0 <= value <= top:
                raise server_error(
                    h,
                    -200,
                    f"Invalid value for the {name}. Parameter must be between 0 "
                    f"and {top}.",
                )
        assert hours is not None and minutes is not None and seconds is not None
        now = time.gmtime(self._now())
        new = calendar.timegm(now[:3] + (hours, minutes, seconds))
        self.clock_offset = new - time.time()

    def _set_date(self, s: Session, n: int, params: list[str], h: str) -> None:
        year, month, day = self._fields(params, h, "-")
        if year is None or not 1900 <= year <= 3000:
            raise server_error(
                h,
                -200,
                "Invalid value for the YEAR. The value must be between 1900 - 3000.",
            )
        if month is None or not 1 <= month <= 12:
            raise server_error(
                h,
                -200,
                "Invalid value for the MONTH. Parameter must be between 1 and 12.",
            )
        if day is None or not 1 <= day <= 31:
            raise server_error(
                h,
                -200,
                "Invalid value for the DAY. Parameter must be between 1 and 31.",
            )
        now = time.gmtime(self._now())
        new = calendar.timegm((year, month, day) + now[3:6])
        self.clock_offset = new - time.time()

    def _init(self, *_: object) -> None:
        """`RP:INit`: the API's `rp_Init`, which resets the hardware."""
        self._hardware_reset()

    def _reset_all(self, session: Session, *_: object) -> None:
        """`RP:REset`: acquisition (as ACQ:RST), slow I/O and generators."""
        self._hardware_reset()
        self.units = "VOLTS"
        session.data_format = "ASCII"

    def _hardware_reset(self) -> None:
        self.acq.reset()
        self.deep.reset()
        self._analog_rst()
        self._dig_rst()
        for index in range(2):
            self.generators[index] = Generator()

    def _digital_loop(self, *_: object) -> None:
        self.bench.digital_loopback = True

    def _log_mode(self, s: Session, n: int, params: list[str], h: str) -> None:
        choice(self.param(params, h), ("OFF", "CONSOLE", "SYSLOG"))

    def _set_pll(self, s: Session, n: int, params: list[str], h: str) -> None:
        choice(self.param(params, h), ("OFF", "ON"))
        raise not_supported(h, "enabled mode")

    def _no_pll(self, s: Session, n: int, params: list[str], h: str) -> str:
        raise not_supported(h, "get state")

    def _daisy_flag(self, attribute: str):
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            value = choice(self.param(params, h), ("OFF", "ON"))
            setattr(self.daisy, attribute, value == "ON")

        return setter

    def _set_trigger_out_source(
        self, s: Session, n: int, params: list[str], h: str
    ) -> None:
        self.daisy.trigger_out_source = choice(self.param(params, h), ("ADC", "DAC"))

    # -- slow I/O ---------------------------------------------------------

    def _set_analog(self, s: Session, n: int, params: list[str], h: str) -> None:
        pin = self.param(params, h).upper()
        value = number(self.param(params, h, 1))
        if pin not in ("AOUT0", "AOUT1", "AOUT2", "AOUT3"):
            raise rp_error(h, "set analog output", rp_code=11)
        if not 0 <= value <= 1.8:
            raise rp_error(h, "set analog output")
        self.bench.aout[int(pin[-1])] = value

    def _get_analog(self, s: Session, n: int, params: list[str], h: str) -> str:
        pin = self.param(params, h).upper()
        if pin in ("AIN0", "AIN1", "AIN2", "AIN3"):
            return fmt(round(self.bench.slow(int(pin[-1])), 4))
        if pin in ("AOUT0", "AOUT1", "AOUT2", "AOUT3"):
            return fmt(self.bench.aout[int(pin[-1])])
        raise rp_error(h, "get analog pin", rp_code=11)

    def _analog_rst(self, *_: object) -> None:
        self.bench.aout[:] = [0.0, 0.0, 0.0, 0.0]

    def _pin(self, params: list[str], index: int, header: str) -> str:
        pin = self.param(params, header, index).upper()
        if pin not in self.pins:
            raise rp_error(header, "use pin", rp_code=11)
        return pin

    def _set_direction(self, s: Session, n: int, params: list[str], h: str) -> None:
        direction = choice(self.param(params, h), ("IN", "OUT"))
        pin = self._pin(params, 1, h)
        if pin.startswith("LED"):
            raise rp_error(h, "set direction", rp_code=11)
        self.dio_out[pin] = direction == "OUT"

    def _get_direction(self, s: Session, n: int, params: list[str], h: str) -> str:
        pin = self._pin(params, 0, h)
        return "OUT" if pin.startswith("LED") or self.dio_out[pin] else "IN"

    def _set_pin(self, s: Session, n: int, params: list[str], h: str) -> None:
        pin = self._pin(params, 0, h)
        value = integer(self.param(params, h, 1))
        if value not in (0, 1):
            raise rp_error(h, "set pin")
        if pin.startswith("DIO") and not self.dio_out[pin]:
            raise rp_error(h, "set pin: it is an input", rp_code=11)
        self.pins[pin] = bool(value)

    def _get_pin(self, s: Session, n: int, params: list[str], h: str) -> str:
        pin = self._pin(params, 0, h)
        return "1" if self.pins[pin] else "0"

    def _dig_rst(self, *_: object) -> None:
        for pin in self.pins:
            self.pins[pin] = False
        for pin in self.dio_out:
            self.dio_out[pin] = False

    def _led_setter(self, led: str):
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            self.leds[led] = on_off(self.param(params, h))

        return setter


def fill_seconds(decimation: int, delay: int) -> float:
    """Seconds the buffer fills after a trigger: (8192 + DLY) decimation / f_clk."""
    return (HALF + max(delay, -HALF)) * decimation / F_CLOCK
