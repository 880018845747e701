"""The fast ADC's acquisition: a 16384-sample circular buffer and its trigger.

As in the FPGA (`rp-api/api/src/acq_handler.cpp`): `ACQ:START` starts
writing the buffer; `ACQ:TRig <source>` arms the trigger; when it fires the
trigger source reads DISABLED again (`ACQ:TRig:STAT?` says `TD`), and the
buffer goes on filling for 8192 + DLY samples before it stops
(`ACQ:TRig:FILL?` says `1`). `DATA?` gives the buffer oldest sample first,
so the trigger sits at index 8192 - DLY. All of this happens in real time
(scaled by `fill_time_scale`): a client polling too early sees `WAIT` and
`0`, as on the board.

Each input has its own register set and write state machine (a `Recorder`).
The commands without `:CH<n>` address channel 1's; in the normal mode the
FPGA runs both inputs from channel 1's state machine (one decimation, one
trigger), in split-trigger mode (`ACQ:SPLIT:TRig ON`) each input from its own.
The trigger levels and input gains are per input in both modes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

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
    """One input's `ACQ:*` registers (`ACQ:RST` defaults)."""

    decimation: int = 1
    average: bool = True
    level: float = 0.0
    hysteresis: float = 0.005
    delay: int = 0  # samples
    gain: str = "LV"


class Recorder:
    """The write state machine of one input's buffer.

    Args:
        acquisition: The board's acquisition (signals, triggers, time scale).
        channel: 1 or 2.
    """

    def __init__(self, acquisition: Acquisition, channel: int):
        self.acquisition = acquisition
        self.channel = channel
        self.settings = AcquisitionSettings()
        self.running = False
        self.started_at = 0.0
        self.stopped_at: float | None = None
        self.source = "DISABLED"
        self.armed_at = 0.0
        self.searched_to = 0.0
        self.triggered_at: float | None = None

    @property
    def dt(self) -> float:
        """Seconds between samples."""
        return self.settings.decimation / F_CLOCK

    def reset(self) -> None:
        """`ACQ:RST[:CH<n>]`: stop and restore the defaults."""
        self.settings = AcquisitionSettings()
        self.running = False
        self.source = "DISABLED"
        self.triggered_at = None

    def start(self) -> None:
        """`ACQ:START[:CH<n>]`."""
        self.running = True
        self.started_at = time.monotonic()
        self.stopped_at = None
        self.triggered_at = None
        if self.source != "DISABLED":
            self.arm(self.source)

    def stop(self) -> None:
        """`ACQ:STOP[:CH<n>]`: the buffer freezes."""
        if self.running:
            self.running = False
            self.stopped_at = time.monotonic()

    def arm(self, source: str) -> None:
        """`ACQ:TRig[:CH<n>] <source>`."""
        now = time.monotonic()
        self.source = source
        self.armed_at = now
        self.searched_to = now
        if source == "NOW" and self.running:
            self._fire(now)

    def _fire(self, t: float) -> None:
        self.triggered_at = t
        self.source = "DISABLED"

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
            fired = [s for s in self.acquisition.awg_starts if s >= self.armed_at]
            if fired:
                self._fire(fired[0])
        elif source.startswith("EXT"):
            self._poll_external()
        else:
            self._search_edge(int(source[2]), source.endswith("PE"), now)

    def _poll_external(self) -> None:
        line = self.acquisition.ext_line
        if line is None:
            return
        pulse = line.take(0.0, threading.Event())
        if pulse is not None and pulse[0] >= self.armed_at - 1.0:
            start, width = pulse
            self._fire(start if self.source == "EXT_PE" else start + width)

    def _search_edge(self, channel: int, rising: bool, now: float) -> None:
        level = self.acquisition.recorders[channel - 1].settings.level
        hysteresis = self.settings.hysteresis
        chunk_time = SEARCH_CHUNK * self.dt
        for _ in range(SEARCH_LIMIT):
            t0 = self.searched_to
            if t0 >= now:
                return
            n = int(min(SEARCH_CHUNK, max(2, (now - t0) / self.dt)))
            v = self.acquisition.sampled_volts(channel, self, t0, n)
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
        """`ACQ:TRig:STAT[:CH<n>]?`."""
        self.update()
        return "TD" if self.source == "DISABLED" else "WAIT"

    def fill_done_at(self) -> float | None:
        """When the post-trigger part of the buffer is (will be) full."""
        if self.triggered_at is None:
            return None
        after = HALF + max(self.settings.delay, -HALF)
        return self.triggered_at + after * self.dt * self.acquisition.fill_time_scale

    def filled(self) -> bool:
        """`ACQ:TRig:FILL[:CH<n>]?`."""
        self.update()
        done = self.fill_done_at()
        return done is not None and time.monotonic() >= done

    def end_time(self) -> float:
        """When writing stopped (or now, while it goes on)."""
        done = self.fill_done_at()
        now = time.monotonic()
        if done is not None and now >= done:
            return done
        return self.stopped_at if self.stopped_at is not None else now

    def trigger_index(self) -> int:
        """Samples written from the start to the trigger sample."""
        if self.triggered_at is None:
            return 0
        return int(round((self.triggered_at - self.started_at) / self.dt))

    def samples_written(self) -> int:
        """Samples written since `ACQ:START` (the trigger sample is the first after)."""
        done = self.fill_done_at()
        stopped = self.stopped_at
        if done is not None and time.monotonic() >= done:
            if stopped is None or stopped >= done:
                return self.trigger_index() + HALF + max(self.settings.delay, -HALF)
        end = stopped if stopped is not None else time.monotonic()
        return max(int(round((end - self.started_at) / self.dt)), 0)

    def write_pointer(self) -> int:
        """`ACQ:WPOS[:CH<n>]?`: index of the most recent sample in the buffer."""
        return (self.samples_written() - 1) % N

    def trigger_pointer(self) -> int:
        """`ACQ:TPOS[:CH<n>]?`: index of the trigger sample."""
        return self.trigger_index() % N

    def key(self) -> tuple:
        """What identifies the buffer's content (for caching)."""
        s = self.settings
        return (
            self.triggered_at,
            self.started_at,
            self.stopped_at,
            s.decimation,
            s.average,
            s.delay,
        )


