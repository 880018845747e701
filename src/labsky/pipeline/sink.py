"""`HDF5Sink`: the ring's durable reader, writing every run into its HDF5 file.

It runs on its own thread. It reads batches in order, gathers event rows into
blocks per stream, and flushes the open run files at least every
`flush_seconds`; only then does it commit its ring cursor, so after a crash
reading starts again at the first batch not yet safe on disk (`recover`). It
never skips a batch: a gap in the sequence (which the ring's durable cursor
rules out) stops it with `DataLossError` before anything past the gap is
committed.

What it stores goes on to a `CatalogFeed` (the catalog writer), in ring
order: every document, every events batch, and after each flush how many
rows of each stream are safe in the file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from labsky.errors import LabskyError
from labsky.pipeline.format import (
    CATALOG_PENDING,
    DOCUMENT,
    EVENTS,
    OPEN_RUNS,
    batch_kind,
    decode_document,
    events_header,
    run_file_path,
)
from labsky.pipeline.ring import RingReader
from labsky.pipeline.ring.reader import Batch
from labsky.pipeline.run_file import RunFile

logger = logging.getLogger(__name__)


class DataLossError(LabskyError, RuntimeError):
    """The sink found a gap in the ring's sequence: it stops rather than skip it."""


class CatalogFeed(Protocol):
    """Where the sink sends what it stored (the catalog writer)."""

    def document(self, name: str, doc: dict[str, Any], path: Path) -> None:
        """A document, with the run file it went into."""
        ...

    def events(self, batch: pa.RecordBatch) -> None:
        """An events batch, as stored."""
        ...

    def stored(self, run: str, stream: str, length: int) -> None:
        """`length` rows of a run's stream are now safe in its file."""
        ...


def mark_catalog_pending(runs_dir: Path, uid: str, path: Path) -> None:
    """Record that a run's catalog entry is not complete yet."""
    marks = runs_dir / CATALOG_PENDING
    marks.mkdir(exist_ok=True)
    (marks / uid).write_text(str(path))


def clear_catalog_pending(runs_dir: Path, uid: str) -> None:
    """Record that a run is complete in the catalog."""
    (runs_dir / CATALOG_PENDING / uid).unlink(missing_ok=True)


def catalog_pending(runs_dir: Path) -> dict[str, Path]:
    """The runs whose catalog entry is not complete, with their files."""
    marks = runs_dir / CATALOG_PENDING
    if not marks.is_dir():
        return {}
    return {m.name: Path(m.read_text()) for m in sorted(marks.iterdir())}


def runs_behind(runs_dir: Path) -> dict[str, Path]:
    """Runs whose file the sink has closed but whose catalog entry is not complete.

    What the catalog still lacks, read from the data directory alone (any
    process may ask): pending marks of runs no longer open in the sink. A run
    the sink has just opened may be counted until its next flush records it.
    """
    pending = catalog_pending(runs_dir)
    if not pending:
        return {}
    try:
        open_runs = read_open_runs(runs_dir)
    except OpenRunsError:
        open_runs = {}
    return {uid: path for uid, path in pending.items() if uid not in open_runs}


