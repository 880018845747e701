"""Deep-memory acquisition (`ACQ:AXI:*`): the inputs written into DDR.

As the v0.94 FPGA image and `rp-api` do it: a region of the board's RAM is
reserved for it (`ACQ:AXI:START?`, `ACQ:AXI:SIZE?`: 2 MiB at 0x1000000 in
the stock device tree); each input gets a buffer in that region
(`ACQ:AXI:SOUR<n>:SET:Buffer <address>,<bytes>`, 2 bytes a sample) and, once
enabled, is written into it circularly from `ACQ:START`. The trigger is the
normal acquisition's; after it the input writes `ACQ:AXI:SOUR<n>:Trig:Dly`
more samples and stops (`...:Trig:Fill?` says `1`). Pointers are sample
indices in the input's buffer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from labsky.sim.redpitaya.acquisition import Acquisition, Recorder
from labsky.sim.redpitaya.bench import quantise

#: The stock device tree's reservation: `reg = <0x1000000 0x200000>`.
REGION_START = 0x1000000
REGION_SIZE = 0x200000
#: Samples evaluated per call of the bench (bounds the memory of one call).
CHUNK = 1 << 16


@dataclass
class AxiChannel:
    """One input's deep-memory buffer."""

    enabled: bool = False
    address: int = REGION_START
    samples: int = 0
    delay: int = 0  # samples written after the trigger


class DeepMemory:
    """The deep-memory buffers of both inputs.

    Args:
        acquisition: The normal acquisition (its trigger and start are shared).
        region_size: Bytes reserved for deep memory.
    """

    def __init__(self, acquisition: Acquisition, region_size: int = REGION_SIZE):
        self.acquisition = acquisition
        self.region_start = REGION_START
        self.region_size = region_size
        self.channels = (AxiChannel(), AxiChannel())
        self.units = "VOLTS"
        self._cache: dict[int, tuple[tuple, np.ndarray]] = {}

    def reset(self) -> None:
        """`ACQ:RST`: buffers disabled and emptied, delays 0."""
        self.channels = (AxiChannel(), AxiChannel())
        self._cache.clear()

    def set_buffer(self, channel: int, address: int, size: int) -> str | None:
        """`SET:Buffer`; the reason it is refused, or None."""
        if size % 16:
            return "buffer size must be a multiple of 16 bytes"
        samples = size // 2
        if address < 8 or address < self.region_start:
            return "start address lower than the reserved region"
        if address + (samples - 4) * 2 > self.region_start + self.region_size:
            return "buffer larger than the reserved region"
        if samples % 8:
            return "buffer samples must be a multiple of 8"
        axi = self.channels[channel - 1]
        axi.address, axi.samples = address, samples
        return None

    # -- the state of one input -------------------------------------------

    def _recorder(self, channel: int) -> Recorder:
        return self.acquisition.recorder(channel)

    def fill_done_at(self, channel: int) -> float | None:
        """When the post-trigger samples are all written."""
        recorder = self._recorder(channel)
        axi = self.channels[channel - 1]
        if recorder.triggered_at is None:
            return None
        scale = self.acquisition.fill_time_scale
        return recorder.triggered_at + axi.delay * recorder.dt * scale

    def filled(self, channel: int) -> bool:
        """`ACQ:AXI:SOUR<n>:Trig:Fill?`."""
        self._recorder(channel).update()
        done = self.fill_done_at(channel)
        return (
            self.channels[channel - 1].enabled
            and done is not None
            and time.monotonic() >= done
        )

    def _written(self, channel: int) -> int:
        """Samples written into the buffer since `ACQ:START`."""
        recorder = self._recorder(channel)
        axi = self.channels[channel - 1]
        if not axi.enabled or recorder.started_at == 0.0:
            return 0
        recorder.update()
        now = time.monotonic()
        done = self.fill_done_at(channel)
        stopped = recorder.stopped_at
        if done is not None and now >= done and (stopped is None or stopped >= done):
            return recorder.trigger_index() + axi.delay
        end = stopped if stopped is not None else now
        return max(int(round((end - recorder.started_at) / recorder.dt)), 0)

    def _grid(self, recorder: Recorder) -> float:
        """Time of sample 0: the samples are laid out around the trigger."""
        if recorder.triggered_at is None:
            return recorder.started_at
        return recorder.triggered_at - recorder.trigger_index() * recorder.dt

    def write_pointer(self, channel: int) -> int:
        """`ACQ:AXI:SOUR<n>:Write:Pos?`: index of the next sample to write."""
        samples = self.channels[channel - 1].samples
        return self._written(channel) % samples if samples else 0

    def trigger_pointer(self, channel: int) -> int:
        """`ACQ:AXI:SOUR<n>:Trig:Pos?`: index of the trigger sample."""
        recorder = self._recorder(channel)
        samples = self.channels[channel - 1].samples
        if recorder.triggered_at is None or not samples:
            return 0
        return recorder.trigger_index() % samples

    # -- data -------------------------------------------------------------

    def codes(self, channel: int, start: int, count: int) -> np.ndarray:
        """`count` ADC codes from buffer index `start` (wrapping), as written."""
        axi = self.channels[channel - 1]
        if not axi.samples:
            return np.zeros(count, np.int16)
        written = self._written(channel)
        recorder = self._recorder(channel)
        done = self.fill_done_at(channel)
        complete = done is not None and time.monotonic() >= done
        stopped = recorder.stopped_at is not None or complete
        if stopped:
            buffer = self._whole(channel, written)
            index = (np.arange(count) + start) % axi.samples
            return buffer[index]
        return self._read(channel, written, (np.arange(count) + start) % axi.samples)

    def _whole(self, channel: int, written: int) -> np.ndarray:
        recorder = self._recorder(channel)
        axi = self.channels[channel - 1]
        key = (recorder.key(), written, axi.samples, axi.address)
        cached = self._cache.get(channel)
        if cached is not None and cached[0] == key:
            return cached[1]
        buffer = self._read(channel, written, np.arange(axi.samples))
        self._cache[channel] = (key, buffer)
        return buffer

    def _read(self, channel: int, written: int, index: np.ndarray) -> np.ndarray:
        """The codes at buffer indices: the newest sample written at each."""
        samples = self.channels[channel - 1].samples
        last = written - 1
        k = last - ((last - index) % samples)  # absolute sample numbers
        codes = np.zeros(len(index), np.int16)
        valid = k >= 0
        if not valid.any():
            return codes
        recorder = self._recorder(channel)
        s = recorder.settings
        bench = self.acquisition.bench
        jumper = bench.input(f"in{channel}").jumper
        positions = np.nonzero(valid)[0]
        # runs of consecutive sample numbers are evaluated in one go
        breaks = np.nonzero(np.diff(k[positions]) != 1)[0] + 1
        for run in np.split(positions, breaks):
            for first in range(0, len(run), CHUNK):
                part = run[first : first + CHUNK]
                t0 = self._grid(recorder) + int(k[part[0]]) * recorder.dt
                volts = bench.volts(channel, t0, s.decimation, len(part), s.average)
                codes[part] = quantise(volts, jumper)
        return codes
