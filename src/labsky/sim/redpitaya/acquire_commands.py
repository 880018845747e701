"""The `ACQ:*` commands of the stock server (its `acquire.cpp` and `acquire_axi.cpp`).

Replies as the vendor's server formats them: decimations and pointers as
integers, levels as `%g`, `ACQ:SRATe?` as `%9.0f Hz`, booleans of
`SCPI_ResultBool` as `1`/`0`, data blocks as `{v,...}` (ASCII; `%g` volts,
integer codes) or `#<d><len><bytes>` (BIN; big-endian float32 volts or int16
codes; `ACQ:DATA:BYTE:ORDER` came with OS 2.07).

The `:CH<n>` forms are split-trigger commands: on a board whose FPGA cannot
split the trigger (a STEMlab 125-14 before OS 2.07-48) they fail with
`Command not supported`, as its API does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from labsky.sim.redpitaya.acquisition import (
    DECIMATIONS,
    HALF,
    TRIGGER_SOURCES,
    N,
    Recorder,
    to_volts,
)
from labsky.sim.redpitaya.scpi import (
    ScpiError,
    choice,
    fmt,
    integer,
    not_supported,
    number,
    on_off,
    rp_error,
    server_error,
)
from labsky.sim.redpitaya.waveforms import F_CLOCK

if TYPE_CHECKING:
    from labsky.sim.redpitaya.board import Board, Session

Add = Callable[[str, Callable[..., Any]], None]

#: `ACQ:SOUR<n>:DATA:TRig? <count>,<mode>` choices.
TRIG_REQUESTS = ("PRE_TRIG", "POST_TRIG", "PRE_POST_TRIG")
#: The FPGA's external-trigger debouncer: 20 bits of ADC samples.
DEBOUNCER_MAX = 0xFFFFF


def valid_factor(value: int) -> bool:
    """A decimation `ACQ:DEC:Factor` takes: 1, 2, 4, 8 or 16 ... 65536."""
    return value in (1, 2, 4, 8) or 16 <= value <= 65536


def data_block(session: Session, values: np.ndarray, raw: bool) -> bytes:
    """A data reply as the server's parser writes it for this connection."""
    if session.data_format == "ASCII":
        if raw:
            body = ",".join(map(str, values.tolist()))
        else:
            body = ",".join(fmt(v) for v in values.tolist())
        return ("{" + body + "}").encode()
    kind = ">i2" if raw else ">f4"  # htons / hton_f: always big-endian in 2.05
    payload = values.astype(kind).tobytes()
    length = str(len(payload))
    return b"#" + str(len(length)).encode() + length.encode() + payload


