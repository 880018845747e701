"""Who holds a data directory: the live process writing its ring, its storage worker.

A session refuses a data directory another live session writes; recovery
waits for, or refuses, a storage worker still draining one. Both look here,
without importing HDF5 (the session's process never needs it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labsky.errors import LabskyError
from labsky.pipeline.format import WORKER_PID
from labsky.pipeline.ring.layout import HEADER, MAGIC
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


def _header(ring_path: Path) -> tuple[Any, ...] | None:
    """The ring file's header fields, or None if it has no whole header yet."""
    try:
        with ring_path.open("rb") as f:
            header = f.read(HEADER.size)
    except OSError:
        return None
    return HEADER.unpack(header) if len(header) == HEADER.size else None


def recorded_writer(ring_path: Path) -> int | None:
    """The pid a finished ring's header names as its writer, alive or not.

    None while the ring is being made (no header, or no magic number yet).
    """
    fields = _header(ring_path)
    return fields[-1] if fields is not None and fields[0] == MAGIC else None


def ring_writer_pid(ring_path: Path) -> int | None:
    """The pid of the live process writing a ring file, if any."""
    fields = _header(ring_path)
    if fields is None:
        return None
    pid = fields[-1]
    return pid if pid != os.getpid() and pid_alive(pid) else None
