"""The Arrow ring buffer: one writer, many readers, over a memory-mapped file.

`RingBuffer` publishes Arrow record batches with sequence numbers; `RingReader`
follows them from any thread or process with only pyarrow. Durable readers
(the HDF5 sink) are never overrun: the writer waits for them, and a durable
reader that ever finds a batch gone raises instead of skipping it. Live
readers may be overrun, and are told how many batches they missed. The byte
layout is in `labsky.pipeline.ring.layout`.
"""

from labsky.pipeline.ring.buffer import (
    RingBuffer,
    RingFullError,
    RingSpaceError,
    StorageStalledError,
)
from labsky.pipeline.ring.reader import (
    Batch,
    RingCorruptError,
    RingError,
    RingOverrunError,
    RingReader,
)

__all__ = [
    "Batch",
    "RingBuffer",
    "RingCorruptError",
    "RingError",
    "RingFullError",
    "RingOverrunError",
    "RingReader",
    "RingSpaceError",
    "StorageStalledError",
]
