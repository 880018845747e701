"""The generator commands of the stock server (`generate.cpp`, `sweep.cpp`).

Replies as there: frequencies, voltages and phases as `%g` of a float32,
burst counts and periods and the sweep time as integers, `OUTPUT<n>:STATE?`
as `1`/`0` (`SCPI_ResultBool`), waveforms and modes as upper-case mnemonics,
the arbitrary table like an acquired trace (`{...}` or a binary block).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from labsky.sim.redpitaya.acquire_commands import DEBOUNCER_MAX, data_block
from labsky.sim.redpitaya.acquisition import N
from labsky.sim.redpitaya.scpi import (
    choice,
    fmt,
    not_supported,
    number,
    on_off,
    rp_error,
)
from labsky.sim.redpitaya.sweep import DIRECTIONS, MODES
from labsky.sim.redpitaya.waveforms import F_CLOCK, FUNCTIONS, NYQUIST, Generator

if TYPE_CHECKING:
    from labsky.sim.redpitaya.board import Board, Session

Add = Callable[[str, Callable[..., Any]], None]


def f32(value: float) -> float:
    """A value as the API stores it (float32) before `%g` prints it."""
    return float(np.float32(value))


class GenerateCommands:
    """The generator commands of one board.

    Args:
        board: The board they act on.
    """

    def __init__(self, board: Board):
        self.board = board
        self.sweeps = board.sweeps

    def _gen(self, n: int, header: str) -> Generator:
        return self.board.generators[self.board.dac_channel(n, header) - 1]

    def _index(self, n: int, header: str) -> int:
        return self.board.dac_channel(n, header) - 1

    def register(self, add: Add) -> None:
        """The patterns in the order the vendor's server lists them."""
        g = self._gen
        for pattern, handler in (
            ("GEN:RST", self._reset),
            ("PHAS:ALIGN", self._trigger_both),
            ("OUTPUT:STATE", self._output_both),
            ("OUTPUT#:STATE", self._set_output),
            ("OUTPUT#:STATE?", lambda s, n, p, h: "1" if g(n, h).output else "0"),
            ("SOUR:TRig:INT", self._trigger_both),
            ("SOUR#:FREQ:FIX", self._set_frequency),
            ("SOUR#:FREQ:FIX?", self._get_frequency),
            ("SOUR#:FREQ:FIX:Direct", self._set_frequency),
            ("SOUR#:FUNC", self._set_function),
            ("SOUR#:FUNC?", lambda s, n, p, h: g(n, h).function),
            ("SOUR#:VOLT", self._set_amplitude),
            ("SOUR#:VOLT?", lambda s, n, p, h: fmt(f32(g(n, h).amplitude))),
            ("SOUR#:VOLT:OFFS", self._set_offset),
            ("SOUR#:VOLT:OFFS?", lambda s, n, p, h: fmt(f32(g(n, h).offset))),
            ("SOUR#:PHAS", self._set_phase),
            ("SOUR#:PHAS?", lambda s, n, p, h: fmt(f32(g(n, h).phase))),
            ("SOUR#:DCYC", self._set_duty),
            ("SOUR#:DCYC?", lambda s, n, p, h: fmt(f32(g(n, h).duty))),
            ("SOUR#:LOAD", self._set_load),
            ("SOUR#:LOAD?", self._get_load),
            ("SOUR#:TRAC:DATA:DATA", self._set_arbitrary),
            ("SOUR#:TRAC:DATA:DATA?", self._get_arbitrary),
            ("SOUR#:BURS:STAT", self._set_burst),
            ("SOUR#:BURS:STAT?", lambda s, n, p, h: g(n, h).burst),
            ("SOUR#:BURS:NCYC", self._burst_int("burst_cycles", 1, 65536)),
            ("SOUR#:BURS:NCYC?", lambda s, n, p, h: str(g(n, h).burst_cycles)),
            ("SOUR#:BURS:NOR", self._burst_int("burst_count", 1, 65536)),
            ("SOUR#:BURS:NOR?", lambda s, n, p, h: str(g(n, h).burst_count)),
            ("SOUR#:BURS:INT:PER", self._set_burst_period),
            (
                "SOUR#:BURS:INT:PER?",
                lambda s, n, p, h: str(int(g(n, h).burst_period_us)),
            ),
            ("SOUR:SWeep:PAUSE", self._sweep_pause),
            ("SOUR:SWeep:DEFault", lambda *_: self.sweeps.default(time.monotonic())),
            ("SOUR:SWeep:RESET", lambda *_: self.sweeps.reset(time.monotonic())),
            ("SOUR#:SWeep:STATE", self._sweep_state),
            ("SOUR#:SWeep:STATE?", self._get_sweep_state),
            ("SOUR#:SWeep:FREQ:START", self._sweep_frequency("start")),
            ("SOUR#:SWeep:FREQ:START?", self._get_sweep("start")),
            ("SOUR#:SWeep:FREQ:STOP", self._sweep_frequency("stop")),
            ("SOUR#:SWeep:FREQ:STOP?", self._get_sweep("stop")),
            ("SOUR#:SWeep:TIME", self._sweep_time),
            ("SOUR#:SWeep:TIME?", self._get_sweep("time_us")),
            ("SOUR#:SWeep:MODE", self._sweep_choice("mode", MODES)),
            ("SOUR#:SWeep:MODE?", self._get_sweep("mode")),
            ("SOUR#:SWeep:DIR", self._sweep_choice("direction", DIRECTIONS)),
            ("SOUR#:SWeep:DIR?", self._get_sweep("direction")),
            ("SOUR#:BURS:INITValue", self._level("init_value")),
            ("SOUR#:BURS:INITValue?", lambda s, n, p, h: fmt(f32(g(n, h).init_value))),
            ("SOUR#:BURS:LASTValue", self._level("last_value")),
            ("SOUR#:BURS:LASTValue?", lambda s, n, p, h: fmt(f32(g(n, h).last_value))),
            ("SOUR#:INITValue", self._level("init_value")),
            ("SOUR#:INITValue?", lambda s, n, p, h: fmt(f32(g(n, h).init_value))),
            ("SOUR#:TRig:SOUR", self._set_trigger_source),
            ("SOUR#:TRig:SOUR?", lambda s, n, p, h: g(n, h).trigger_source),
            ("SOUR#:TRig:INT", self._trigger_one),
            ("SOUR:TRig:EXT:DEBouncer[:US]", self._set_debouncer),
            ("SOUR:TRig:EXT:DEBouncer[:US]?", self._get_debouncer),
        ):
            add(pattern, handler)

    # -- outputs and triggers -------------------------------------------------

    def _reset(self, *_: object) -> None:
        for index in range(2):
            self.board.generators[index] = Generator()

    def _set_output(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        on = on_off(self.board.param(params, h))
        if on != generator.output:
            generator.changing(time.monotonic())
            generator.output = on

    def _output_both(self, s: Session, n: int, params: list[str], h: str) -> None:
        for channel in (1, 2):
            self._set_output(s, channel, params, h)

    def _trigger_one(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.board.start_generator(self._index(n, h), time.monotonic())

    def _trigger_both(self, *_: object) -> None:
        now = time.monotonic()
        for index in (0, 1):
            self.board.start_generator(index, now)

    def _set_trigger_source(
        self, s: Session, n: int, params: list[str], h: str
    ) -> None:
        generator = self._gen(n, h)
        value = choice(
            self.board.param(params, h), ("INT", "EXT_PE", "EXT_NE", "GATED")
        )
        if value == "GATED":
            raise rp_error(h, "set generate trigger source")
        generator.trigger_source = value

    # -- the waveform ---------------------------------------------------------

    def _set_frequency(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = number(self.board.param(params, h))
        if not 0 < value <= NYQUIST:
            raise rp_error(h, "set frequency")
        generator.retune(time.monotonic(), value)

    def _get_frequency(self, s: Session, n: int, params: list[str], h: str) -> str:
        index = self._index(n, h)
        swept = self.sweeps.frequency(index, time.monotonic())
        value = swept if swept is not None else self.board.generators[index].frequency
        return fmt(f32(value))

    def _set_function(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = choice(self.board.param(params, h), FUNCTIONS)
        generator.changing(time.monotonic())
        generator.function = value

    def _check_range(self, amplitude: float, offset: float, h: str, what: str) -> None:
        if abs(amplitude) + abs(offset) > 1.0 + 1e-9:
            raise rp_error(h, what)

    def _set_amplitude(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = number(self.board.param(params, h))
        self._check_range(value, generator.offset, h, "set amplitude")
        generator.changing(time.monotonic())
        generator.amplitude = value

    def _set_offset(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = number(self.board.param(params, h))
        self._check_range(generator.amplitude, value, h, "set offset")
        generator.changing(time.monotonic())
        generator.offset = value

    def _set_phase(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = number(self.board.param(params, h))
        if not -360 <= value <= 360:
            raise rp_error(h, "set phase")
        generator.changing(time.monotonic())
        generator.phase = value

    def _set_duty(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = number(self.board.param(params, h))
        if not 0 <= value <= 1:
            raise rp_error(h, "set duty cycle")
        generator.changing(time.monotonic())
        generator.duty = value

    def _set_load(self, s: Session, n: int, params: list[str], h: str) -> None:
        self._gen(n, h)
        choice(self.board.param(params, h), ("INF", "L50"))
        raise not_supported(h, "set load mode")

    def _get_load(self, s: Session, n: int, params: list[str], h: str) -> str:
        self._gen(n, h)
        raise not_supported(h, "get load mode")

    def _set_arbitrary(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        values = tuple(number(p.strip("{}")) for p in params)
        if not values or len(values) > N or max(abs(v) for v in values) > 1:
            raise rp_error(h, "set arbitrary waveform data")
        generator.changing(time.monotonic())
        generator.arbitrary = values

    def _get_arbitrary(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        table = self._gen(n, h).arbitrary or (0.0,) * N  # the API starts zeroed
        return data_block(s, np.asarray(table, np.float32), raw=False)

    # -- bursts -----------------------------------------------------------------

    def _set_burst(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        mode = choice(self.board.param(params, h), ("CONTINUOUS", "BURST", "STREAM"))
        generator.changing(time.monotonic())
        generator.burst = mode

    def _burst_int(self, attribute: str, low: int, high: int):
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            generator = self._gen(n, h)
            value = self.board.int_param(params, h)
            if not low <= value <= high:
                raise rp_error(h, f"set {attribute.replace('_', ' ')}")
            setattr(generator, attribute, value)

        return setter

    def _set_burst_period(self, s: Session, n: int, params: list[str], h: str) -> None:
        generator = self._gen(n, h)
        value = self.board.uint(params, h)
        if not 1 <= value <= 500_000_000:
            raise rp_error(h, "set burst period")
        generator.burst_period_us = value

    def _level(self, attribute: str):
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            generator = self._gen(n, h)
            value = number(self.board.param(params, h))
            if abs(value) > 1:
                raise rp_error(h, f"set generate burst {attribute.replace('_', ' ')}")
            setattr(generator, attribute, value)

        return setter

    def _set_debouncer(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self.board.param(params, h))
        samples = int(value * 1000.0 / (1e9 / F_CLOCK)) if value >= 0 else -1
        if not 0 <= samples <= DEBOUNCER_MAX:
            raise rp_error(h, "set", rp_code=15)
        self.board.gen_debouncer = samples

    def _get_debouncer(self, *_: object) -> str:
        return fmt(self.board.gen_debouncer * (1e9 / F_CLOCK) / 1000.0)

    # -- sweep ------------------------------------------------------------------

    def _sweep_pause(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.sweeps.pause(on_off(self.board.param(params, h)), time.monotonic())

    def _sweep_state(self, s: Session, n: int, params: list[str], h: str) -> None:
        index = self._index(n, h)
        run = on_off(self.board.param(params, h))
        self.sweeps.set_state(index, run, time.monotonic())

    def _get_sweep_state(self, s: Session, n: int, params: list[str], h: str) -> str:
        return self.board.on_off(self.sweeps.channels[self._index(n, h)].run)

    def _sweep_frequency(self, which: str):
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            index = self._index(n, h)
            value = number(self.board.param(params, h))
            if value == 0:
                raise rp_error(h, f"set {which} frequency")
            self.sweeps.change(index, time.monotonic(), **{which: int(value)})

        return setter

    def _sweep_time(self, s: Session, n: int, params: list[str], h: str) -> None:
        index = self._index(n, h)
        value = int(number(self.board.param(params, h)))
        if value == 0:
            raise rp_error(h, "set time")
        self.sweeps.change(index, time.monotonic(), time_us=value)

    def _sweep_choice(self, which: str, choices: tuple[str, ...]):
        def setter(s: Session, n: int, params: list[str], h: str) -> None:
            index = self._index(n, h)
            value = choice(self.board.param(params, h), choices)
            self.sweeps.change(index, time.monotonic(), **{which: value})

        return setter

    def _get_sweep(self, which: str):
        def getter(s: Session, n: int, params: list[str], h: str) -> str:
            value = getattr(self.sweeps.channels[self._index(n, h)].settings, which)
            if which in ("start", "stop"):
                return fmt(f32(value))
            return str(value)

        return getter
