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

from labsky.ring.layout import (
    EMPTY,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    NEXT_SEQ_OFFSET,
    SLOT_HEADER,
    cursor_offset,
    slot_offset,
)

_U64 = struct.Struct("<Q")


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
        fd = os.open(
            self.path, os.O_RDWR if durable_cursor is not None else os.O_RDONLY
        )
        try:
            size = os.fstat(fd).st_size
            access = (
                mmap.ACCESS_WRITE if durable_cursor is not None else mmap.ACCESS_READ
            )
            self._map = mmap.mmap(fd, size, access=access)
        finally:
            os.close(fd)
        magic, self.slot_count, _, self.slot_size, _, self.writer_pid = (
            HEADER.unpack_from(self._map, 0)
        )
        if magic != MAGIC:
            raise ValueError(f"{self.path} is not a labsky ring (magic {magic!r})")
        if size < HEADER_SIZE + self.slot_count * self.slot_size:
            raise ValueError(f"{self.path} is truncated")
        self._cursor = durable_cursor
        head = self.next_seq()
        if durable_cursor is not None:
            self._seq = _U64.unpack_from(self._map, cursor_offset(durable_cursor))[0]
        elif start == "latest":
            self._seq = head
        elif start is None:
            self._seq = max(0, head - self.slot_count)
        else:
            self._seq = int(start)
        self.missed = 0

    def next_seq(self) -> int:
        """The sequence number the writer will publish next."""
        return _U64.unpack_from(self._map, NEXT_SEQ_OFFSET)[0]

    @property
    def position(self) -> int:
        """The sequence number this reader will return next."""
        return self._seq

    def read_next(self) -> Batch | None:
        """Return the next batch, or None if the writer has not published it yet."""
        while True:
            seq = self._seq
            offset = slot_offset(seq, self.slot_count, self.slot_size)
            held = _U64.unpack_from(self._map, offset)[0]
            if held == seq:
                length = _U64.unpack_from(self._map, offset + 8)[0]
                start = offset + SLOT_HEADER.size
                payload = bytes(self._map[start : start + length])
                if _U64.unpack_from(self._map, offset)[0] == seq:  # not torn
                    batch = pa.ipc.open_stream(pa.py_buffer(payload)).read_next_batch()
                    missed, self.missed = self.missed, 0
                    self._advance(seq + 1)
                    return Batch(seq, batch, missed)
            elif held == EMPTY and self.next_seq() <= seq:
                return None  # never written, or being written as `seq` right now
            elif held != EMPTY and held < seq:
                return None  # the slot still holds an older batch
            # Overrun: the writer lapped this reader; skip to the oldest safe batch.
            head = self.next_seq()
            oldest = max(seq + 1, head - self.slot_count + 1)
            self.missed += oldest - seq
            self._advance(oldest)

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
        """Tell the writer every batch before `seq` (default: all read) is safe."""
        if self._cursor is not None:
            value = self._seq if seq is None else seq
            _U64.pack_into(self._map, cursor_offset(self._cursor), value)

    @property
    def committed(self) -> int | None:
        """The durable cursor's value: the first batch not yet committed."""
        if self._cursor is None:
            return None
        return _U64.unpack_from(self._map, cursor_offset(self._cursor))[0]

    def close(self) -> None:
        """Unmap the file."""
        self._map.close()
