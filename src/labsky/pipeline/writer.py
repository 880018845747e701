"""`RingWriter`: a DocumentRouter that turns a run's documents into Arrow batches.

On the RunEngine thread it only copies event values into preallocated numpy
columns (O(1) per event, O(rows) per event_page) and publishes the columns as
one record batch: at once for slow events (live readers see each within a
millisecond), every `flush_seconds` for fast ones, whenever `flush_rows` rows
wait, and before any other document. Start, descriptor, stop,
stream_resource and stream_datum documents go through the same ring as
one-row batches, so a reader sees one ordered log of the run.

The batch format is `labsky.pipeline.format`'s.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from event_model import DocumentRouter
from event_model.documents import (
    Event,
    EventDescriptor,
    EventPage,
    RunStart,
    RunStop,
    StreamDatum,
    StreamResource,
)

from labsky.pipeline.format import (
    column_dtype,
    document_batch,
    events_metadata,
    events_schema,
    is_json_column,
    key_shape,
    stored_keys,
    to_json,
)
from labsky.pipeline.ring import RingBuffer


class _Columns:
    """Preallocated columns for one descriptor's events."""

    def __init__(
        self, descriptor: EventDescriptor, run: str, capacity: int, max_bytes: int
    ):
        self.keys = stored_keys(descriptor)
        self.shapes = {k: key_shape(descriptor["data_keys"][k]) for k in self.keys}
        self.dtypes = {k: column_dtype(descriptor["data_keys"][k]) for k in self.keys}
        self.json_keys = {
            k for k in self.keys if is_json_column(descriptor["data_keys"][k])
        }
        row_bytes = 64 + sum(
            8 + (64 if dtype is None else dtype.itemsize * int(np.prod(self.shapes[k])))
            for k, dtype in self.dtypes.items()
        )
        # As many rows as fit a ring slot, so big arrays travel in small batches.
        self.capacity = max(1, min(capacity, max_bytes // row_bytes))
        self.metadata = events_metadata(descriptor, run)
        n = self.capacity
        self.rows = 0
        self.seq_num = np.empty(n, np.int64)
        self.time = np.empty(n, np.float64)
        self.timestamps = {k: np.empty(n, np.float64) for k in self.keys}
        self.data: dict[str, Any] = {
            k: [] if d is None else np.empty((n, *self.shapes[k]), d)
            for k, d in self.dtypes.items()
        }
        self._schema: pa.Schema | None = None
        self._ordered = False

    def _follow_event_order(self, data: Any) -> None:
        """Order the columns as the events order their data (as stock tables do)."""
        stored = set(self.keys)
        self.keys = [k for k in data if k in stored] + [
            k for k in self.keys if k not in data
        ]
        self._ordered = True

    def add(self, doc: Event) -> bool:
        """Copy one event in; return True when the columns are full."""
        if not self._ordered:
            self._follow_event_order(doc["data"])
        i = self.rows
        self.seq_num[i] = doc["seq_num"]
        self.time[i] = doc["time"]
        data, stamps = doc["data"], doc["timestamps"]
        for key in self.keys:
            column = self.data[key]
            if isinstance(column, list):
                column.append(data[key])
            else:
                column[i] = data[key]
            self.timestamps[key][i] = stamps[key]
        self.rows = i + 1
        return self.rows == self.capacity

    def add_page(self, page: EventPage, start: int, stop: int) -> bool:
        """Copy rows `start:stop` of an event page in; return True when full."""
        if not self._ordered:
            self._follow_event_order(page["data"])
        i, n = self.rows, stop - start
        self.seq_num[i : i + n] = _numbers(page["seq_num"][start:stop], np.int64)
        self.time[i : i + n] = _numbers(page["time"][start:stop], np.float64)
        for key in self.keys:
            column = self.data[key]
            values = page["data"][key][start:stop]
            if isinstance(column, list):
                column.extend(values)
            else:
                column[i : i + n] = _numbers(values, column.dtype)
            stamps = page["timestamps"][key][start:stop]
            self.timestamps[key][i : i + n] = _numbers(stamps, np.float64)
        self.rows = i + n
        return self.rows == self.capacity

    def take_batch(self) -> pa.RecordBatch:
        """The filled rows as a record batch; the columns start again empty.

        The batch shares the columns' memory: serialise it (publish it)
        before adding more rows.
        """
        n = self.rows
        arrays = [pa.array(self.seq_num[:n]), pa.array(self.time[:n])]
        for key in self.keys:
            arrays.append(
                _arrow_column(
                    self.data[key], n, self.shapes[key], key in self.json_keys
                )
            )
            arrays.append(pa.array(self.timestamps[key][:n]))
            if isinstance(self.data[key], list):
                self.data[key] = []
        if self._schema is None:
            self._schema = self._make_schema(arrays)
        self.rows = 0
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema)

    def _make_schema(self, arrays: list[pa.Array]) -> pa.Schema:
        types = [arrays[2 + 2 * index].type for index in range(len(self.keys))]
        return events_schema(self.keys, types, self.shapes, self.metadata)


def _numbers(values: Any, dtype: Any) -> Any:
    """A list of a page's values as an array (faster than assigning the list)."""
    return np.asarray(values, dtype=dtype) if isinstance(values, list) else values


def _arrow_column(
    column: Any, n: int, shape: tuple[int, ...], json_values: bool
) -> pa.Array:
    if json_values:
        return pa.array([to_json(c) for c in column], pa.string())
    if isinstance(column, list):  # strings
        return pa.array(
            [c if isinstance(c, str) else to_json(c) for c in column], pa.string()
        )
    values = np.ascontiguousarray(column[:n])
    if not shape:
        return pa.array(values)
    size = int(np.prod(shape))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), size)


