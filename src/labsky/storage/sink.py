"""`HDF5Sink`: the ring's durable reader, writing every run into its HDF5 file.

It runs on its own thread. It reads batches in order, gathers event rows into
blocks per stream, and flushes the open run files at least every
`flush_seconds`; only then does it commit its ring cursor, so after a crash
reading starts again at the first batch not yet safe on disk (`recover`).

Every change readers may care about is reported to `notify(name, payload)`
(called on the sink thread): `start`, `descriptor`, `stream_resource`,
`stream_datum`, `rows` (a stream's committed length after a flush) and
`stop`. The Tiled registrar listens to these.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from labsky.ring import RingReader
from labsky.ring.reader import Batch
from labsky.storage.run_file import RunFile

logger = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, Any]], None]

OPEN_RUNS = "open-runs.json"


def run_file_path(runs_dir: Path, start: Mapping[str, Any]) -> Path:
    """Where a run's file goes: `runs/YYYY-MM-DD/scan00042-1a2b3c4d.h5`."""
    day = datetime.fromtimestamp(float(start["time"])).strftime("%Y-%m-%d")
    scan_id = int(start.get("scan_id") or 0)
    return runs_dir / day / f"scan{scan_id:05d}-{start['uid'][:8]}.h5"


def _ignore(name: str, payload: dict[str, Any]) -> None:
    pass


