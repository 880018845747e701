"""Frames from the camera to HDF5: a preallocated frame ring and a writer thread.

The camera's acquisition thread copies each frame once, into a slot of the
ring; the writer thread writes slots to the file with `write_direct_chunk`
(one chunk per frame, as the bytes are) and frees them. When the writer
falls behind and the ring is full, new frames are dropped and counted, as a
camera's own buffer drops frames nobody fetched. A preview reader takes a
copy of the newest frame without touching the writer's way.

File layout (one file per detector stage, SWMR so it can be read while it
grows):

- `/entry/data/data`: the frames, (N, height, width), chunks (1, h, w);
- `/entry/frame_number`, `/entry/timestamp`, `/entry/exposure`: per frame;
- `/entry/stats/total`, `/entry/stats/centroid_x`, `/entry/stats/centroid_y`:
  per frame, above the bias (centroid in pixels of the frame).

A frame lost on the way (the ring was full, or the camera reported a gap in
its frame numbers) is stored as a zero frame with frame number -1 and NaN
statistics: frame i of the file stays exposure i of the acquisition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from labsky.devices.pvcam._backend import FrameInfo

logger = logging.getLogger(__name__)

STATS = ("total", "centroid_x", "centroid_y")
METADATA = {"frame_number": np.int64, "timestamp": np.float64, "exposure": np.float64}


class FrameRing:
    """Preallocated frame slots between one producer and one consumer.

    Args:
        slots: Number of frames it holds.
        shape: (height, width).
        dtype: Pixel type.
    """

    def __init__(self, slots: int, shape: tuple[int, int], dtype: np.dtype):
        self.frames = np.empty((slots, *shape), dtype)
        self.frames.fill(0)  # fault the pages in now, not during the first frames
        self.infos: list[FrameInfo | None] = [None] * slots
        self.gaps = [0] * slots  # frames lost just before each slot's frame
        self.slots = slots
        self.produced = 0  # frames committed
        self.consumed = 0  # frames freed by the writer
        self.dropped = 0
        self.pending_gap = 0  # lost since the last committed frame
        self.trailing_gap = 0  # lost after the last frame of an acquisition
        self._cond = threading.Condition()

    def matches(self, slots: int, shape: tuple[int, int], dtype: np.dtype) -> bool:
        """Whether this ring has that geometry (then it can be reused)."""
        return (self.slots, self.frames.shape[1:], self.frames.dtype) == (
            slots,
            tuple(shape),
            dtype,
        )

    def reset(self) -> None:
        """Empty the ring for a new acquisition (keeps its memory)."""
        with self._cond:
            self.produced = self.consumed = self.dropped = 0
            self.pending_gap = self.trailing_gap = 0
            self.infos = [None] * self.slots

    def reserve(self) -> np.ndarray | None:
        """The next free slot, or None (the frame is dropped and counted)."""
        with self._cond:
            if self.produced - self.consumed >= self.slots:
                self.dropped += 1
                self.pending_gap += 1
                return None
            return self.frames[self.produced % self.slots]

    def commit(self, info: FrameInfo) -> None:
        """The reserved slot now holds a frame."""
        with self._cond:
            self.infos[self.produced % self.slots] = info
            self.gaps[self.produced % self.slots] = self.pending_gap
            self.pending_gap = 0
            self.produced += 1
            self._cond.notify_all()

    def end(self) -> None:
        """The acquisition ended: frames lost at its end become placeholders too."""
        with self._cond:
            self.trailing_gap += self.pending_gap
            self.pending_gap = 0
            self._cond.notify_all()

    def lost(self, count: int) -> None:
        """Frames the camera lost before they reached the ring."""
        with self._cond:
            self.dropped += count
            self.pending_gap += count

    def wait_frames(self, timeout: float) -> tuple[int, int]:
        """Wait for frames to write; return the range [first, end) of them."""
        with self._cond:
            if self.produced == self.consumed and not self.trailing_gap:
                self._cond.wait(timeout)
            return self.consumed, self.produced

    def slot(self, index: int) -> tuple[np.ndarray, FrameInfo, int]:
        """Frame `index` (absolute), its info and the frames lost before it."""
        info = self.infos[index % self.slots]
        assert info is not None
        return self.frames[index % self.slots], info, self.gaps[index % self.slots]

    def take_trailing_gap(self) -> int:
        """Frames lost at the end of the last acquisition (then forgotten)."""
        with self._cond:
            gap, self.trailing_gap = self.trailing_gap, 0
            return gap

    def free(self, end: int) -> None:
        """Frames before `end` are written: their slots may be reused."""
        with self._cond:
            self.consumed = end
            self._cond.notify_all()

    def latest(self) -> tuple[np.ndarray, FrameInfo] | None:
        """A copy of the newest frame, for a live preview (None before any)."""
        with self._cond:
            if self.produced == 0:
                return None
            frame, info, _ = self.slot(self.produced - 1)
            return frame.copy(), info


def frame_stats(frame: np.ndarray, bias: float) -> tuple[float, float, float]:
    """Total signal above the bias and its centroid, from every 4th pixel."""
    sample = frame[::4, ::4].astype(np.float32) - bias
    np.maximum(sample, 0, out=sample)
    total = float(sample.sum())
    if total <= 0:
        return 0.0, float("nan"), float("nan")
    rows = sample.sum(axis=1)
    cols = sample.sum(axis=0)
    y = float(np.dot(rows, np.arange(rows.size)) / total) * 4
    x = float(np.dot(cols, np.arange(cols.size)) / total) * 4
    return total * 16, x, y


class FrameWriter:
    """Write a frame ring into one HDF5 file, on a thread of its own.

    Args:
        path: The file to create.
        ring: Where frames come from.
        on_written: Called (on the writer thread) with the number of frames
            written and flushed (visible to SWMR readers).
        bias: Bias level (ADU) subtracted for the per-frame statistics.
        flush_period: Longest time written frames wait for a flush, s.
        compression: None, or "blosc-lz4" (hdf5plugin; slower: the filter
            path instead of direct chunk writes).
    """

    def __init__(
        self,
        path: Path,
        ring: FrameRing,
        on_written: Callable[[int], None],
        bias: float = 100.0,
        flush_period: float = 0.2,
        compression: str | None = None,
    ):
        self.path = path
        self.ring = ring
        self.on_written = on_written
        self.bias = bias
        self.flush_period = flush_period
        self.compression = compression
        self.written = 0
        self.flushed = 0
        self.error: BaseException | None = None
        _, height, width = ring.frames.shape
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(path, "w", libver="latest")
        filters = {}
        if compression == "blosc-lz4":
            import hdf5plugin

            filters = dict(
                hdf5plugin.Blosc(
                    cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE
                )
            )
        self._frames = self._file.create_dataset(
            "/entry/data/data",
            shape=(0, height, width),
            maxshape=(None, height, width),
            chunks=(1, height, width),
            dtype=ring.frames.dtype,
            **filters,
        )
        self._columns = {
            name: self._file.create_dataset(
                f"/entry/{name}",
                shape=(0,),
                maxshape=(None,),
                chunks=(4096,),
                dtype=dtype,
            )
            for name, dtype in METADATA.items()
        } | {
            name: self._file.create_dataset(
                f"/entry/stats/{name}",
                shape=(0,),
                maxshape=(None,),
                chunks=(4096,),
                dtype="f8",
            )
            for name in STATS
        }
        self._pending: dict[str, list[float]] = {name: [] for name in self._columns}
        self._zero: bytes | None = None
        self._file.swmr_mode = True
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"frames {path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        last_flush = time.monotonic()
        try:
            while True:
                stopping = self._stop.is_set()
                first, end = self.ring.wait_frames(0.05)
                for index in range(first, end):
                    self._write(index)
                if end > first:
                    self.ring.free(end)
                self._placeholders(self.ring.take_trailing_gap())
                since = time.monotonic() - last_flush
                caught_up = self.ring.produced == end  # nothing more waiting
                if self.written > self.flushed and (
                    stopping
                    or since >= self.flush_period
                    or (caught_up and since >= 0.01)
                ):  # a lone frame (step scans) is visible at once
                    self._flush()
                    last_flush = time.monotonic()
                if stopping and end == first and self.flushed == self.written:
                    break
        except BaseException as exc:  # reported by the detector
            self.error = exc
            logger.exception("frame writer for %s stopped", self.path)

    def _placeholders(self, count: int) -> None:
        """Zero frames (frame number -1) for frames lost on the way.

        So frame i of the file stays trigger i of the acquisition.
        """
        if not count:
            return
        if self._zero is None:
            self._zero = bytes(self.ring.frames[0].nbytes)
        for _ in range(count):
            position = self.written
            self._frames.resize(position + 1, axis=0)
            if self.compression:
                self._frames[position] = 0
            else:
                self._frames.id.write_direct_chunk((position, 0, 0), self._zero)
            for name in self._pending:
                self._pending[name].append(-1 if name == "frame_number" else np.nan)
            self.written = position + 1

    def _write(self, index: int) -> None:
        frame, info, gap = self.ring.slot(index)
        self._placeholders(gap)
        position = self.written
        self._frames.resize(position + 1, axis=0)
        if self.compression:
            self._frames[position] = frame
        else:
            self._frames.id.write_direct_chunk((position, 0, 0), frame.data)
        pending = self._pending
        pending["frame_number"].append(info.number)
        pending["timestamp"].append(info.timestamp)
        pending["exposure"].append(info.exposure)
        for name, value in zip(STATS, frame_stats(frame, self.bias), strict=True):
            pending[name].append(value)
        self.written = position + 1

    def _flush(self) -> None:
        for name, values in self._pending.items():
            if values:
                dataset = self._columns[name]
                start = dataset.shape[0]
                dataset.resize(start + len(values), axis=0)
                dataset[start:] = values
                values.clear()
        self._file.flush()
        self.flushed = self.written
        self.on_written(self.written)

    def close(self, timeout: float = 60.0) -> None:
        """Write every frame in the ring, flush, close the file (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout)
        if self._file.id.valid:
            self._file.close()
