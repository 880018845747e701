"""Who holds a data directory: the live process writing its ring, its storage worker.

A session refuses a data directory another live session writes; recovery
waits for, or refuses, a storage worker still draining one. Both look here,
without importing HDF5 (the session's process never needs it).
"""

from __future__ import annotations

import os
from pathlib import Path

from labsky.errors import LabskyError
from labsky.pipeline.format import WORKER_PID
from labsky.pipeline.ring.layout import HEADER
from labsky.processes import pid_alive


class RingInUseError(LabskyError, RuntimeError):
    """Another live process is writing the ring or storing its data."""


def live_worker(runs_dir: Path) -> int | None:
    """The pid of a storage worker still using `runs_dir`, if one runs."""
    try:
        pid = int((runs_dir / WORKER_PID).read_text())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and pid_alive(pid) else None


def ring_writer_pid(ring_path: Path) -> int | None:
    """The pid of the live process writing a ring file, if any."""
    try:
        with ring_path.open("rb") as f:
            header = f.read(HEADER.size)
    except OSError:
        return None
    if len(header) < HEADER.size:
        return None
    pid = HEADER.unpack(header)[-1]
    return pid if pid != os.getpid() and pid_alive(pid) else None
