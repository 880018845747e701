"""Finish what a process that died mid-run left behind.

`recover` reads the ring file from the HDF5 sink's committed cursor into the
run files (resumed from their committed rows), then closes every run that is
still open with a stop document saying it was recovered. It is what
`labsky recover` runs, and what a session does before it reuses its ring.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from labsky.processes import pid_alive
from labsky.ring import RingReader
from labsky.ring.layout import FREE, HEADER, MAGIC
from labsky.storage.sink import OPEN_RUNS, HDF5Sink, Notify

logger = logging.getLogger(__name__)

SINK_CURSOR = 0  # the HDF5 sink is the first durable reader of every ring
WORKER_PID = "storage-worker.pid"  # in the runs directory while a worker runs


class RingInUseError(RuntimeError):
    """Another live process is writing the ring."""


@dataclass
class RecoveryReport:
    """What `recover` did.

    Attributes:
        batches: Ring batches replayed into run files.
        runs: Files of the runs it closed.
    """

    batches: int = 0
    runs: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.runs and not self.batches:
            return "nothing to recover"
        files = "".join(f"\n  {p}" for p in self.runs)
        closed = f"closed {len(self.runs)} runs"
        return f"replayed {self.batches} ring batches; {closed}:{files}"


def live_worker(runs_dir: Path) -> int | None:
    """The pid of a storage worker still using `runs_dir`, if one runs."""
    try:
        pid = int((runs_dir / WORKER_PID).read_text())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and pid_alive(pid) else None


def wait_for_worker(runs_dir: Path, timeout: float = 120.0) -> None:
    """Wait while the storage worker of an ended session still drains a directory.

    Raises:
        RingInUseError: If it is still running after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while (other := live_worker(runs_dir)) is not None:
        if time.monotonic() > deadline:
            raise RingInUseError(
                f"the storage worker pid {other} still uses {runs_dir} after "
                f"{timeout:g} s; stop it or give this session another data directory"
            )
        logger.info("waiting for storage worker %d to finish", other)
        threading.Event().wait(0.2)


def _sink_reader(ring_path: Path) -> RingReader | None:
    """A reader at the sink's committed cursor, or None if nothing is pending."""
    if not ring_path.exists() or ring_path.stat().st_size < HEADER.size:
        return None
    with ring_path.open("rb") as f:
        header = f.read(HEADER.size)
    magic, *_, writer_pid = HEADER.unpack(header)
    if magic != MAGIC:
        return None
    if writer_pid != os.getpid() and pid_alive(writer_pid):
        raise RingInUseError(
            f"ring {ring_path} is being written by process {writer_pid}; "
            "stop that session first (or give this one another data directory)"
        )
    reader = RingReader(ring_path, durable_cursor=SINK_CURSOR, auto_commit=False)
    committed = reader.committed
    if committed is None or committed == FREE or committed >= reader.next_seq():
        reader.close()
        return None
    return reader


def recover(
    ring_path: Path, runs_dir: Path, notify: Notify | None = None
) -> RecoveryReport:
    """Replay the ring's uncommitted batches and close the runs left open.

    Args:
        ring_path: The ring file of the session that died (may be gone).
        runs_dir: Its run files' directory.
        notify: Told about every change, as by `HDF5Sink` (the Tiled registrar).

    Returns:
        What was replayed and which runs were closed.

    Raises:
        RingInUseError: If a live process still writes the ring.
    """
    report = RecoveryReport()
    worker = live_worker(runs_dir)
    if worker is not None:
        raise RingInUseError(
            f"a storage worker (pid {worker}) is still storing what its session "
            f"published into {runs_dir}; wait for it to finish (seconds) and retry"
        )
    reader = _sink_reader(ring_path)
    if reader is None and not (runs_dir / OPEN_RUNS).exists():
        return report
    sink = HDF5Sink(reader, runs_dir, notify=notify)
    if reader is not None:
        for batch in reader.read_available():
            sink.handle(batch)
            report.batches += 1
        sink.flush()
    for uid, run in list(sink.runs.items()):
        lengths = {name: s.length for name, s in run.streams.items()}
        stop = {
            "uid": str(uuid.uuid4()),
            "run_start": uid,
            "time": time.time(),
            "exit_status": "fail",
            "reason": "the process died during the run; labsky recovered every "
            "event published before that",
            "num_events": lengths,
        }
        sink.document("stop", stop)
    report.runs = list(sink.closed_runs)
    if reader is not None:
        reader.close()
    (runs_dir / OPEN_RUNS).unlink(missing_ok=True)
    if report.runs:
        logger.warning("%s", report)
    return report