class RingWriter(DocumentRouter):
    """Publish a run's documents into a ring buffer as Arrow batches.

    An event is published at once when the last batch went out at least
    `min_interval` ago, so events that come slowly (most step scans) reach
    live readers within a millisecond. Faster events wait, at most
    `min_interval`, and go out together with the next one that finds the
    interval passed: at most one batch per `min_interval`, which keeps the
    RunEngine thread's share tiny. A timer thread publishes rows still
    waiting `flush_seconds` after a burst ends.

    Args:
        ring: The ring's writing end.
        flush_rows: Most rows per events batch (fewer for big arrays, so a
            batch fits a ring slot).
        min_interval: Shortest time between two events batches, seconds.
        flush_seconds: Longest time a row waits when no event follows it.
        check: Called before every document is published; it raises if the
            documents can no longer be stored (the storage worker failed),
            which ends the run with that error.
    """

    def __init__(
        self,
        ring: RingBuffer,
        flush_rows: int = 1000,
        min_interval: float = 0.004,
        flush_seconds: float = 0.02,
        check: Callable[[], None] | None = None,
    ):
        super().__init__()
        self.ring = ring
        self.check = check
        self.flush_rows = flush_rows
        self.min_interval = min_interval
        self.flush_seconds = flush_seconds
        self._columns: dict[str, _Columns] = {}
        self._run = ""
        self._last_publish = 0.0
        self._waiting_since: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._timer = threading.Thread(
            target=self._flush_late_rows, name="labsky-ring-flush", daemon=True
        )
        self._timer.start()
        # pyarrow imports pandas the first time it converts Python strings:
        # pay that (half a second) now rather than inside the first run.
        document_batch("warm-up", {}).serialize()

    def _flush_late_rows(self) -> None:
        with self._lock:
            while not self._closed:
                if self._waiting_since is None:
                    self._wake.wait()
                    continue
                late = self._waiting_since + self.flush_seconds - time.monotonic()
                if late > 0:
                    self._wake.wait(late)
                else:
                    self._flush_locked()

    def close(self) -> None:
        """Publish what waits and stop the timer thread."""
        with self._lock:
            self._flush_locked()
            self._closed = True
            self._wake.notify()

    def _publish_document(self, name: str, doc: Any) -> None:
        if self.check is not None:
            self.check()
        with self._lock:
            self._flush_locked()
            self.ring.publish(document_batch(name, doc))

    def _flush_one(self, columns: _Columns) -> None:
        if columns.rows:
            self.ring.publish(columns.take_batch())
            self._last_publish = time.monotonic()

    def flush(self) -> None:
        """Publish every pending row now."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        for columns in self._columns.values():
            self._flush_one(columns)
        self._waiting_since = None

    def _add(self, add: Any) -> None:
        with self._lock:
            add()
            now = time.monotonic()
            if now - self._last_publish >= self.min_interval:
                self._flush_locked()
            elif self._waiting_since is None:
                self._waiting_since = now
                self._arm_timer()

    def _arm_timer(self) -> None:
        """Make sure waiting rows go out within `flush_seconds`.

        Called by the RunEngine (its loop runs), the RunEngine's own loop
        does it: no thread to wake, so no hand-off of the interpreter lock.
        Elsewhere (replayed documents) the timer thread does it.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._wake.notify()
            return
        loop.call_later(self.flush_seconds, self._flush_if_late)

    def _flush_if_late(self) -> None:
        with self._lock:
            since = self._waiting_since
            if (
                since is not None
                and time.monotonic() - since >= self.flush_seconds * 0.9
            ):
                self._flush_locked()

    def _add_rows(self, columns: _Columns, full: bool) -> None:
        if full:
            self._flush_one(columns)

    def start(self, doc: RunStart) -> None:
        self._run = doc["uid"]
        with self._lock:
            self._columns.clear()
        self._publish_document("start", doc)

    def descriptor(self, doc: EventDescriptor) -> None:
        self._publish_document("descriptor", doc)
        columns = _Columns(
            doc, self._run, self.flush_rows, max_bytes=(self.ring.slot_size * 7) // 8
        )
        with self._lock:
            self._columns[doc["uid"]] = columns

    def event(self, doc: Event) -> Event:
        if self.check is not None:
            self.check()
        columns = self._columns[doc["descriptor"]]
        self._add(lambda: self._add_rows(columns, columns.add(doc)))
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        if self.check is not None:
            self.check()
        columns = self._columns[doc["descriptor"]]

        def add() -> None:
            total, done = len(doc["seq_num"]), 0
            while done < total:
                take = min(total - done, columns.capacity - columns.rows)
                full = columns.add_page(doc, done, done + take)
                done += take
                self._add_rows(columns, full)

        self._add(add)
        return doc

    def stream_resource(self, doc: StreamResource) -> None:
        self._publish_document("stream_resource", doc)

    def stream_datum(self, doc: StreamDatum) -> None:
        self._publish_document("stream_datum", doc)

    def stop(self, doc: RunStop) -> None:
        self._publish_document("stop", doc)
        with self._lock:
            self._columns.clear()