class Acquisition:
    """The acquisition of one board: two inputs, one or two state machines.

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
        self.recorders = (Recorder(self, 1), Recorder(self, 2))
        self.split = False
        self.awg_starts: list[float] = []
        self._buffers: dict[int, tuple[tuple, np.ndarray]] = {}

    @property
    def settings(self) -> AcquisitionSettings:
        """Channel 1's registers: what the commands without `:CH<n>` address."""
        return self.recorders[0].settings

    @property
    def dt(self) -> float:
        """Seconds between samples (channel 1)."""
        return self.recorders[0].dt

    def recorder(self, channel: int) -> Recorder:
        """The state machine that writes input `channel` in the current mode."""
        return self.recorders[channel - 1] if self.split else self.recorders[0]

    def reset(self) -> None:
        """`ACQ:RST`: both inputs stop and take their defaults."""
        for recorder in self.recorders:
            recorder.reset()
        self._buffers.clear()

    # -- the common state machine (commands without :CH<n>) ---------------

    def start(self) -> None:
        """`ACQ:START`."""
        self.recorders[0].start()

    def stop(self) -> None:
        """`ACQ:STOP`."""
        self.recorders[0].stop()

    def arm(self, source: str) -> None:
        """`ACQ:TRig <source>`."""
        self.recorders[0].arm(source)

    def stat(self) -> str:
        """`ACQ:TRig:STAT?`."""
        return self.recorders[0].stat()

    def filled(self) -> bool:
        """`ACQ:TRig:FILL?`."""
        return self.recorders[0].filled()

    def write_pointer(self) -> int:
        """`ACQ:WPOS?`."""
        return self.recorders[0].write_pointer()

    def trigger_pointer(self) -> int:
        """`ACQ:TPOS?`."""
        return self.recorders[0].trigger_pointer()

    def awg_started(self, t: float) -> None:
        """A generator was (re)started at `t` (AWG triggers)."""
        self.awg_starts = [s for s in self.awg_starts if s > t - 1.0] + [t]

    # -- data -------------------------------------------------------------

    def sampled_volts(
        self, channel: int, recorder: Recorder, t0: float, n: int
    ) -> np.ndarray:
        """Input `channel` as `recorder` samples it from `t0`, in volts (quantised)."""
        s = recorder.settings
        volts = self.bench.volts(channel, t0, s.decimation, n, s.average)
        jumper = self.bench.input(f"in{channel}").jumper
        return quantise(volts, jumper) * (FULL_SCALE[jumper] / 8192.0)

    def codes(self, channel: int) -> np.ndarray:
        """The buffer of `channel`, oldest sample first, as ADC codes."""
        recorder = self.recorder(channel)
        recorder.update()
        key = recorder.key()
        done = recorder.fill_done_at()
        complete = done is not None and time.monotonic() >= done
        cached = self._buffers.get(channel)
        if complete and cached is not None and cached[0] == key:
            return cached[1]
        s = recorder.settings
        if recorder.triggered_at is not None:
            first = recorder.triggered_at - (HALF - s.delay) * recorder.dt
        else:
            first = recorder.end_time() - N * recorder.dt
        volts = self.bench.volts(channel, first, s.decimation, N, s.average)
        jumper = self.bench.input(f"in{channel}").jumper
        codes = quantise(volts, jumper)
        if not complete and recorder.triggered_at is not None:
            written = int((recorder.end_time() - first) / recorder.dt)
            codes[max(written, 0) :] = 0  # not written yet in this acquisition
        if complete:
            self._buffers[channel] = (key, codes)
        return codes

    def volts(self, channel: int) -> np.ndarray:
        """The buffer in volts as the board converts it (with the GAIN setting)."""
        return to_volts(self.codes(channel), self.recorders[channel - 1].settings.gain)

    def oldest(self, channel: int) -> int:
        """Buffer index of the oldest sample (the one after the write pointer)."""
        return (self.recorder(channel).write_pointer() + 1) % N


def to_volts(codes: np.ndarray, gain: str) -> np.ndarray:
    """ADC codes in volts as the board converts them (float32)."""
    scale = np.float32(FULL_SCALE[gain] / 8192.0)
    return (codes.astype(np.float32) * scale).astype(np.float32)
