"""The Arrow ring buffer: one writer, many readers, over a memory-mapped file.

`RingBuffer` publishes Arrow record batches with sequence numbers; `RingReader`
follows them from any thread or process with only pyarrow. Durable readers
(the HDF5 sink) are never overrun; live readers may be, and are told how many
batches they missed. The byte layout is in `labsky.ring.layout`.
"""

from labsky.ring.reader import Batch, RingReader
from labsky.ring.writer import RingBuffer, RingFullError

__all__ = ["Batch", "RingFullError", "RingReader", "RingBuffer"]
