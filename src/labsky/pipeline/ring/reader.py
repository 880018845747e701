"""Read a ring file from any process: needs only pyarrow and the standard library.

A reader polls `read_next()`; it gets record batches in sequence order and,
if the writer lapped it, how many batches it missed. A *durable* reader owns a
cursor in the ring header: the writer waits for it rather than overwrite what
it has not read.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from labsky.errors import LabskyError
from labsky.pipeline.ring.layout import (
    EMPTY,
    FREE,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    NEXT_SEQ_OFFSET,
    SLOT_HEADER,
    WAITING_OFFSET,
    cursor_offset,
    slot_offset,
    wake_path,
)

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingError(LabskyError, RuntimeError):
    """A ring file cannot be read as it should."""


class RingOverrunError(RingError):
    """A durable reader's next batch is gone: the writer lapped it."""


class RingCorruptError(RingError):
    """A ring file's header or a published slot is damaged."""


@dataclass(frozen=True)
class Batch:
    """One published batch.

    Attributes:
        seq: Its sequence number.
        batch: The record batch (schema metadata says what it holds).
        missed: Batches lost to overrun just before this one.
    """

    seq: int
    batch: pa.RecordBatch
    missed: int = 0


class RingReader:
    """Follow a ring file written by another thread or process.

    Args:
        path: The ring file.
        start: First sequence number wanted: `None` starts at the oldest batch
            still in the ring, `"latest"` at the next one to be written.
        durable_cursor: Index of a cursor registered with the writer; the
            reader is never overrun.
        auto_commit: Advance the durable cursor as batches are read (the
            default). A reader that must not lose batches it has read but not
            yet stored (the HDF5 sink) passes False and calls `commit` once
            they are safe; after a crash, reading starts again there.
    """

    def __init__(
        self,
        path: str | Path,
        start: int | str | None = None,
        durable_cursor: int | None = None,
        auto_commit: bool = True,
    ):
        self.path = Path(path)
        self._auto_commit = auto_commit
        self._map = _map_file(self.path, writable=durable_cursor is not None)
        try:
            self._check_header()
            self._cursor = durable_cursor
            head = self.next_seq()
            if durable_cursor is not None:
                self._seq = self._checked_cursor(durable_cursor, head)
            elif start == "latest":
                self._seq = head
            elif start is None:
                self._seq = max(0, head - self.slot_count)
            else:
                self._seq = int(start)
        except BaseException:
            self._map.close()
            raise
        self.missed = 0
        self._wake: int | None = None

    def _check_header(self) -> None:
        size = len(self._map)
        magic, self.slot_count, _, self.slot_size, _, self.writer_pid = (
            HEADER.unpack_from(self._map, 0)
        )
        if magic != MAGIC:
            raise RingCorruptError(
                f"{self.path} is not a labsky ring (its magic number is {magic!r}, "
                f"not {MAGIC!r})"
            )
        if self.slot_count < 2 or self.slot_size < 1024:
            raise RingCorruptError(
                f"{self.path}: its header is damaged ({self.slot_count} slots of "
                f"{self.slot_size} bytes)"
            )
        needed = HEADER_SIZE + self.slot_count * self.slot_size
        if size < needed:
            raise RingCorruptError(
                f"{self.path} is truncated: {size} bytes, its header says {needed}"
            )

    def _checked_cursor(self, index: int, head: int) -> int:
        cursor = _U64.unpack_from(self._map, cursor_offset(index))[0]
        if cursor == FREE:
            raise RingCorruptError(
                f"{self.path}: durable cursor {index} is not registered"
            )
        if cursor > head:
            raise RingCorruptError(
                f"{self.path}: durable cursor {index} is at batch {cursor}, past the "
                f"last batch written ({head}): the header is damaged"
            )
        if head - cursor > self.slot_count:
            raise RingCorruptError(
                f"{self.path}: durable cursor {index} is {head - cursor} batches "
                f"behind, more than the {self.slot_count} slots hold: the header is "
                "damaged"
            )
        return cursor

    def next_seq(self) -> int:
        """The sequence number the writer will publish next."""
        return _U64.unpack_from(self._map, NEXT_SEQ_OFFSET)[0]

    @property
    def position(self) -> int:
        """The sequence number this reader will return next."""
        return self._seq

    def read_next(self) -> Batch | None:
        """Return the next batch, or None if the writer has not published it yet.

        Raises:
            RingOverrunError: A durable reader found its next batch gone (it
                never skips: the caller must stop and keep the ring).
            RingCorruptError: A published slot does not hold a readable batch.
        """
        while True:
            seq = self._seq
            # next_seq first: the writer commits the slot before advancing it,
            # so reading them the other way round could see an empty slot, then
            # next_seq past it, and take a batch being committed for lost.
            head = self.next_seq()
            if head <= seq:
                return None
            offset = slot_offset(seq, self.slot_count, self.slot_size)
            held = _U64.unpack_from(self._map, offset)[0]
            if held == seq:
                length = _U64.unpack_from(self._map, offset + 8)[0]
                if length > self.slot_size - SLOT_HEADER.size:
                    raise RingCorruptError(
                        f"{self.path}: slot of batch {seq} claims {length} bytes, "
                        f"more than a {self.slot_size}-byte slot holds"
                    )
                start = offset + SLOT_HEADER.size
                payload = bytes(self._map[start : start + length])
                if _U64.unpack_from(self._map, offset)[0] == seq:  # not torn
                    batch = self._parse(seq, payload)
                    missed, self.missed = self.missed, 0
                    self._advance(seq + 1)
                    return Batch(seq, batch, missed)
            elif held != EMPTY and held < seq:
                return None  # the commit of `seq` is not visible here yet
            if self._cursor is not None:
                raise RingOverrunError(
                    f"{self.path}: batch {seq} was overwritten before the durable "
                    f"reader {self._cursor} read it (the slot holds {held:#x}); "
                    "nothing was skipped: keep the ring and run `labsky recover`"
                )
            # A live reader was lapped: go on at the oldest batch still safe.
            oldest = max(seq + 1, head - self.slot_count + 1)
            self.missed += oldest - seq
            self._advance(oldest)

    def _parse(self, seq: int, payload: bytes) -> pa.RecordBatch:
        try:
            return pa.ipc.open_stream(pa.py_buffer(payload)).read_next_batch()
        except (pa.ArrowInvalid, OSError, StopIteration) as exc:
            raise RingCorruptError(
                f"{self.path}: batch {seq} is not a readable Arrow batch ({exc})"
            ) from None

    def read_available(self, limit: int | None = None) -> list[Batch]:
        """Return every batch published so far (up to `limit`)."""
        batches: list[Batch] = []
        while limit is None or len(batches) < limit:
            batch = self.read_next()
            if batch is None:
                break
            batches.append(batch)
        return batches

    def _advance(self, seq: int) -> None:
        self._seq = seq
        if self._auto_commit:
            self.commit(seq)

    def commit(self, seq: int | None = None) -> None:
        """Tell the writer every batch before `seq` (default: all read) is safe.

        If the writer waits for room, it is woken through the wake FIFO.
        """
        if self._cursor is None:
            return
        value = self._seq if seq is None else seq
        _U64.pack_into(self._map, cursor_offset(self._cursor), value)
        if _U32.unpack_from(self._map, WAITING_OFFSET)[0]:
            self._wake_writer()

    def _wake_writer(self) -> None:
        try:
            if self._wake is None:
                self._wake = os.open(wake_path(self.path), os.O_WRONLY | os.O_NONBLOCK)
            os.write(self._wake, b"\x01")
        except BlockingIOError:
            pass  # the FIFO is full of wake-ups already
        except OSError:
            self._wake = None  # no writer holds the FIFO open: nobody to wake

    @property
    def committed(self) -> int | None:
        """The durable cursor's value: the first batch not yet committed."""
        if self._cursor is None:
            return None
        return _U64.unpack_from(self._map, cursor_offset(self._cursor))[0]

    def close(self) -> None:
        """Unmap the file."""
        if self._wake is not None:
            os.close(self._wake)
            self._wake = None
        self._map.close()


def _map_file(path: Path, writable: bool) -> mmap.mmap:
    """Map a ring file, with errors that name it."""
    try:
        fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    except FileNotFoundError:
        raise FileNotFoundError(f"there is no ring file at {path}") from None
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise RingCorruptError(
                f"{path} is not a labsky ring: {size} bytes, shorter than its header"
            )
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        return mmap.mmap(fd, size, access=access)
    finally:
        os.close(fd)
