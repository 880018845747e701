"""Finish what a process that died mid-run left behind, refusing what it cannot read.

`recover` replays the ring's batches after the HDF5 sink's committed cursor
into the run files (resumed from their committed rows), then closes every
run still open with a stop document saying it was recovered. It is what
`labsky recover` runs, and what a storage worker does before a session uses
its ring.

It changes nothing it has not read first: the ring's header and every batch
to replay are checked, `open-runs.json` is parsed, and each run file left open
is read in a child process with a time limit (`labsky.pipeline.probe`). What
cannot be read is refused with `RecoveryError`, naming the file and what is
wrong; the ring and the files are kept. When a batch in the middle of the
ring is damaged, every batch before it is still saved into the run files,
which stay open, and the error says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from event_model import compose_stop

from labsky.pipeline.format import OPEN_RUNS, SINK_CURSOR
from labsky.pipeline.holders import RingInUseError, live_worker, ring_writer_pid
from labsky.pipeline.probe import probe
from labsky.pipeline.report import RecoveryError, RecoveryReport
from labsky.pipeline.ring import RingError, RingReader
from labsky.pipeline.ring.layout import HEADER, HEADER_SIZE
from labsky.pipeline.ring.reader import Batch
from labsky.pipeline.sink import (
    CatalogFeed,
    HDF5Sink,
    OpenRunsError,
    read_open_runs,
)

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    """What the ring still holds for the sink, read before anything changes."""

    batches: list[Batch] = field(default_factory=list)
    next_seq: int = 0
    damage: str = ""  # why reading stopped before next_seq


def _read_pending(ring_path: Path) -> _Pending | None:
    """Every batch after the sink's committed cursor; None if there is no ring.

    Raises:
        RecoveryError: If the ring's header is damaged.
    """
    if not ring_path.exists():
        return None
    if ring_path.stat().st_size < HEADER_SIZE:
        raise RecoveryError(
            f"the ring {ring_path} is {ring_path.stat().st_size} bytes, shorter than "
            "its header: it is damaged. It is kept; the runs it fed stay open"
        )
    try:
        reader = RingReader(ring_path, durable_cursor=SINK_CURSOR, auto_commit=False)
    except RingError as exc:
        if "is not registered" in str(exc) and _never_written(ring_path):
            return _Pending()  # the session died before its sink attached
        raise RecoveryError(
            f"{exc}. The ring is kept; the runs it fed stay open"
        ) from None
    pending = _Pending(next_seq=reader.next_seq())
    try:
        while (batch := reader.read_next()) is not None:
            pending.batches.append(batch)
    except RingError as exc:
        pending.damage = str(exc)
    finally:
        reader.close()
    return pending


def _never_written(ring_path: Path) -> bool:
    with ring_path.open("rb") as f:
        header = f.read(HEADER.size)
    return HEADER.unpack(header)[4] == 0  # next_seq


def recover(
    ring_path: Path,
    runs_dir: Path,
    catalog: CatalogFeed | None = None,
    without_ring: bool = False,
) -> RecoveryReport:
    """Replay the ring's uncommitted batches and close the runs left open.

    Args:
        ring_path: The ring file of the session that died (may be gone).
        runs_dir: Its run files' directory.
        catalog: Told about everything stored, as by `HDF5Sink`.
        without_ring: Close runs left open although their ring is gone (after
            a reboot cleared `/dev/shm`), with the rows their files hold.

    Returns:
        What was replayed and which runs were closed. The caller may delete
        the ring afterwards: everything in it is stored.

    Raises:
        RingInUseError: If a live process still writes the ring.
        RecoveryError: If something cannot be read (nothing unread is lost).
    """
    worker = live_worker(runs_dir)
    if worker is not None:
        raise RingInUseError(
            f"a storage worker (pid {worker}) is still storing what its session "
            f"published into {runs_dir}; wait for it to finish (seconds) and retry"
        )
    writer = ring_writer_pid(ring_path)
    if writer is not None:
        raise RingInUseError(
            f"ring {ring_path} is being written by process {writer}; "
            "stop that session first (or give this one another data directory)"
        )
    try:
        open_runs = read_open_runs(runs_dir)
    except OpenRunsError as exc:
        raise RecoveryError(f"{exc}. Nothing was changed") from None
    pending = _read_pending(ring_path)
    report = RecoveryReport()
    if pending is None and open_runs and not without_ring:
        listed = "".join(f"\n  {p}" for p in open_runs.values())
        raise RecoveryError(
            f"{len(open_runs)} runs were left open, but their ring {ring_path} is "
            "gone (a reboot clears /dev/shm), so rows published after the files' "
            f"last flush cannot be recovered. The files are safe:{listed}\nTo close "
            "them with the rows they hold: labsky recover PROFILE --without-ring"
        )
    if not open_runs and (pending is None or not pending.batches):
        return report
    problems = [r for r in map(probe, open_runs.values()) if r.problem]
    if problems:
        listed = "".join(f"\n  {r.path} {r.problem}" for r in problems)
        raise RecoveryError(
            f"cannot recover: a run file left open cannot be read:{listed}\n"
            "Nothing was changed (the ring is kept). Move a damaged file aside "
            "and run labsky recover again: the rows the ring still holds for it "
            "then go to a new file"
        )
    first = pending.batches[0].seq if pending is not None and pending.batches else None
    sink = HDF5Sink(None, runs_dir, catalog=catalog, first_seq=first)
    if pending is not None and pending.batches:
        for batch in pending.batches:
            sink.handle(batch)
            report.batches += 1
        sink.flush()
    if pending is not None and pending.damage:
        for run in sink.runs.values():
            run.close(None)
        raise RecoveryError(
            f"{pending.damage}. The {report.batches} batches before it are saved in "
            f"the run files, which stay open; the ring {ring_path} is kept"
        )
    reason = (
        "the process died during the run; labsky recovered every event published "
        "before that"
        if pending is not None
        else "the process died during the run and its ring was gone; the run holds "
        "the rows its file had"
    )
    for run in list(sink.runs.values()):
        stop = compose_stop(
            start=run.start,  # type: ignore[arg-type]
            event_counters={name: s.length + 1 for name, s in run.streams.items()},
            poison_pill=[],
            exit_status="fail",
            reason=reason,
        )
        sink.document("stop", dict(stop))
    report.runs = list(sink.closed_runs)
    (runs_dir / OPEN_RUNS).unlink(missing_ok=True)
    if report.runs:
        logger.warning("%s", report)
    return report
