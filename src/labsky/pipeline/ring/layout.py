"""Byte layout of a ring file, shared by the writer and the readers.

The file is a header page followed by `slot_count` slots of `slot_size` bytes::

    header (4096 bytes)
      0   magic        8s   b"LSKYRNG1"
      8   slot_count   u32
      12  waiting      u32  1 while the writer waits for a durable reader (it
                             then sleeps on the wake FIFO `<ring>.wake`)
      16  slot_size    u64
      24  next_seq     u64  sequence number the writer will publish next
      32  writer_pid   u64
      40  cursors      16 x u64  next sequence each durable reader needs;
                             0xFFFF_FFFF_FFFF_FFFF marks a free cursor
    slot (slot_size bytes)
      0   seq          u64  sequence number held; written last (commit mark)
      8   length       u64  payload bytes
      16  payload      an Arrow IPC stream (schema + one record batch)

Readers check `next_seq` *before* a slot's `seq`: the writer commits a slot
(its `seq`) before it advances `next_seq`, so a slot that does not hold the
wanted batch while `next_seq` is already past it has really been overwritten.

A durable reader that commits while `waiting` is set writes one byte into
the wake FIFO, so the writer waits on the event it needs, not on a timer.

This module needs only the standard library so that a reader in another
process needs nothing but pyarrow and these constants.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = b"LSKYRNG1"
HEADER_SIZE = 4096
SLOT_HEADER = struct.Struct("<QQ")
HEADER = struct.Struct("<8sIIQQQ")
MAX_CURSORS = 16
CURSORS_OFFSET = HEADER.size
FREE = 0xFFFF_FFFF_FFFF_FFFF
EMPTY = 0xFFFF_FFFF_FFFF_FFFF  # seq of a slot never written
NEXT_SEQ_OFFSET = 24
WAITING_OFFSET = 12


def slot_offset(seq: int, slot_count: int, slot_size: int) -> int:
    """Byte offset of the slot that holds sequence number `seq`."""
    return HEADER_SIZE + (seq % slot_count) * slot_size


def cursor_offset(index: int) -> int:
    """Byte offset of durable-reader cursor `index`."""
    return CURSORS_OFFSET + 8 * index


def wake_path(ring: Path) -> Path:
    """The FIFO a durable reader writes to when it frees room for a waiting writer."""
    return ring.with_name(ring.name + ".wake")
