"""A simulated STEMlab 125-14 behind the stock SCPI command set.

`Board` is the instrument's state (generators, acquisition, slow I/O) and
its command table; `Session` is what the server keeps per connection (the
error queue, data format and byte order). `ACQ:DATA:Units` is global, as on
the board, so one client switching to RAW changes what the others get.
Commands are executed one at a time (the server's global mutex).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from labsky.sim.redpitaya.acquisition import (
    DECIMATIONS,
    HALF,
    TRIGGER_SOURCES,
    Acquisition,
    N,
)
from labsky.sim.redpitaya.bench import Bench, BenchParams
from labsky.sim.redpitaya.scpi import (
    CommandSet,
    ScpiError,
    choice,
    fmt,
    integer,
    missing_parameter,
    number,
    on_off,
    rp_error,
    split_message,
    undefined_header,
)
from labsky.sim.redpitaya.waveforms import F_CLOCK, FUNCTIONS, NYQUIST, Generator
from labsky.sim.world import World

IDN = "REDPITAYA,INSTR,2024-09-10,2.05-441"
BOARD_NAME = "STEMlab 125-14 v1.0"
DIO_PINS = tuple(f"DIO{k}_{side}" for side in "PN" for k in range(8))
LED_PINS = tuple(f"LED{k}" for k in range(8))


@dataclass
class Session:
    """Per-connection SCPI context."""

    errors: deque = field(default_factory=lambda: deque(maxlen=32))
    data_format: str = "ASCII"
    byte_order: str = "BEND"
    ret_on_error: bool = False
    esr: int = 0
    ese: int = 0
    sre: int = 0

    def push(self, error: ScpiError) -> None:
        """Queue an error (sets `*STB?` bit 2 and ESR)."""
        self.errors.append(error)
        self.esr |= 0x20 if error.code < 0 else 0x08


class Board:
    """The board's state and its SCPI commands.

    Args:
        world: The simulated table (external trigger line, photodiode).
        bench: Wiring and physics of the inputs.
        ext_trigger_line: Name of the world's trigger line wired to DIO0_P.
        fill_time_scale: Real-time factor of acquisitions (see `Acquisition`).
        seed: Noise seed.
    """

    def __init__(
        self,
        world: World,
        bench: BenchParams,
        ext_trigger_line: str | None = "redpitaya",
        fill_time_scale: float = 1.0,
        seed: int = 0,
    ):
        self.rng = np.random.default_rng(seed)
        self.generators = [Generator(), Generator()]
        self.bench = Bench(bench, self.generators, world, self.rng)
        line = world.trigger_line(ext_trigger_line) if ext_trigger_line else None
        self.acq = Acquisition(self.bench, line, fill_time_scale)
        self.units = "VOLTS"
        self.dio_out = dict.fromkeys(DIO_PINS, False)
        self.pins = dict.fromkeys(DIO_PINS + LED_PINS, False)
        self.leds = {"MMC": True, "HB": True, "ETH": True}
        self.commands = CommandSet()
        self._register()

    # -- execution --------------------------------------------------------

    def execute(self, session: Session, message: str) -> list[bytes]:
        """Run one message (a line without its CR LF); return the replies."""
        replies: list[bytes] = []
        for header, params in split_message(message):
            try:
                command, numbers = self.commands.find(header)
                suffix = next((n for n in numbers if n != 1), 1)
                reply = command.handler(session, suffix, params, header)
            except ScpiError as error:
                session.push(error)
                if session.ret_on_error and header.endswith("?"):
                    replies.append(b"")
                continue
            if reply is not None:
                replies.append(reply if isinstance(reply, bytes) else reply.encode())
        return replies

    # -- the command table ------------------------------------------------

    def _register(self) -> None:
        add = self.commands.add
        for pattern, handler in (
            ("*IDN?", lambda *_: IDN),
            ("*CLS", self._cls),
            ("*STB?", lambda s, *_: str(4 if s.errors else 0)),
            ("*ESR?", self._esr),
            ("*ESE", lambda s, n, p, h: setattr(s, "ese", self._int(p))),
            ("*ESE?", lambda s, *_: str(s.ese)),
            ("*SRE", lambda s, n, p, h: setattr(s, "sre", self._int(p))),
            ("*SRE?", lambda s, *_: str(s.sre)),
            ("*OPC", lambda *_: None),
            ("*OPC?", lambda *_: "1"),
            ("*WAI", lambda *_: None),
            ("*TST?", lambda *_: "0"),
            ("*RST", self._rst),
            ("SYSTem:ERRor[:NEXT]?", self._next_error),
            ("SYSTem:ERRor:COUNt?", lambda s, *_: str(len(s.errors))),
            ("SYSTem:BRD:Name?", lambda *_: BOARD_NAME),
            ("SYSTem:BRD:ID?", lambda *_: "1"),
            ("SYSTem:VERSion?", lambda *_: IDN.split(",")[3]),
            ("SYSTem:HELP?", self._help),
            ("SYSTem:TIME?", lambda *_: time.strftime("%H:%M:%S")),
            ("SYSTem:DATE?", lambda *_: time.strftime("%Y-%m-%d")),
            ("RP:RET_ON_ERROR", self._ret_on_error),
            ("RP:DIg[:LOOP]", self._digital_loop),
            ("RP:LOGmode", lambda *_: None),
        ):
            add(pattern, handler)
        self._register_acquisition(add)
        self._register_generator(add)
        self._register_slow(add)

    def _register_acquisition(self, add) -> None:  # noqa: ANN001
        acq = self.acq
        for pattern, handler in (
            ("ACQ:START", lambda *_: acq.start()),
            ("ACQ:STOP", lambda *_: acq.stop()),
            ("ACQ:RST", self._acq_rst),
            ("ACQ:DEC", self._set_decimation),
            ("ACQ:DEC?", lambda *_: str(acq.settings.decimation)),
            ("ACQ:DEC:Factor", self._set_decimation_factor),
            ("ACQ:DEC:Factor?", lambda *_: str(acq.settings.decimation)),
            ("ACQ:SRATe?", lambda *_: "%9.0f Hz" % (F_CLOCK / acq.settings.decimation)),
            ("ACQ:AVG", self._set_average),
            ("ACQ:AVG?", lambda *_: "ON" if acq.settings.average else "OFF"),
            ("ACQ:TRig", self._arm),
            ("ACQ:TRig:STAT?", lambda *_: acq.stat()),
            ("ACQ:TRig:FILL?", lambda *_: "1" if acq.filled() else "0"),
            ("ACQ:TRig:LEV", self._set_level),
            ("ACQ:TRig:LEV?", lambda *_: fmt(acq.settings.level[0])),
            ("ACQ:TRig:LEV:CH#", self._set_level),
            ("ACQ:TRig:LEV:CH#?", lambda s, n, *_: fmt(acq.settings.level[n - 1])),
            ("ACQ:TRig:HYST", self._set_hysteresis),
            ("ACQ:TRig:HYST?", lambda *_: fmt(acq.settings.hysteresis)),
            ("ACQ:TRig:DLY", self._set_delay),
            ("ACQ:TRig:DLY?", lambda *_: str(acq.settings.delay)),
            ("ACQ:TRig:DLY:NS", self._set_delay_ns),
            ("ACQ:TRig:DLY:NS?", lambda *_: fmt(acq.settings.delay * acq.dt * 1e9)),
            ("ACQ:SOUR#:GAIN", self._set_gain),
            ("ACQ:SOUR#:GAIN?", lambda s, n, *_: acq.settings.gain[self._ch(n) - 1]),
            ("ACQ:DATA:Units", self._set_units),
            ("ACQ:DATA:Units?", lambda *_: self.units),
            ("ACQ:DATA:FORMAT", self._set_format),
            ("ACQ:DATA:FORMAT?", lambda s, *_: s.data_format),
            ("ACQ:DATA:BYTE:ORDER", self._set_byte_order),
            ("ACQ:DATA:BYTE:ORDER?", lambda s, *_: s.byte_order),
            ("ACQ:SOUR#:DATA?", self._data),
            ("ACQ:SOUR#:DATA:STArt:N?", self._data_start_n),
            ("ACQ:SOUR#:DATA:STArt:End?", self._data_start_end),
            ("ACQ:SOUR#:DATA:Old:N?", self._data_old),
            ("ACQ:SOUR#:DATA:LATest:N?", self._data_latest),
            ("ACQ:BUF:SIZE?", lambda *_: str(N)),
            ("ACQ:WPOS?", lambda *_: str(acq.write_pointer())),
            ("ACQ:TPOS?", lambda *_: str(acq.trigger_pointer())),
        ):
            add(pattern, handler)

    def _register_generator(self, add) -> None:  # noqa: ANN001
        # both-channel forms first: `OUTPUT:STATE` must not match `OUTPUT#:STATE`
        for pattern, handler in (
            ("GEN:RST", self._gen_rst),
            ("OUTPUT:STATE", self._output_both),
            ("SOUR:TRig:INT", self._trigger_both),
            ("PHAS:ALIGN", self._trigger_both),
            ("OUTPUT#:STATE", self._set_output),
            ("OUTPUT#:STATE?", lambda s, n, *_: self._on(self._gen(n).output)),
            ("SOUR#:TRig:INT", self._trigger_one),
            ("SOUR#:TRig:SOUR", self._set_gen_trigger_source),
            ("SOUR#:TRig:SOUR?", lambda s, n, *_: self._gen(n).trigger_source),
            ("SOUR#:FUNC", self._set_function),
            ("SOUR#:FUNC?", lambda s, n, *_: self._gen(n).function),
            ("SOUR#:FREQ:FIX", self._set_frequency),
            ("SOUR#:FREQ:FIX?", lambda s, n, *_: fmt(self._gen(n).frequency)),
            ("SOUR#:VOLT", self._set_amplitude),
            ("SOUR#:VOLT?", lambda s, n, *_: fmt(self._gen(n).amplitude)),
            ("SOUR#:VOLT:OFFS", self._set_offset),
            ("SOUR#:VOLT:OFFS?", lambda s, n, *_: fmt(self._gen(n).offset)),
            ("SOUR#:PHAS", self._set_phase),
            ("SOUR#:PHAS?", lambda s, n, *_: fmt(self._gen(n).phase)),
            ("SOUR#:DCYC", self._set_duty),
            ("SOUR#:DCYC?", lambda s, n, *_: fmt(self._gen(n).duty)),
            ("SOUR#:TRAC:DATA:DATA", self._set_arbitrary),
            ("SOUR#:TRAC:DATA:DATA?", self._get_arbitrary),
            ("SOUR#:BURS:STAT", self._set_burst),
            ("SOUR#:BURS:STAT?", lambda s, n, *_: self._gen(n).burst),
            ("SOUR#:BURS:NCYC", self._burst_int("burst_cycles", 1, 65536)),
            ("SOUR#:BURS:NCYC?", lambda s, n, *_: str(self._gen(n).burst_cycles)),
            ("SOUR#:BURS:NOR", self._burst_int("burst_count", 1, 65536)),
            ("SOUR#:BURS:NOR?", lambda s, n, *_: str(self._gen(n).burst_count)),
            ("SOUR#:BURS:INT:PER", self._set_burst_period),
            ("SOUR#:BURS:INT:PER?", lambda s, n, *_: fmt(self._gen(n).burst_period_us)),
            ("SOUR#:BURS:INITValue", self._burst_level("init_value")),
            ("SOUR#:BURS:INITValue?", lambda s, n, *_: fmt(self._gen(n).init_value)),
            ("SOUR#:BURS:LASTValue", self._burst_level("last_value")),
            ("SOUR#:BURS:LASTValue?", lambda s, n, *_: fmt(self._gen(n).last_value)),
        ):
            add(pattern, handler)

    def _register_slow(self, add) -> None:  # noqa: ANN001
        for pattern, handler in (
            ("ANALOG:PIN", self._set_analog),
            ("ANALOG:PIN?", self._get_analog),
            ("ANALOG:RST", self._analog_rst),
            ("DIG:PIN:DIR", self._set_direction),
            ("DIG:PIN:DIR?", self._get_direction),
            ("DIG:PIN", self._set_pin),
            ("DIG:PIN?", self._get_pin),
            ("DIG:RST", self._dig_rst),
        ):
            add(pattern, handler)
        for led in self.leds:
            add(f"LED:{led}", self._led_setter(led))
            add(f"LED:{led}?", lambda *_, led=led: self._on(self.leds[led]))

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _param(params: list[str], index: int = 0) -> str:
        if len(params) <= index:
            raise missing_parameter()
        return params[index]

    def _int(self, params: list[str]) -> int:
        return integer(self._param(params))

    @staticmethod
    def _on(value: bool) -> str:
        return "ON" if value else "OFF"

    @staticmethod
    def _ch(n: int) -> int:
        if n not in (1, 2):
            raise undefined_header()
        return n

    def _gen(self, n: int) -> Generator:
        return self.generators[self._ch(n) - 1]

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
            if error.code >= 9000:
                session.errors.remove(error)
                return f'{error.code},"{error.text}"'
        if session.errors:
            error = session.errors.popleft()
            return f'{error.code},"{error.text}"'
        return '0,"No error"'

    def _help(self, *_: object) -> str:
        return "\n".join(c.pattern for c in self.commands.commands)

    def _rst(self, session: Session, *_: object) -> None:
        self._gen_rst()
        self._acq_rst(session)

    def _ret_on_error(
        self, session: Session, n: int, params: list[str], h: str
    ) -> None:
        session.ret_on_error = on_off(self._param(params))

    def _digital_loop(self, *_: object) -> None:
        self.bench.digital_loopback = True

    # -- acquisition ------------------------------------------------------

    def _acq_rst(self, session: Session, *_: object) -> None:
        self.acq.reset()
        self.units = "VOLTS"
        session.data_format = "ASCII"

    def _set_decimation(
        self, s: Session, n: int, params: list[str], header: str
    ) -> None:
        value = number(self._param(params))
        if value not in DECIMATIONS:
            raise rp_error(header, "set decimation")
        self.acq.settings.decimation = int(value)

    def _set_decimation_factor(
        self, s: Session, n: int, params: list[str], header: str
    ) -> None:
        value = self._int(params)
        if not (value in (1, 2, 4, 8) or 16 <= value <= 65536):
            raise rp_error(header, "set decimation")
        self.acq.settings.decimation = value

    def _set_average(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.acq.settings.average = on_off(self._param(params))

    def _arm(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.acq.arm(choice(self._param(params), TRIGGER_SOURCES))

    def _set_level(self, s: Session, n: int, params: list[str], header: str) -> None:
        value = number(self._param(params))
        if abs(value) > 20:
            raise rp_error(header, "set trigger level")
        channels = (n,) if ":CH" in header.upper() else (1, 2)
        for channel in channels:
            self.acq.settings.level[self._ch(channel) - 1] = value

    def _set_hysteresis(
        self, s: Session, n: int, params: list[str], header: str
    ) -> None:
        value = number(self._param(params))
        if not 0 <= value <= 1:
            raise rp_error(header, "set trigger hysteresis")
        self.acq.settings.hysteresis = value

    def _set_delay(self, s: Session, n: int, params: list[str], header: str) -> None:
        value = self._int(params)
        if not -(2**31) <= value < 2**31:
            raise rp_error(header, "set trigger delay")
        self.acq.settings.delay = max(value, -HALF)

    def _set_delay_ns(self, s: Session, n: int, params: list[str], header: str) -> None:
        value = number(self._param(params))
        self.acq.settings.delay = max(int(round(value * 1e-9 / self.acq.dt)), -HALF)

    def _set_gain(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.acq.settings.gain[self._ch(n) - 1] = choice(
            self._param(params), ("LV", "HV")
        )

    def _set_units(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.units = choice(self._param(params), ("VOLTS", "RAW"))

    def _set_format(self, s: Session, n: int, params: list[str], h: str) -> None:
        s.data_format = choice(self._param(params), ("ASCII", "BIN"))

    def _set_byte_order(self, s: Session, n: int, params: list[str], h: str) -> None:
        s.byte_order = choice(self._param(params), ("BEND", "LEND"))

    def _block(self, session: Session, channel: int, start: int, count: int) -> bytes:
        """Samples from `start` (circular, oldest first), as the server sends them."""
        index = (np.arange(count) + start) % N
        if self.units == "RAW":
            values = self.acq.codes(channel)[index]
        else:
            values = self.acq.volts(channel)[index]
        if session.data_format == "ASCII":
            if self.units == "RAW":
                body = ",".join(map(str, values.tolist()))
            else:
                body = ",".join(f"{v:f}" for v in values.tolist())
            return ("{" + body + "}").encode()
        order = ">" if session.byte_order == "BEND" else "<"
        kind = "i2" if self.units == "RAW" else "f4"
        payload = values.astype(order + kind).tobytes()
        length = str(len(payload))
        return b"#" + str(len(length)).encode() + length.encode() + payload

    def _data(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        return self._block(s, self._ch(n), 0, N)

    def _oldest(self) -> int:
        return (self.acq.write_pointer() + 1) % N

    def _data_start_n(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        start, count = self._int(params), integer(self._param(params, 1))
        if not (0 <= start < N and 0 < count <= N):
            raise rp_error(h, "get data")
        return self._block(s, self._ch(n), (start - self._oldest()) % N, count)

    def _data_start_end(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        start, end = self._int(params), integer(self._param(params, 1))
        if not (0 <= start < N and 0 <= end < N):
            raise rp_error(h, "get data")
        count = (end - start) % N + 1
        return self._block(s, self._ch(n), (start - self._oldest()) % N, count)

    def _data_old(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        count = self._int(params)
        if not 0 < count <= N:
            raise rp_error(h, "get data")
        return self._block(s, self._ch(n), 0, count)

    def _data_latest(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        count = self._int(params)
        if not 0 < count <= N:
            raise rp_error(h, "get data")
        return self._block(s, self._ch(n), N - count, count)

    # -- generator --------------------------------------------------------

    def _gen_rst(self, *_: object) -> None:
        for index in range(2):
            self.generators[index] = Generator()
        self.bench.generators[:] = self.generators

    def _set_output(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n)
        on = on_off(self._param(params))
        if on != generator.output:
            generator.changing(time.monotonic())
            generator.output = on

    def _output_both(self, s: Session, n: int, params: list[str], h: str) -> None:
        for channel in (1, 2):
            self._set_output(s, channel, params, h)

    def _trigger_one(self, s: Session, n: int, params: list[str], h: str) -> None:
        self._start(self._gen(n), time.monotonic())

    def _trigger_both(self, *_: object) -> None:
        now = time.monotonic()
        for generator in self.generators:
            self._start(generator, now)

    def _start(self, generator: Generator, t: float) -> None:
        generator.start(t)
        self.acq.awg_started(t + 2 / F_CLOCK)

    def _set_gen_trigger_source(
        self, s: Session, n: int, params: list[str], h: str
    ) -> None:
        value = choice(self._param(params), ("INT", "EXT_PE", "EXT_NE", "GATED"))
        if value == "GATED":
            raise rp_error(h, "set trigger source")
        self._gen(n).trigger_source = value

    def _set_function(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n)
        value = choice(self._param(params), FUNCTIONS)
        generator.changing(time.monotonic())
        generator.function = value

    def _set_frequency(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self._param(params))
        if not 0 < value <= NYQUIST:
            raise rp_error(h, "set frequency")
        self._gen(n).retune(time.monotonic(), value)

    def _check_range(
        self, amplitude: float, offset: float, header: str, what: str
    ) -> None:
        if abs(amplitude) + abs(offset) > 1.0 + 1e-9:
            raise rp_error(header, what)

    def _set_amplitude(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n)
        value = number(self._param(params))
        self._check_range(value, generator.offset, h, "set amplitude")
        generator.changing(time.monotonic())
        generator.amplitude = value

    def _set_offset(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n)
        value = number(self._param(params))
        self._check_range(generator.amplitude, value, h, "set offset")
        generator.changing(time.monotonic())
        generator.offset = value

    def _set_phase(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self._param(params))
        if not -360 <= value <= 360:
            raise rp_error(h, "set phase")
        generator = self._gen(n)
        generator.changing(time.monotonic())
        generator.phase = value

    def _set_duty(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self._param(params))
        if not 0 <= value <= 1:
            raise rp_error(h, "set duty cycle")
        generator = self._gen(n)
        generator.changing(time.monotonic())
        generator.duty = value

    def _set_arbitrary(self, s: Session, n: int, params: list[str], h: str) -> None:
        values = tuple(number(p) for p in params)
        if not values or len(values) > N or max(abs(v) for v in values) > 1:
            raise rp_error(h, "set arbitrary waveform")
        generator = self._gen(n)
        generator.changing(time.monotonic())
        generator.arbitrary = values

    def _get_arbitrary(self, s: Session, n: int, params: list[str], h: str) -> str:
        return ",".join(fmt(v) for v in self._gen(n).arbitrary)

    def _set_burst(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n)
        generator.changing(time.monotonic())
        generator.burst = choice(self._param(params), ("CONTINUOUS", "BURST", "STREAM"))

    def _burst_int(self, attribute: str, low: int, high: int):  # noqa: ANN202
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            value = self._int(params)
            if not low <= value <= high:
                raise rp_error(h, f"set {attribute.replace('_', ' ')}")
            setattr(self._gen(n), attribute, value)

        return setter

    def _set_burst_period(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self._param(params))
        if not 1 <= value <= 500e6:
            raise rp_error(h, "set burst period")
        self._gen(n).burst_period_us = value

    def _burst_level(self, attribute: str):  # noqa: ANN202
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            value = number(self._param(params))
            if abs(value) > 1:
                raise rp_error(h, f"set {attribute.replace('_', ' ')}")
            setattr(self._gen(n), attribute, value)

        return setter

    # -- slow I/O ---------------------------------------------------------

    def _set_analog(self, s: Session, n: int, params: list[str], h: str) -> None:
        pin = self._param(params).upper()
        value = number(self._param(params, 1))
        if pin not in ("AOUT0", "AOUT1", "AOUT2", "AOUT3"):
            raise rp_error(h, "set analog output", rp_code=11)
        if not 0 <= value <= 1.8:
            raise rp_error(h, "set analog output")
        self.bench.aout[int(pin[-1])] = value

    def _get_analog(self, s: Session, n: int, params: list[str], h: str) -> str:
        pin = self._param(params).upper()
        if pin in ("AIN0", "AIN1", "AIN2", "AIN3"):
            return fmt(round(self.bench.slow(int(pin[-1])), 4))
        if pin in ("AOUT0", "AOUT1", "AOUT2", "AOUT3"):
            return fmt(self.bench.aout[int(pin[-1])])
        raise rp_error(h, "get analog pin", rp_code=11)

    def _analog_rst(self, *_: object) -> None:
        self.bench.aout[:] = [0.0, 0.0, 0.0, 0.0]

    def _pin(self, params: list[str], index: int, header: str) -> str:
        pin = self._param(params, index).upper()
        if pin not in self.pins:
            raise rp_error(header, "use pin", rp_code=11)
        return pin

    def _set_direction(self, s: Session, n: int, params: list[str], h: str) -> None:
        direction = choice(self._param(params), ("IN", "OUT"))
        pin = self._pin(params, 1, h)
        if pin.startswith("LED"):
            raise rp_error(h, "set direction", rp_code=11)
        self.dio_out[pin] = direction == "OUT"

    def _get_direction(self, s: Session, n: int, params: list[str], h: str) -> str:
        pin = self._pin(params, 0, h)
        return "OUT" if pin.startswith("LED") or self.dio_out[pin] else "IN"

    def _set_pin(self, s: Session, n: int, params: list[str], h: str) -> None:
        pin = self._pin(params, 0, h)
        value = self._int(params[1:])
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

    def _led_setter(self, led: str):  # noqa: ANN202
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            self.leds[led] = on_off(self._param(params))

        return setter


def fill_seconds(decimation: int, delay: int) -> float:
    """Seconds the buffer fills after a trigger: (8192 + DLY) decimation / f_clk."""
    return (HALF + max(delay, -HALF)) * decimation / F_CLOCK