class AcquireCommands:
    """The acquisition commands of one board.

    Args:
        board: The board they act on.
    """

    def __init__(self, board: Board):
        self.board = board
        self.acq = board.acq
        self.deep = board.deep

    # -- helpers ------------------------------------------------------------

    def _split_capable(self, header: str, what: str) -> None:
        if not self.board.split_supported:
            raise not_supported(header, what)

    def _recorder(self, n: int, header: str) -> Recorder:
        return self.acq.recorders[self.board.adc_channel(n, header) - 1]

    # -- registration -------------------------------------------------------

    def register(self, add: Add) -> None:
        """The patterns in the order the vendor's server lists them."""
        acq = self.acq
        b = self.board
        for pattern, handler in (
            ("ACQ:START", lambda *_: acq.start()),
            ("ACQ:START:CH#", self._start_ch),
            ("ACQ:STOP", lambda *_: acq.stop()),
            ("ACQ:STOP:CH#", self._stop_ch),
            ("ACQ:RST", self._reset),
            ("ACQ:RST:CH#", self._reset_ch),
            ("ACQ:SPLIT:TRig", self._set_split),
            ("ACQ:SPLIT:TRig?", self._get_split),
            ("ACQ:DEC", self._set_decimation),
            ("ACQ:DEC:CH#", self._set_decimation),
            ("ACQ:DEC?", lambda *_: str(acq.settings.decimation)),
            ("ACQ:DEC:CH#?", self._get_decimation_ch),
            ("ACQ:DEC:Factor", self._set_factor),
            ("ACQ:DEC:Factor:CH#", self._set_factor),
            ("ACQ:DEC:Factor?", lambda *_: str(acq.settings.decimation)),
            ("ACQ:DEC:Factor:CH#?", self._get_decimation_ch),
            ("ACQ:SRATe?", lambda *_: self._rate(acq.recorders[0])),
            ("ACQ:SRATe:CH#?", self._rate_ch),
            ("ACQ:AVG", self._set_average),
            ("ACQ:AVG?", lambda *_: b.on_off(acq.settings.average)),
            ("ACQ:AVG:CH#", self._set_average),
            ("ACQ:AVG:CH#?", self._get_average_ch),
            ("ACQ:TRig", self._arm),
            ("ACQ:TRig:CH#", self._arm),
            ("ACQ:TRig:STAT?", lambda *_: acq.stat()),
            ("ACQ:TRig:STAT:CH#?", self._stat_ch),
            ("ACQ:TRig:DLY", self._set_delay),
            ("ACQ:TRig:DLY?", lambda *_: str(acq.settings.delay)),
            ("ACQ:TRig:DLY:NS", self._set_delay_ns),
            ("ACQ:TRig:DLY:NS?", lambda *_: self._delay_ns(acq.recorders[0])),
            ("ACQ:TRig:DLY:CH#", self._set_delay),
            ("ACQ:TRig:DLY:CH#?", self._get_delay_ch),
            ("ACQ:TRig:DLY:NS:CH#", self._set_delay_ns),
            ("ACQ:TRig:DLY:NS:CH#?", self._get_delay_ns_ch),
            ("ACQ:TRig:HYST", self._set_hysteresis),
            ("ACQ:TRig:HYST?", lambda *_: fmt(acq.settings.hysteresis)),
            ("ACQ:TRig:FILL?", lambda *_: "1" if acq.filled() else "0"),
            ("ACQ:TRig:FILL:CH#?", self._filled_ch),
            ("ACQ:SOUR#:GAIN", self._set_gain),
            ("ACQ:SOUR#:GAIN?", lambda s, n, p, h: self._recorder(n, h).settings.gain),
            ("ACQ:TRig:LEV", self._set_level),
            ("ACQ:TRig:LEV?", lambda *_: fmt(acq.settings.level)),
            ("ACQ:TRig:LEV:CH#", self._set_level_ch),
            ("ACQ:TRig:LEV:CH#?", lambda s, n, p, h: fmt(self._level(n, h))),
            ("ACQ:WPOS?", lambda *_: str(acq.write_pointer())),
            ("ACQ:TPOS?", lambda *_: str(acq.trigger_pointer())),
            ("ACQ:WPOS:CH#?", self._write_pointer_ch),
            ("ACQ:TPOS:CH#?", self._trigger_pointer_ch),
            ("ACQ:DATA:Units", self._set_units),
            ("ACQ:DATA:Units?", lambda *_: b.units),
            ("ACQ:DATA:FORMAT", self._set_format),
            ("ACQ:DATA:FORMAT?", lambda s, *_: s.data_format),
            ("ACQ:SOUR#:DATA:STArt:End?", self._data_start_end),
            ("ACQ:SOUR#:DATA:Start:End?", self._data_start_end),
            ("ACQ:SOUR#:DATA:STArt:N?", self._data_start_n),
            ("ACQ:SOUR#:DATA:Start:N?", self._data_start_n),
            ("ACQ:SOUR#:DATA:Old:N?", self._data_old),
            ("ACQ:SOUR#:DATA?", self._data),
            ("ACQ:SOUR#:DATA:LATest:N?", self._data_latest),
            ("ACQ:SOUR#:DATA:TRig?", self._data_trigger),
            ("ACQ:BUF:SIZE?", lambda *_: str(N)),
        ):
            add(pattern, handler)
        self._register_axi(add)
        for pattern, handler in (
            ("ACQ:SOUR#:COUP", self._set_coupling),
            ("ACQ:SOUR#:COUP?", self._get_coupling),
            ("TRig:EXT:LEV", self._set_ext_level),
            ("TRig:EXT:LEV?", self._get_ext_level),
            ("ACQ:TRig:EXT:DEBouncer[:US]", self._set_debouncer),
            ("ACQ:TRig:EXT:DEBouncer[:US]?", self._get_debouncer),
        ):
            add(pattern, handler)

    def _register_axi(self, add: Add) -> None:
        deep = self.deep
        for pattern, handler in (
            ("ACQ:AXI:DATA:Units", self._set_axi_units),
            ("ACQ:AXI:DATA:Units?", lambda *_: deep.units),
            ("ACQ:AXI:DEC", self._set_axi_decimation),
            ("ACQ:AXI:DEC?", lambda *_: str(self.acq.settings.decimation)),
            ("ACQ:AXI:DEC:CH#", self._set_axi_decimation),
            ("ACQ:AXI:DEC:CH#?", self._get_axi_decimation_ch),
            ("ACQ:AXI:START?", lambda *_: str(deep.region_start)),
            ("ACQ:AXI:SIZE?", lambda *_: str(deep.region_size)),
            ("ACQ:AXI:SOUR#:Trig:Fill?", self._axi_filled),
            ("ACQ:AXI:SOUR#:Trig:Dly", self._set_axi_delay),
            ("ACQ:AXI:SOUR#:Trig:Dly?", self._get_axi_delay),
            ("ACQ:AXI:SOUR#:Write:Pos?", self._axi_write_pointer),
            ("ACQ:AXI:SOUR#:Trig:Pos?", self._axi_trigger_pointer),
            ("ACQ:AXI:SOUR#:ENable", self._axi_enable),
            ("ACQ:AXI:SOUR#:DATA:Start:N?", self._axi_data),
            ("ACQ:AXI:SOUR#:DATA:STArt:N?", self._axi_data),
            ("ACQ:AXI:SOUR#:SET:Buffer", self._axi_set_buffer),
        ):
            add(pattern, handler)

    # -- start, stop, reset, split -------------------------------------------

    def _start_ch(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._recorder(n, h)
        self._split_capable(h, "start Red Pitaya acquire")
        recorder.start()

    def _stop_ch(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._recorder(n, h)
        self._split_capable(h, "stop Red Pitaya acquire")
        recorder.stop()

    def _reset(self, session: Session, *_: object) -> None:
        self.acq.reset()
        self.deep.reset()
        self.board.units = "VOLTS"
        session.data_format = "ASCII"

    def _reset_ch(self, session: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._recorder(n, h)
        self._split_capable(h, "reset Red Pitaya acquire")
        recorder.reset()
        self.deep.channels[recorder.channel - 1].enabled = False
        self.board.units = "VOLTS"
        session.data_format = "ASCII"

    def _set_split(self, s: Session, n: int, params: list[str], h: str) -> None:
        state = on_off(self.board.param(params, h))
        self._split_capable(h, "set split trigger")
        self.acq.split = state

    def _get_split(self, s: Session, n: int, params: list[str], h: str) -> str:
        self._split_capable(h, "get split trigger")
        return "1" if self.acq.split else "0"

    # -- decimation, averaging ---------------------------------------------

    def _target(self, n: int, header: str, what: str) -> Recorder:
        """Channel 1's registers, or channel n's for a `:CH<n>` command."""
        if ":CH" in header.upper():
            recorder = self._recorder(n, header)
            self._split_capable(header, what)
            return recorder
        return self.acq.recorders[0]

    def _set_decimation(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._target(n, h, "set decimation")
        value = self.board.uint(params, h)
        if value not in DECIMATIONS:
            raise server_error(h, -109, "Parameter decimation is invalid.")
        recorder.settings.decimation = value

    def _set_factor(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._target(n, h, "set decimation factor")
        value = self.board.uint(params, h)
        if not valid_factor(value):
            raise rp_error(h, "set decimation factor")
        recorder.settings.decimation = value

    def _get_decimation_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        return str(self._target(n, h, "get decimation").settings.decimation)

    @staticmethod
    def _rate(recorder: Recorder) -> str:
        return "%9.0f Hz" % (F_CLOCK / recorder.settings.decimation)

    def _rate_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        return self._rate(self._target(n, h, "get sampling rate in Hz"))

    def _set_average(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._target(n, h, "set averaging")
        recorder.settings.average = on_off(self.board.param(params, h))

    def _get_average_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        return self.board.on_off(self._target(n, h, "get averaging").settings.average)

    # -- trigger --------------------------------------------------------------

    def _arm(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._target(n, h, "set trigger source")
        source = choice(self.board.param(params, h), TRIGGER_SOURCES)
        recorder.arm(source)

    def _stat_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        recorder = self._recorder(n, h)
        if not self.board.split_supported:
            # the server logs the failure but still answers (WAIT)
            s.push(not_supported(h, "get trigger"))
            return "WAIT"
        return self.acq.recorder(recorder.channel).stat()

    def _filled_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        recorder = self._recorder(n, h)
        self._split_capable(h, "get trigger fill state")
        return "1" if self.acq.recorder(recorder.channel).filled() else "0"

    def _set_delay(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._target(n, h, "set trigger delay")
        value = integer(params[0]) if params else 0  # no value: 0
        if not -(2**31) <= value < 2**31:
            raise rp_error(h, "set trigger delay")
        recorder.settings.delay = max(value, -HALF)

    def _get_delay_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        return str(self._target(n, h, "get trigger delay").settings.delay)

    def _set_delay_ns(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._target(n, h, "set trigger delay in ns")
        value = number(params[0]) if params else 0.0
        recorder.settings.delay = max(int(round(value * 1e-9 / recorder.dt)), -HALF)

    @staticmethod
    def _delay_ns(recorder: Recorder) -> str:
        return str(int(round(recorder.settings.delay * recorder.dt * 1e9)))

    def _get_delay_ns_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        return self._delay_ns(self._target(n, h, "get trigger delay"))

    def _set_hysteresis(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self.board.param(params, h))
        if not 0 <= value <= 1:
            raise rp_error(h, "set trigger hysteresis")
        for recorder in self.acq.recorders:
            recorder.settings.hysteresis = value

    def _set_gain(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._recorder(n, h)
        recorder.settings.gain = choice(self.board.param(params, h), ("LV", "HV"))

    def _level(self, n: int, header: str) -> float:
        return self._recorder(n, header).settings.level

    def _check_level(self, value: float, header: str) -> None:
        if abs(value) > 20:
            raise rp_error(header, "set trigger level")

    def _set_level(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self.board.param(params, h))
        self._check_level(value, h)
        for recorder in self.acq.recorders:
            recorder.settings.level = value

    def _set_level_ch(self, s: Session, n: int, params: list[str], h: str) -> None:
        recorder = self._recorder(n, h)
        value = number(self.board.param(params, h))
        self._check_level(value, h)
        recorder.settings.level = value

    def _write_pointer_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        recorder = self._recorder(n, h)
        self._split_capable(h, "get writer position")
        return str(self.acq.recorder(recorder.channel).write_pointer())

    def _trigger_pointer_ch(self, s: Session, n: int, params: list[str], h: str) -> str:
        recorder = self._recorder(n, h)
        self._split_capable(h, "get writer position at trigger")
        return str(self.acq.recorder(recorder.channel).trigger_pointer())

    # -- units and formats ----------------------------------------------------

    def _set_units(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.board.units = choice(self.board.param(params, h), ("VOLTS", "RAW"))

    def _set_format(self, s: Session, n: int, params: list[str], h: str) -> None:
        s.data_format = choice(self.board.param(params, h), ("ASCII", "BIN"))

    # -- data -----------------------------------------------------------------

    def _block(self, session: Session, channel: int, start: int, count: int) -> bytes:
        """`count` samples from `start` (oldest first), as the server sends them."""
        index = (np.arange(count) + start) % N
        codes = self.acq.codes(channel)[index]
        if self.board.units == "RAW":
            return data_block(session, codes, raw=True)
        gain = self.acq.recorders[channel - 1].settings.gain
        return data_block(session, to_volts(codes, gain), raw=False)

    def _channel(self, n: int, header: str) -> int:
        return self.board.adc_channel(n, header)

    def _data(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        return self._block(s, self._channel(n, h), 0, N)

    def _data_start_n(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        channel = self._channel(n, h)
        start = self.board.uint(params, h, 0, "Missing START parameter.")
        count = self.board.uint(params, h, 1, "Missing SIZE parameter.")
        if not (0 <= start < N and 0 < count <= N):
            raise rp_error(h, "get data in volts")
        oldest = self.acq.oldest(channel)
        return self._block(s, channel, (start - oldest) % N, count)

    def _data_start_end(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        channel = self._channel(n, h)
        start = self.board.uint(params, h, 0, "Unable to read START parameter.")
        end = self.board.uint(params, h, 1, "Unable to read END parameter.")
        if not (0 <= start < N and 0 <= end < N):
            raise rp_error(h, "get data in volts")
        count = (end - start) % N + 1
        oldest = self.acq.oldest(channel)
        return self._block(s, channel, (start - oldest) % N, count)

    def _data_old(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        channel = self._channel(n, h)
        count = self.board.uint(params, h, 0, "Missing SIZE parameter.")
        if not 0 < count <= N:
            raise rp_error(h, "get data in volt")
        return self._block(s, channel, 0, count)

    def _data_latest(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        channel = self._channel(n, h)
        count = self.board.uint(params, h)
        if not 0 < count <= N:
            raise rp_error(h, "get data in volt")
        return self._block(s, channel, N - count, count)

    def _data_trigger(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        channel = self._channel(n, h)
        count = self.board.uint(params, h, 0, "Missing Size parameter.")
        mode = choice(self.board.param(params, h, 1), TRIG_REQUESTS)
        trigger = self.acq.recorder(channel).trigger_pointer()
        if mode == "POST_TRIG":
            start, size = trigger, count + 1
        else:
            start = (trigger - count) % N
            size = count + 1 if mode == "PRE_TRIG" else 2 * count + 1
        if not 0 < size <= N:
            raise rp_error(h, "get data in volts")
        oldest = self.acq.oldest(channel)
        return self._block(s, channel, (start - oldest) % N, size)

    # -- options the STEMlab 125-14 does not have -----------------------------

    def _set_coupling(self, s: Session, n: int, params: list[str], h: str) -> None:
        self._channel(n, h)
        mode = choice(self.board.param(params, h), ("DC", "AC"))
        raise not_supported(h, f"set AC/DC mode ({mode}) on this board")

    def _get_coupling(self, s: Session, n: int, params: list[str], h: str) -> str:
        self._channel(n, h)
        raise not_supported(h, "get gain")

    def _set_ext_level(self, s: Session, n: int, params: list[str], h: str) -> None:
        number(self.board.param(params, h))
        raise not_supported(h, "set trigger level")

    def _get_ext_level(self, s: Session, n: int, params: list[str], h: str) -> str:
        raise not_supported(h, "get trigger level")

    def _set_debouncer(self, s: Session, n: int, params: list[str], h: str) -> None:
        value = number(self.board.param(params, h))
        samples = int(value * 1000.0 / (1e9 / F_CLOCK)) if value >= 0 else -1
        if not 0 <= samples <= DEBOUNCER_MAX:
            raise rp_error(h, "set", rp_code=15)
        self.board.acq_debouncer = samples

    def _get_debouncer(self, *_: object) -> str:
        return fmt(self.board.acq_debouncer * (1e9 / F_CLOCK) / 1000.0)

    # -- deep memory (AXI) ------------------------------------------------------

    def _set_axi_units(self, s: Session, n: int, params: list[str], h: str) -> None:
        self.deep.units = choice(self.board.param(params, h), ("VOLTS", "RAW"))

    def _set_axi_decimation(
        self, s: Session, n: int, params: list[str], h: str
    ) -> None:
        recorder = self._target(n, h, "set decimation")
        value = self.board.uint(params, h)
        if not valid_factor(value):
            raise rp_error(h, "set decimation")
        recorder.settings.decimation = value

    def _get_axi_decimation_ch(
        self, s: Session, n: int, params: list[str], h: str
    ) -> str:
        return str(self._target(n, h, "get decimation").settings.decimation)

    def _axi_filled(self, s: Session, n: int, params: list[str], h: str) -> str:
        return "1" if self.deep.filled(self._channel(n, h)) else "0"

    def _set_axi_delay(self, s: Session, n: int, params: list[str], h: str) -> None:
        channel = self._channel(n, h)
        value = integer(params[0]) if params else 0
        if not 0 <= value < 2**32:
            raise rp_error(h, "set trigger delay")
        self.deep.channels[channel - 1].delay = value

    def _get_axi_delay(self, s: Session, n: int, params: list[str], h: str) -> str:
        return str(self.deep.channels[self._channel(n, h) - 1].delay)

    def _axi_write_pointer(self, s: Session, n: int, params: list[str], h: str) -> str:
        return str(self.deep.write_pointer(self._channel(n, h)))

    def _axi_trigger_pointer(
        self, s: Session, n: int, params: list[str], h: str
    ) -> str:
        return str(self.deep.trigger_pointer(self._channel(n, h)))

    def _axi_enable(self, s: Session, n: int, params: list[str], h: str) -> None:
        channel = self._channel(n, h)
        state = on_off(self.board.param(params, h))
        self.deep.channels[channel - 1].enabled = state

    def _axi_data(self, s: Session, n: int, params: list[str], h: str) -> bytes:
        channel = self._channel(n, h)
        start = self.board.uint(params, h, 0, "Missing START parameter.")
        count = self.board.uint(params, h, 1, "Missing SIZE parameter.")
        axi = self.deep.channels[channel - 1]
        if not axi.samples or count > axi.samples:
            raise rp_error(h, "get data in volts")
        codes = self.deep.codes(channel, start, count)
        if self.deep.units == "RAW":
            return data_block(s, codes, raw=True)
        gain = self.acq.recorders[channel - 1].settings.gain
        return data_block(s, to_volts(codes, gain), raw=False)

    def _axi_set_buffer(self, s: Session, n: int, params: list[str], h: str) -> None:
        channel = self._channel(n, h)
        address = self.board.uint(params, h, 0, "Missing START parameter.")
        size = self.board.uint(params, h, 1, "Missing SIZE parameter.")
        refused = self.deep.set_buffer(channel, address, size)
        if refused is not None:
            raise rp_error(h, "set write addresses")


def missing(header: str, text: str = "Missing first parameter.") -> ScpiError:
    """What the server logs for a missing parameter (code 8891)."""
    return server_error(header, -109, text)
