"""The fast ADC's acquisition: a 16384-sample circular buffer and its trigger.

As in the FPGA (`rp-api/api/src/acq_handler.cpp`): `ACQ:START` starts
writing the buffer; `ACQ:TRig <source>` arms the trigger; when it fires the
trigger source reads DISABLED again (`ACQ:TRig:STAT?` says `TD`), and the
buffer goes on filling for 8192 + DLY samples before it stops
(`ACQ:TRig:FILL?` says `1`). `DATA?` gives the buffer oldest sample first,
so the trigger sits at index 8192 - DLY. All of this happens in real time
(scaled by `fill_time_scale`): a client polling too early sees `WAIT` and
`0`, as on the board.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from labsky.sim.redpitaya.bench import FULL_SCALE, Bench, quantise
from labsky.sim.redpitaya.waveforms import F_CLOCK
from labsky.sim.world import TriggerLine

N = 16384
HALF = N // 2
SEARCH_CHUNK = 16384
SEARCH_LIMIT = 8  # chunks searched per poll

TRIGGER_SOURCES = (
    "DISABLED",
    "NOW",
    "CH1_PE",
    "CH1_NE",
    "CH2_PE",
    "CH2_NE",
    "EXT_PE",
    "EXT_NE",
    "AWG_PE",
    "AWG_NE",
)
DECIMATIONS = tuple(2**k for k in range(17))


@dataclass
class AcquisitionSettings:
    """`ACQ:*` settings (`ACQ:RST` defaults)."""

    decimation: int = 1
    average: bool = True
    level: list[float] = field(default_factory=lambda: [0.0, 0.0])
    hysteresis: float = 0.005
    delay: int = 0  # samples
    gain: list[str] = field(default_factory=lambda: ["LV", "LV"])


class Acquisition:
    """The acquisition state machine of one board.

    Args:
        bench: What the inputs see.
        ext_line: The external trigger input (DIO0_P), a line of the world.
        fill_time_scale: Multiplies the real time the buffer takes to fill
            (0: at once; 1: as on the board).
    """

    def __init__(
        self, bench: Bench, ext_line: TriggerLine | None, fill_time_scale: float
    ):
        self.bench = bench
        self.ext_line = ext_line
        self.fill_time_scale = fill_time_scale
        self.settings = AcquisitionSettings()
        self.running = False
        self.started_at = 0.0
        self.stopped_at: float | None = None
        self.source = "DISABLED"
        self.armed_at = 0.0
        self.searched_to = 0.0
        self.triggered_at: float | None = None
        self.awg_starts: list[float] = []
        self._buffer: dict[int, np.ndarray] = {}
        self._buffer_key: tuple | None = None

    def reset(self) -> None:
        """`ACQ:RST`: stop and restore the defaults."""
        self.settings = AcquisitionSettings()
        self.running = False
        self.source = "DISABLED"
        self.triggered_at = None
        self._buffer.clear()

    @property
    def dt(self) -> float:
        """Seconds between samples."""
        return self.settings.decimation / F_CLOCK

    def start(self) -> None:
        """`ACQ:START`."""
        now = time.monotonic()
        self.running = True
        self.started_at = now
        self.stopped_at = None
        self.triggered_at = None
        self._buffer.clear()
        if self.source != "DISABLED":
            self.arm(self.source)

    def stop(self) -> None:
        """`ACQ:STOP`: the buffer freezes."""
        if self.running:
            self.running = False
            self.stopped_at = time.monotonic()

    def arm(self, source: str) -> None:
        """`ACQ:TRig <source>`."""
        now = time.monotonic()
        self.source = source
        self.armed_at = now
        self.searched_to = now
        if source == "NOW" and self.running:
            self._fire(now)

    def awg_started(self, t: float) -> None:
        """A generator was (re)started at `t` (AWG triggers)."""
        self.awg_starts = [s for s in self.awg_starts if s > t - 1.0] + [t]

    def _fire(self, t: float) -> None:
        self.triggered_at = t
        self.source = "DISABLED"
        self._buffer.clear()

    # -- polling ----------------------------------------------------------

    def update(self) -> None:
        """Let the trigger fire if its condition happened since the last poll."""
        if not self.running or self.source == "DISABLED":
            return
        now = time.monotonic()
        source = self.source
        if source == "NOW":
            self._fire(now)
        elif source.startswith("AWG"):
            fired = [s for s in self.awg_starts if s >= self.armed_at]
            if fired:
                self._fire(fired[0])
        elif source.startswith("EXT"):
            self._poll_external()
        else:
            self._search_edge(int(source[2]), source.endswith("PE"), now)

    def _poll_external(self) -> None:
        if self.ext_line is None:
            return
        pulse = self.ext_line.take(0.0, threading.Event())
        if pulse is not None and pulse[0] >= self.armed_at - 1.0:
            start, width = pulse
            self._fire(start if self.source == "EXT_PE" else start + width)

    def _search_edge(self, channel: int, rising: bool, now: float) -> None:
        s = self.settings
        level, hysteresis = s.level[channel - 1], s.hysteresis
        chunk_time = SEARCH_CHUNK * self.dt
        for _ in range(SEARCH_LIMIT):
            t0 = self.searched_to
            if t0 >= now:
                return
            n = int(min(SEARCH_CHUNK, max(2, (now - t0) / self.dt)))
            v = self._volts(channel, t0, n)
            x = v if rising else -v
            lvl = level if rising else -level
            below = x < lvl - hysteresis
            if below.any():
                first = int(np.argmax(below))
                cross = np.nonzero((x[first + 1 :] >= lvl) & (x[first:-1] < lvl))[0]
                if len(cross):
                    self._fire(t0 + (first + 1 + int(cross[0])) * self.dt)
                    return
                self.searched_to = t0 + (n - 1) * self.dt
            else:
                self.searched_to = t0 + n * self.dt
            if n < SEARCH_CHUNK:
                return
        if now - self.searched_to > chunk_time * SEARCH_LIMIT:
            self.searched_to = now - chunk_time  # fell behind: look at the present

    def stat(self) -> str:
        """`ACQ:TRig:STAT?`."""
        self.update()
        return "TD" if self.source == "DISABLED" else "WAIT"

    def fill_done_at(self) -> float | None:
        """When the post-trigger part of the buffer is (will be) full."""
        if self.triggered_at is None:
            return None
        after = HALF + max(self.settings.delay, -HALF)
        return self.triggered_at + after * self.dt * self.fill_time_scale

    def filled(self) -> bool:
        """`ACQ:TRig:FILL?`."""
        self.update()
        done = self.fill_done_at()
        return done is not None and time.monotonic() >= done

    def write_pointer(self) -> int:
        """`ACQ:WPOS?`: samples written since the start, modulo the buffer."""
        end = self._end_time()
        return int((end - self.started_at) / self.dt) % N

    def trigger_pointer(self) -> int:
        """`ACQ:TPOS?`."""
        if self.triggered_at is None:
            return 0
        return int((self.triggered_at - self.started_at) / self.dt) % N

    # -- data -------------------------------------------------------------

    def _end_time(self) -> float:
        done = self.fill_done_at()
        now = time.monotonic()
        if done is not None and now >= done:
            return done
        return self.stopped_at if self.stopped_at is not None else now

    def _volts(self, channel: int, t0: float, n: int) -> np.ndarray:
        s = self.settings
        volts = self.bench.volts(channel, t0, s.decimation, n, s.average)
        jumper = self.bench.input(f"in{channel}").jumper
        return quantise(volts, jumper) * (FULL_SCALE[jumper] / 8192.0)

    def codes(self, channel: int) -> np.ndarray:
        """The buffer of `channel`, oldest sample first, as ADC codes."""
        self.update()
        key = (self.triggered_at, self.started_at, self.stopped_at)
        if self._buffer_key != key:
            self._buffer.clear()
            self._buffer_key = key
        done = self.fill_done_at()
        complete = done is not None and time.monotonic() >= done
        if channel in self._buffer and complete:
            return self._buffer[channel]
        s = self.settings
        if self.triggered_at is not None:
            first = self.triggered_at - (HALF - s.delay) * self.dt
        else:
            first = self._end_time() - N * self.dt
        volts = self.bench.volts(channel, first, s.decimation, N, s.average)
        jumper = self.bench.input(f"in{channel}").jumper
        codes = quantise(volts, jumper)
        if not complete and self.triggered_at is not None:
            written = int((self._end_time() - first) / self.dt)
            codes[max(written, 0) :] = 0  # not written yet in this acquisition
        if complete:
            self._buffer[channel] = codes
        return codes

    def volts(self, channel: int) -> np.ndarray:
        """The buffer in volts as the board converts it (with the GAIN setting)."""
        scale = FULL_SCALE[self.settings.gain[channel - 1]] / 8192.0
        return (self.codes(channel).astype(np.float32) * np.float32(scale)).astype(
            np.float32
        )
