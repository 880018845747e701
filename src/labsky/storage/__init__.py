"""Run files: the HDF5 sink that drains the ring, and crash recovery."""

from labsky.storage.recover import RecoveryReport, RingInUseError, recover
from labsky.storage.run_file import RunFile
from labsky.storage.sink import HDF5Sink, run_file_path

__all__ = [
    "HDF5Sink",
    "RecoveryReport",
    "RingInUseError",
    "RunFile",
    "recover",
    "run_file_path",
]
