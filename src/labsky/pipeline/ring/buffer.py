"""The single writer of a ring file."""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from labsky.errors import LabskyError
from labsky.pipeline.ring.layout import (
    EMPTY,
    FREE,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_CURSORS,
    NEXT_SEQ_OFFSET,
    SLOT_HEADER,
    WAITING_OFFSET,
    cursor_offset,
    slot_offset,
    wake_path,
)

logger = logging.getLogger(__name__)

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
#: The end-of-stream marker of the Arrow IPC stream format.
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


class RingFullError(LabskyError, RuntimeError):
    """A batch is larger than a slot; the message says how to size the ring."""


class StorageStalledError(LabskyError, RuntimeError):
    """The ring is full and its durable reader has stopped taking batches."""


class RingSpaceError(LabskyError, OSError):
    """The ring's directory has no room for the ring; the message says what to do."""


def _reserve(fd: int, path: Path, size: int) -> None:
    """Give the new ring file all its blocks now, or refuse with what to do.

    A mapped file whose pages cannot be backed (a full `/dev/shm`) would kill
    the process with SIGBUS at the first write; reserved blocks cannot fail.
    The file is removed when the room is not there.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # cannot reserve here
            os.ftruncate(fd, size)
            return
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        os.ftruncate(fd, 0)
        path.unlink(missing_ok=True)
        stat = os.statvfs(path.parent)
        free = stat.f_bavail * stat.f_frsize
        others = [p.stat().st_size for p in path.parent.glob("*.ring")]
        held = (
            f"; other rings there ({len(others)}) hold {sum(others) / 2**20:.0f} MiB"
            if others
            else ""
        )
        raise RingSpaceError(
            f"the ring {path} needs {size / 2**20:.0f} MiB but {path.parent} has "
            f"{free / 2**20:.0f} MiB free{held}: free room there (a session that "
            "died leaves its ring for `labsky recover PROFILE`, which stores and "
            "removes it), or make the ring smaller (ring.size_mb) or put it "
            "elsewhere (ring.directory, or LABSKY_RING_DIR)"
        ) from None


class RingBuffer:
    """The writing end of a ring: publish Arrow record batches into a mapped file.

    One writer per ring. Every batch gets the next sequence number. Durable
    readers (`register_durable_reader`) are never overrun: when the ring is
    full the writer waits for the slowest of them and logs that it did (the
    back-pressure). Other readers may be overrun and learn how many batches
    they missed.

    Args:
        path: The ring file; created (or reset) with the given geometry.
        slot_count: Number of slots.
        slot_size: Bytes per slot, including a 16-byte slot header.
        stall_seconds: How long the slowest durable reader may go without
            taking a batch while the writer waits for room, before the wait
            ends with `StorageStalledError` (None waits as long as it takes).
            The wait itself has no bound: a reader that keeps up, however
            slowly, is waited for.
        reader_alive: Optional check, called while waiting for room (at least
            twice a second), that the durable reader still works; False ends
            the wait with `StorageStalledError` at once.
    """

    def __init__(
        self,
        path: str | Path,
        slot_count: int = 256,
        slot_size: int = 256 * 1024,
        stall_seconds: float | None = 60.0,
        reader_alive: Callable[[], bool] | None = None,
    ):
        if slot_count < 2 or slot_size < 1024:
            raise ValueError("a ring needs at least 2 slots of at least 1 KiB")
        self.path = Path(path)
        self.slot_count = slot_count
        self.slot_size = slot_size
        self.stall_seconds = stall_seconds
        self.reader_alive = reader_alive
        self.path.parent.mkdir(parents=True, exist_ok=True)
        size = HEADER_SIZE + slot_count * slot_size
        # Owner only: the ring holds every event of the runs.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older ring file keeps its mode otherwise
            _reserve(fd, self.path, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._map[:HEADER_SIZE] = bytes(HEADER_SIZE)
        # Touch every page now, so publishing never waits on a page fault.
        zeros = bytes(1 << 20)
        for offset in range(HEADER_SIZE, size, len(zeros)):
            end = min(offset + len(zeros), size)
            self._map[offset:end] = zeros[: end - offset]
        HEADER.pack_into(self._map, 0, MAGIC, slot_count, 0, slot_size, 0, os.getpid())
        for index in range(MAX_CURSORS):
            _U64.pack_into(self._map, cursor_offset(index), FREE)
        for seq in range(slot_count):
            _U64.pack_into(self._map, slot_offset(seq, slot_count, slot_size), EMPTY)
        self._next_seq = 0
        self._lock = threading.Lock()
        self.waits = 0  # how many times back-pressure made the writer wait
        self._last_warning = -1e9
        # Durable cursors only move forward, so once a check found the slowest
        # at `_floor`, batches below `_floor + slot_count` need no new check.
        self._floor: int | None = None
        self._schemas: dict[int, tuple[pa.Schema, pa.Buffer]] = {}
        self._wake = self._open_wake_fifo()

    def _open_wake_fifo(self) -> int:
        """Create and hold the FIFO durable readers wake the waiting writer with."""
        path = wake_path(self.path)
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        # Read and write: opening never blocks, and writers always find a reader.
        return os.open(path, os.O_RDWR | os.O_NONBLOCK)

    @property
    def next_seq(self) -> int:
        """Sequence number of the next batch to be published."""
        return self._next_seq

    def register_durable_reader(self, start: int | None = None) -> int:
        """Reserve a cursor for a reader that must see every batch.

        Args:
            start: First sequence number it needs; default: the next one.

        Returns:
            The cursor index to pass to `DurableCursor` / the reader.
        """
        with self._lock:
            for index in range(MAX_CURSORS):
                if _U64.unpack_from(self._map, cursor_offset(index))[0] == FREE:
                    value = self._next_seq if start is None else start
                    _U64.pack_into(self._map, cursor_offset(index), value)
                    self._floor = None
                    return index
        raise RuntimeError(f"{self.path}: all {MAX_CURSORS} durable cursors are taken")

    def _slowest_durable(self) -> int | None:
        values = [
            _U64.unpack_from(self._map, cursor_offset(i))[0] for i in range(MAX_CURSORS)
        ]
        taken = [v for v in values if v != FREE]
        return min(taken) if taken else None

    def _wait_for_room(self, seq: int) -> None:
        if self._floor is not None and seq - self._floor < self.slot_count:
            return
        slowest = self._slowest_durable()
        self._floor = slowest
        if slowest is None or seq - slowest < self.slot_count:
            return
        self.waits += 1
        now = time.monotonic()
        if now - self._last_warning > 10.0:  # say so, but not for every batch
            self._last_warning = now
            logger.warning(
                "ring %s full: the RunEngine waits for the storage worker (at batch "
                "%d, writing %d); %d waits so far",
                self.path,
                slowest,
                seq,
                self.waits,
            )
        _U32.pack_into(self._map, WAITING_OFFSET, 1)
        try:
            self._sleep_until_room(seq, slowest)
        finally:
            _U32.pack_into(self._map, WAITING_OFFSET, 0)

    def _sleep_until_room(self, seq: int, slowest: int) -> None:
        """Sleep on the wake FIFO until the slowest durable reader frees a slot."""
        moved = time.monotonic()
        while True:
            current = self._slowest_durable()
            if current is None or seq - current < self.slot_count:
                return
            now = time.monotonic()
            if current != slowest:
                slowest, moved = current, now
            if self.reader_alive is not None and not self.reader_alive():
                raise StorageStalledError(
                    f"ring {self.path} is full and its durable reader (the storage "
                    "worker) has stopped; what was published is safe in the ring"
                )
            if self.stall_seconds is not None and now - moved > self.stall_seconds:
                raise StorageStalledError(
                    f"ring {self.path} is full and its durable reader has taken no "
                    f"batch for {self.stall_seconds:g} s (stuck at batch {current}); "
                    "what was published is safe in the ring"
                )
            # Woken by the reader's commit (or after half a second, to look at
            # its health); the flag was set before this last look at the cursor,
            # so a commit in between still writes its wake-up.
            ready, _, _ = select.select([self._wake], [], [], 0.5)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake, 4096)

    def _schema_message(self, schema: pa.Schema) -> pa.Buffer:
        cached = self._schemas.get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached[1]
        if len(self._schemas) > 256:
            self._schemas.clear()
        message = schema.serialize()
        self._schemas[id(schema)] = (schema, message)
        return message

    def publish(self, batch: pa.RecordBatch) -> int:
        """Write one record batch and return its sequence number.

        The slot holds a complete Arrow IPC stream: the schema message (kept
        serialised per schema object), the batch message and the end marker.
        """
        return self.publish_bytes(
            self._schema_message(batch.schema), batch.serialize(), _END_OF_STREAM
        )

    def publish_bytes(self, *parts: pa.Buffer | bytes) -> int:
        """Write an Arrow IPC stream given as consecutive parts; return its seq.

        The parts are already serialised (schema message, batch message, end
        marker).
        """
        length = sum(len(part) for part in parts)
        room = self.slot_size - SLOT_HEADER.size
        if length > room:
            raise RingFullError(
                f"a batch of {length} bytes does not fit a {self.slot_size}-byte slot "
                f"of {self.path}; raise ring.slot_size or flush smaller batches"
            )
        with self._lock:
            seq = self._next_seq
            self._wait_for_room(seq)
            offset = slot_offset(seq, self.slot_count, self.slot_size)
            # Invalidate, write the payload, then commit by writing the seq last.
            _U64.pack_into(self._map, offset, EMPTY)
            _U64.pack_into(self._map, offset + 8, length)
            start = offset + SLOT_HEADER.size
            for part in parts:
                size = len(part)
                self._map[start : start + size] = memoryview(part)
                start += size
            _U64.pack_into(self._map, offset, seq)
            self._next_seq = seq + 1
            _U64.pack_into(self._map, NEXT_SEQ_OFFSET, self._next_seq)
        return seq

    def flush(self) -> None:
        """Ask the OS to write the mapping to its file (for a ring on disk)."""
        self._map.flush()

    def close(self) -> None:
        """Unmap the file (the file stays for readers and recovery)."""
        os.close(self._wake)
        wake_path(self.path).unlink(missing_ok=True)
        self._map.close()