class HDF5Sink:
    """Drain a ring into one HDF5 file per run.

    Args:
        reader: A reader on the ring's durable cursor, with `auto_commit=False`
            (None when only finishing runs left open, without a ring).
        runs_dir: Directory of the run files (and of `open-runs.json`, which
            records the runs not yet closed, for recovery).
        flush_seconds: Longest time rows wait before the files are flushed.
        block_rows: Rows gathered per stream before a block is written.
        notify: Told about every change (see the module docstring).
        on_error: Called (on the sink thread) if the sink stops on an error.
    """

    def __init__(
        self,
        reader: RingReader | None,
        runs_dir: Path,
        flush_seconds: float = 0.25,
        block_rows: int = 65536,
        notify: Notify | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ):
        self.reader = reader
        self.runs_dir = runs_dir
        self.flush_seconds = flush_seconds
        self.block_rows = block_rows
        self.notify = notify or _ignore
        self.on_error = on_error
        self.runs: dict[str, RunFile] = {}
        self.closed_runs: list[Path] = []
        self.left_open: list[Path] = []
        self.rows_written = 0
        self.error: BaseException | None = None
        self._reported: dict[tuple[str, str], int] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
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
                    self._stop.wait(idle)
                    idle = min(idle * 2, 0.02)  # the sink is not latency-bound
            self.flush()
        except BaseException as exc:  # noqa: BLE001 - reported to the session
            self.error = exc
            logger.exception("HDF5 sink stopped: %s", exc)
            if self.on_error is not None:
                self.on_error(exc)

    def _uncommitted(self) -> int:
        assert self.reader is not None
        return self.reader.position - (self.reader.committed or 0)

    def drain(self, timeout: float = 30.0, until: int | None = None) -> None:
        """Wait until everything published so far is in the files and flushed.

        With `until`, wait for the batches before that sequence number only.
        """
        assert self.reader is not None
        deadline = time.monotonic() + timeout
        while (
            behind := (self.reader.next_seq() if until is None else until)
            - (self.reader.committed or 0)
        ) > 0:
            if self.error is not None:
                raise RuntimeError("the HDF5 sink failed") from self.error
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"HDF5 sink still {behind} batches behind after {timeout} s"
                )
            threading.Event().wait(0.005)

    def close(self, timeout: float = 60.0) -> None:
        """Write everything published, then stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for run in self.runs.values():
            run.close(None)  # left open: recovery finishes it
        self.left_open = [run.path for run in self.runs.values()]
        self.runs.clear()
        if self.reader is not None:
            self.reader.close()

    # -- batches ----------------------------------------------------------

    def handle(self, item: Batch) -> None:
        """Apply one ring batch to the run files."""
        if item.missed:
            logger.error("HDF5 sink missed %d batches: data lost", item.missed)
        batch = item.batch
        meta = batch.schema.metadata or {}
        kind = meta.get(b"kind", b"").decode()
        if kind == "events":
            run = self.runs.get(meta[b"run"].decode())
            if run is None:
                logger.warning("events for a run that is not open; dropped")
                return
            run.add_events(batch, self.block_rows)
            self.rows_written += batch.num_rows
            self._dirty = True
        elif kind == "document":
            name = batch.column("name")[0].as_py()
            doc = json.loads(batch.column("doc")[0].as_py())
            self.document(name, doc)
            self._dirty = True

    def document(self, name: str, doc: dict[str, Any]) -> None:
        """Apply one document (in ring order)."""
        if name == "start":
            if doc["uid"] in self.runs:
                return  # replayed after a crash: the file was resumed
            path = run_file_path(self.runs_dir, doc)
            self.runs[doc["uid"]] = RunFile(path, doc)
            self._save_open_runs()
            self.notify("start", {"doc": doc, "path": path})
        elif name == "descriptor":
            run = self.runs.get(doc["run_start"])
            if run is None:
                return
            if any(doc["uid"] in s.descriptor_uids for s in run.streams.values()):
                return  # replayed
            run.add_descriptor(doc)
            self.notify("descriptor", {"doc": doc, "path": run.path})
        elif name == "stream_resource":
            run = self.runs.get(doc.get("run_start", ""))
            if run is not None:
                run.add_stream_resource(doc)
                self.notify("stream_resource", {"doc": doc})
        elif name == "stream_datum":
            run = self._run_of_descriptor(doc["descriptor"])
            if run is not None:
                run.add_stream_datum(doc)
                self.notify("stream_datum", {"doc": doc})
        elif name == "stop":
            run = self.runs.pop(doc["run_start"], None)
            if run is None:
                return
            self._report(run)
            run.close(doc)
            self.closed_runs.append(run.path)
            self._save_open_runs()
            self.notify("stop", {"doc": doc, "path": run.path})

    def _run_of_descriptor(self, uid: str) -> RunFile | None:
        for run in self.runs.values():
            if any(uid in s.descriptor_uids for s in run.streams.values()):
                return run
        return None

    # -- flushing ---------------------------------------------------------

    def flush(self) -> None:
        """Flush every open file, report new rows, then commit the cursor."""
        for run in self.runs.values():
            self._report(run)
        if self.reader is not None:
            self.reader.commit()
        self._dirty = False
        self._last_flush = time.monotonic()

    def _report(self, run: RunFile) -> None:
        lengths = run.flush()
        for stream_name, length in lengths.items():
            key = (run.uid, stream_name)
            if self._reported.get(key, 0) != length:
                self._reported[key] = length
                stream = run.streams[stream_name]
                self.notify(
                    "rows",
                    {
                        "run": run.uid,
                        "stream": stream_name,
                        "descriptor": stream.descriptor["uid"],
                        "length": length,
                        "path": run.path,
                    },
                )

    # -- open runs --------------------------------------------------------

    def _save_open_runs(self) -> None:
        record = {uid: str(run.path) for uid, run in self.runs.items()}
        path = self.runs_dir / OPEN_RUNS
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=1))
        os.replace(temporary, path)

    def _resume_open_runs(self) -> None:
        path = self.runs_dir / OPEN_RUNS
        if not path.exists():
            return
        for uid, file in json.loads(path.read_text()).items():
            file = Path(file)
            if not file.exists():
                logger.error("open run %s: its file %s is gone", uid, file)
                continue
            self.runs[uid] = run = RunFile.resume(file)
            for stream in run.streams.values():
                self._reported[(uid, stream.name)] = stream.length
            logger.warning("resumed run %s from %s", uid, file)