class HDF5Sink:
    """Drain a ring into one HDF5 file per run.

    Args:
        reader: A reader on the ring's durable cursor, with `auto_commit=False`
            (None when only finishing runs left open, without a ring).
        runs_dir: Directory of the run files (and of `open-runs.json`, which
            records the runs not yet closed, for recovery).
        flush_seconds: Longest time rows wait before the files are flushed.
        block_rows: Rows gathered per stream before a block is written.
        catalog: Told about everything stored (see the module docstring).
        on_error: Called (on the sink thread) if the sink stops on an error.
        first_seq: The sequence number of the first batch it will be handed
            (default: the reader's position); every later one must follow.
    """

    def __init__(
        self,
        reader: RingReader | None,
        runs_dir: Path,
        flush_seconds: float = 0.25,
        block_rows: int = 65536,
        catalog: CatalogFeed | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        first_seq: int | None = None,
    ):
        self.reader = reader
        self.runs_dir = runs_dir
        self.flush_seconds = flush_seconds
        self.block_rows = block_rows
        self.catalog = catalog
        self.on_error = on_error
        self.runs: dict[str, RunFile] = {}
        self.closed_runs: list[Path] = []
        self.left_open: list[Path] = []
        self.rows_written = 0
        self.error: BaseException | None = None
        self._reported: dict[tuple[str, str], int] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        self._expected: int | None = (
            first_seq if first_seq is not None or reader is None else reader.position
        )
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        runs_dir.mkdir(parents=True, exist_ok=True)
        self._resume_open_runs()

    # -- thread -----------------------------------------------------------

    def start(self) -> HDF5Sink:
        """Start the sink thread."""
        self._thread = threading.Thread(
            target=self._run, name="labsky-hdf5-sink", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self.reader is not None
        idle = 0.01
        try:
            while True:
                stopping = self._stop.is_set()
                batches = self.reader.read_available(limit=256)
                for batch in batches:
                    self.handle(batch)
                if self._dirty and (
                    time.monotonic() - self._last_flush >= self.flush_seconds
                    or self._uncommitted() > self.reader.slot_count // 2
                ):
                    self.flush()
                if batches:
                    idle = 0.01
                elif stopping:
                    break
                else:
                    # Nothing new: look again soon (the ring has no doorbell for
                    # its readers; polling costs a few microseconds).
                    self._stop.wait(idle)
                    idle = min(idle * 2, 0.02)
            self.flush()
        except BaseException as exc:  # reported to the session, never swallowed
            logger.exception("HDF5 sink stopped: %s", exc)
            if self.on_error is not None:  # told before any waiter sees it
                self.on_error(exc)
            self.error = exc  # what a waiter (`drain`) looks at
            with self._progress:
                self._progress.notify_all()

    def _uncommitted(self) -> int:
        assert self.reader is not None
        return self.reader.position - (self.reader.committed or 0)

    def drain(
        self, until: int | None = None, stall_seconds: float | None = None
    ) -> None:
        """Wait until everything published so far is in the files and flushed.

        The wait has no fixed bound: it goes on while the sink makes progress.

        Args:
            until: Wait for the batches before this sequence number only.
            stall_seconds: Give up when the sink has committed nothing new
                for this long (None: wait as long as it takes).

        Raises:
            RuntimeError: If the sink failed, or stalled.
        """
        assert self.reader is not None
        target = self.reader.next_seq() if until is None else until
        last, moved = self.reader.committed or 0, time.monotonic()
        with self._progress:
            while (done := self.reader.committed or 0) < target:
                if self.error is not None:
                    raise RuntimeError(f"the HDF5 sink failed: {self.error}")
                if done != last:
                    last, moved = done, time.monotonic()
                if (
                    stall_seconds is not None
                    and time.monotonic() - moved > stall_seconds
                ):
                    raise RuntimeError(
                        f"the HDF5 sink stored nothing for {stall_seconds:g} s, "
                        f"{target - done} batches behind"
                    )
                self._progress.wait(1.0)

    def close(self, timeout: float = 60.0) -> None:
        """Write everything published, then stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.error is None:
            for run in self.runs.values():
                run.close(None)  # left open: recovery finishes it
        self.left_open = [run.path for run in self.runs.values()]
        self.runs.clear()
        if self.reader is not None:
            self.reader.close()

    # -- batches ----------------------------------------------------------

    def handle(self, item: Batch) -> None:
        """Apply one ring batch to the run files.

        Raises:
            DataLossError: If the batch does not follow the previous one.
        """
        if item.missed or (self._expected is not None and item.seq != self._expected):
            raise DataLossError(
                f"the HDF5 sink expected ring batch {self._expected} and got "
                f"{item.seq}: it stops here, committing nothing past the gap; the "
                "ring keeps every batch for `labsky recover`"
            )
        self._expected = item.seq + 1
        batch = item.batch
        kind = batch_kind(batch)
        if kind == EVENTS:
            run = self.runs.get(events_header(batch).run)
            if run is None:
                logger.warning("events for a run that is not open; dropped")
                return
            run.add_events(batch, self.block_rows)
            self.rows_written += batch.num_rows
            self._dirty = True
            if self.catalog is not None:
                self.catalog.events(batch)
        elif kind == DOCUMENT:
            self.document(*decode_document(batch))
            self._dirty = True

    def document(self, name: str, doc: dict[str, Any]) -> None:
        """Apply one document (in ring order)."""
        run = self._run_of(name, doc)
        if name == "start":
            if run is not None:
                return  # replayed after a crash: the file was resumed
            path = run_file_path(self.runs_dir, doc)
            mark_catalog_pending(self.runs_dir, doc["uid"], path)
            self.runs[doc["uid"]] = run = RunFile(path, doc)
            self._share_like_the_data_directory(path)
            self._save_open_runs()
        elif run is None:
            return
        elif name == "descriptor":
            if doc["uid"] in run.stream_descriptor_uids():
                return  # replayed
            run.add_descriptor(doc)
        elif name == "stream_resource":
            run.add_stream_resource(doc)
        elif name == "stream_datum":
            run.add_stream_datum(doc)
        elif name == "stop":
            del self.runs[doc["run_start"]]
            self._report(run)
            run.close(doc)
            self.closed_runs.append(run.path)
            self._save_open_runs()
        if self.catalog is not None:
            self.catalog.document(name, doc, run.path)

    def _share_like_the_data_directory(self, path: Path) -> None:
        """Give a new run file (and its day folder) the data directory's access.

        A data directory readable by the lab's group gives group-readable run
        files; a private one (0700) gives files only its owner reads.
        """
        mode = (self.runs_dir.parent.stat().st_mode | 0o700) & 0o777
        if path.parent.stat().st_mode & 0o777 != mode:
            os.chmod(path.parent, mode)
        os.chmod(path, mode & 0o666)

    def _run_of(self, name: str, doc: Mapping[str, Any]) -> RunFile | None:
        if name == "start":
            return self.runs.get(doc["uid"])
        if name == "stream_datum":
            for run in self.runs.values():
                if doc["descriptor"] in run.stream_descriptor_uids():
                    return run
            return None
        return self.runs.get(doc.get("run_start", ""))

    # -- flushing ---------------------------------------------------------

    def flush(self) -> None:
        """Flush every open file, report new rows, then commit the cursor."""
        for run in self.runs.values():
            self._report(run)
        if self.reader is not None:
            self.reader.commit(self._expected)  # what is applied, not just read
        self._dirty = False
        self._last_flush = time.monotonic()
        with self._progress:
            self._progress.notify_all()

    def _report(self, run: RunFile) -> None:
        lengths = run.flush()
        for stream_name, length in lengths.items():
            key = (run.uid, stream_name)
            if self._reported.get(key, 0) != length:
                self._reported[key] = length
                if self.catalog is not None:
                    self.catalog.stored(run.uid, stream_name, length)

    # -- open runs --------------------------------------------------------

    def _save_open_runs(self) -> None:
        record = {uid: str(run.path) for uid, run in self.runs.items()}
        path = self.runs_dir / OPEN_RUNS
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=1))
        os.replace(temporary, path)

    def _resume_open_runs(self) -> None:
        for uid, file in read_open_runs(self.runs_dir).items():
            if not file.exists():
                logger.error("open run %s: its file %s is gone", uid, file)
                continue
            self.runs[uid] = run = RunFile.resume(file)
            for stream in run.streams.values():
                self._reported[(uid, stream.name)] = stream.length
            logger.warning("resumed run %s from %s", uid, file)


class OpenRunsError(LabskyError, ValueError):
    """`open-runs.json` cannot be read."""


def read_open_runs(runs_dir: Path) -> dict[str, Path]:
    """The runs a sink left open in `runs_dir`, with their files.

    Raises:
        OpenRunsError: If the record is damaged (naming it).
    """
    path = runs_dir / OPEN_RUNS
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return {str(uid): Path(str(file)) for uid, file in record.items()}
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpenRunsError(
            f"{path} is damaged ({exc}); it lists the runs left open (uid -> file)"
        ) from None
