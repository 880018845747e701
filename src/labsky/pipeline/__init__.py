"""The data pipeline: RingWriter -> ring -> storage worker -> HDF5 run files -> Tiled.

`DataPipeline` (the session's end) holds the ring and its `RingWriter`; the
storage worker process drains the ring into one HDF5 file per run (the
durable reader, `HDF5Sink`) and keeps the Tiled catalog in step
(`CatalogWriter`). The format every part speaks, ring batches and the run-file
layout, is `labsky.pipeline.format`, at the bottom of the package.
"""

from labsky.pipeline.control import (
    CatalogAddress,
    CatalogLag,
    DataPipeline,
    ProfileInUseError,
    StorageError,
    ring_path,
)
from labsky.pipeline.holders import RingInUseError
from labsky.pipeline.report import RecoveryError, RecoveryReport
from labsky.pipeline.writer import RingWriter

__all__ = [
    "CatalogAddress",
    "CatalogLag",
    "DataPipeline",
    "ProfileInUseError",
    "RecoveryError",
    "RecoveryReport",
    "RingInUseError",
    "RingWriter",
    "StorageError",
    "ring_path",
]
