"""The catalog writer: every run in Tiled as bluesky's own `TiledWriter` lays it out.

Each run is written by the same pair of callbacks bluesky-tiled-plugins'
`TiledWriter` builds per run (its `RunNormalizer` feeding its run writer), so
the catalog holds the stock layout: the run container with `start` and `stop`
metadata, one `BlueskyEventStream` container per stream with the descriptor
as metadata, and the stream's event data in its `internal` table (SQL table
storage: `seq_num`, `time`, every key, `ts_<key>`), read by stock client code
(`run["primary"].read()`, `c.v1[uid].table()`).

Two things differ from a `TiledWriter` subscribed to the RunEngine, both
because the writer runs in the storage worker and reads what the HDF5 sink
stored:

- Rows are written every `flush_seconds` (one append per stream), not only
  every 10,000 events or at the stop, so a running scan is readable within a
  second. Many short runs queued up cost one append per stream each, at
  their stop.
- Arrays larger than `TiledWriter`'s `max_array_size` (traces, spectra) are
  not copied into Tiled: they are registered as HDF5 datasets of the run file
  (a StreamResource per key, `application/x-hdf5` with SWMR, StreamDatums as
  rows become safe on disk), the way detector frames are. Stock `TiledWriter`
  would write them into Tiled's own array storage.

Live and recovered runs take one path: a run whose file must be registered
again (recovered after a crash, registration failed, `labsky catalog
rebuild`) is read back from its HDF5 file as ring batches and documents and
goes through the same methods as live ones.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from labsky.pipeline.format import (
    ATTR_DESCRIPTORS,
    ATTR_KEYS,
    ATTR_START,
    ATTR_STOP,
    ATTR_STREAM_DATUMS,
    ATTR_STREAM_RESOURCES,
    DATA_GROUP,
    MAX_CHUNK_BYTES,
    SEQ_NUM,
    TIME,
    TIMESTAMPS_GROUP,
    batch_keys,
    column_dtype,
    data_column,
    dataset_path,
    event_page,
    events_header,
    events_metadata,
    key_shape,
    stored_keys,
    stream_groups,
    timestamp_keys,
    timestamps_column,
)
from labsky.pipeline.sink import clear_catalog_pending

logger = logging.getLogger(__name__)

#: TiledWriter's own bound: larger internal arrays leave its table.
MAX_TABLE_ARRAY_SIZE = 16
#: TiledWriter's reserved data key names, renamed with a trailing underscore.
RESERVED_KEYS = ("time", "seq_num")
#: Rows per events batch when a run is read back from its file.
REPLAY_ROWS = 10_000


def file_backed_keys(descriptor: Mapping[str, Any]) -> list[str]:
    """Keys whose values stay in the run file, referenced from Tiled.

    Fixed-shape numeric arrays larger than `TiledWriter`'s `max_array_size`.
    """
    keys = []
    for key in stored_keys(descriptor):
        data_key = descriptor["data_keys"][key]
        shape = key_shape(data_key)
        if (
            data_key.get("dtype") == "array"
            and None not in (data_key.get("shape") or ())
            and column_dtype(data_key) is not None
            and math.prod(shape) > MAX_TABLE_ARRAY_SIZE
        ):
            keys.append(key)
    return keys


def _renamed(key: str) -> str:
    return f"{key}_" if key in RESERVED_KEYS else key


def file_resource(
    run: str, path: Path, descriptor: Mapping[str, Any], key: str
) -> dict[str, Any]:
    """The StreamResource of a file-backed key: its dataset in the run file."""
    stream = descriptor.get("name", "primary")
    data_key = descriptor["data_keys"][key]
    shape = key_shape(data_key)
    dtype = column_dtype(data_key)
    assert dtype is not None
    row_bytes = dtype.itemsize * math.prod(shape)
    return {
        "uid": f"{run}/{stream}/{key}",
        "run_start": run,
        "data_key": _renamed(key),
        "mimetype": "application/x-hdf5",
        "uri": path.absolute().as_uri(),
        "parameters": {
            "dataset": dataset_path(stream, key),
            "chunk_shape": [max(1, MAX_CHUNK_BYTES // row_bytes), *shape],
            "swmr": True,
        },
    }


def stream_datum(resource: str, descriptor: str, start: int, stop: int) -> dict:
    """A StreamDatum saying rows `start:stop` of a resource now exist."""
    return {
        "uid": f"{resource}/{start}-{stop}",
        "stream_resource": resource,
        "descriptor": descriptor,
        "indices": {"start": start, "stop": stop},
        "seq_nums": {"start": start + 1, "stop": stop + 1},
    }


def _live_run_writer_class() -> type:
    """`TiledWriter`'s run writer, able to write what it holds on demand."""
    from bluesky_tiled_plugins.writing.tiled_writer import _RunWriter

    class LiveRunWriter(_RunWriter):
        """A `TiledWriter` run writer whose cached rows can be written now."""

        def flush(self, hold: frozenset[str] = frozenset()) -> None:
            """Write cached StreamDatums, then cached rows (as the stop does).

            Args:
                hold: Streams whose rows wait: their arrays in the run file
                    are not registered yet, and stock makes a stream's array
                    nodes before its table (the order clients list them).
            """
            for uid in list(self._external_data_cache):
                self._write_external_data(self._external_data_cache.pop(uid))
            for desc_name, cache in self._internal_data_cache.items():
                if cache and desc_name not in hold:
                    self._write_internal_data(
                        cache, desc_node=self._desc_nodes[desc_name]
                    )
                    cache.clear()

    return LiveRunWriter


class _RunRoute:
    """One run's writer: `TiledWriter`'s normalizer and run writer.

    Event pages go to the run writer directly (with the normalizer's renaming
    of reserved keys): the normalizer would unpack, deep-copy and validate
    every event one by one, and has nothing else to do with internal data.
    """

    def __init__(self, client: Any, writer_class: type):
        from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer

        self.writer = writer_class(client)
        self.normalizer = RunNormalizer()
        self.normalizer.subscribe(self.writer)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "event_page":
            for part in ("data", "timestamps"):
                values = doc[part]
                for key in RESERVED_KEYS:
                    if key in values:
                        values[f"{key}_"] = values.pop(key)
            self.writer("event_page", doc)
        else:
            self.normalizer(name, doc)

    def flush(self, hold: frozenset[str] = frozenset()) -> None:
        self.writer.flush(hold)


@dataclass
class _Stream:
    descriptor: dict[str, Any]
    table_keys: list[str]
    file_keys: dict[str, str]  # key -> StreamResource uid
    registered: int = 0  # rows of the file-backed keys already in Tiled
    batches: list[pa.RecordBatch] = field(default_factory=list)  # not yet rows
    waiting: int = 0  # rows in `batches`


@dataclass
class _Run:
    uid: str
    path: Path
    route: _RunRoute | None
    descriptors: dict[str, dict[str, Any]] = field(default_factory=dict)
    streams: dict[str, _Stream] = field(default_factory=dict)
    dirty_since: float | None = None  # when its oldest unwritten row came

    @property
    def dirty(self) -> bool:
        return self.dirty_since is not None

    def touch(self) -> None:
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()


@dataclass
class CatalogStatus:
    """How far the catalog is behind the run files.

    Attributes:
        runs_behind: Runs whose file is complete but whose catalog entry
            is not yet.
        errors: Registration failures since the last look (each is retried
            from the run's file).
    """

    runs_behind: int
    errors: list[str]


class CatalogWriter:
    """Keep a Tiled catalog in step with the run files, on a thread of its own.

    It is the HDF5 sink's `CatalogFeed`: the sink hands over what it stored,
    in ring order, and returns at once; a slow server makes the catalog lag,
    never the sink or the RunEngine slower.

    Args:
        connect: Returns the Tiled container of the runs (called in the
            writer's thread, again after failures, so a server still
            starting only delays registration).
        runs_dir: The run files' directory (whose pending marks it clears).
        flush_seconds: Longest time a stored row waits before it is written.
        retry_seconds: First wait before registering a failed run again from
            its file (doubling up to a minute).
        on_registered: Called (on the writer's thread) with each run's uid
            once its catalog entry is complete.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        runs_dir: Path,
        flush_seconds: float = 0.5,
        retry_seconds: float = 2.0,
        on_registered: Callable[[str], None] | None = None,
    ):
        self._connect = connect
        self.on_registered = on_registered
        self.runs_dir = runs_dir
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self._client: Any = None
        self._writer_class: type | None = None
        self._runs: dict[str, _Run] = {}
        self._retry: dict[str, tuple[Path, float, float]] = {}  # uid -> file, due, wait
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._done = 0
        self._behind: set[str] = set()
        self.errors: list[str] = []
        self._abandon = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="labsky-catalog", daemon=True
        )
        self._thread.start()

    # -- the sink's side (any thread) -----------------------------------

    def _put(self, op: str, *args: Any) -> None:
        self._queue.put((op, args))

    def document(self, name: str, doc: dict[str, Any], path: Path) -> None:
        """Take a stored document."""
        if name == "stop":
            with self._lock:
                self._behind.add(doc["run_start"])
        self._put("document", name, doc, path)

    def events(self, batch: pa.RecordBatch) -> None:
        """Take a stored events batch."""
        self._put("events", batch)

    def stored(self, run: str, stream: str, length: int) -> None:
        """Take the news that rows of a stream are safe in the run file."""
        self._put("stored", run, stream, length)

    def register_file(self, path: Path, uid: str | None = None) -> None:
        """Register a closed run file (again), replacing what the catalog has."""
        if uid is not None:
            with self._lock:
                self._behind.add(uid)
        self._put("file", path)

    # -- waiting ----------------------------------------------------------

    def status(self) -> CatalogStatus:
        """How far behind the catalog is; takes the errors reported so far."""
        with self._lock:
            errors, self.errors = self.errors, []
            return CatalogStatus(len(self._behind), errors)

    def sync(self, stall_seconds: float | None = None) -> CatalogStatus:
        """Wait until everything handed over so far is in the catalog.

        There is no fixed bound: the wait goes on while the writer makes
        progress. With `stall_seconds`, it ends (returning what is still
        behind) when nothing was registered for that long.
        """
        done = threading.Event()
        self._put("sync", done)
        last, moved = self._done, time.monotonic()
        while not done.wait(0.5):
            if not self._thread.is_alive():
                break
            with self._lock:
                now = self._done
            if now != last:
                last, moved = now, time.monotonic()
            elif stall_seconds is not None and time.monotonic() - moved > stall_seconds:
                break
        return self.status()

    def close(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop the writer.

        Args:
            wait: Register what is queued first. False stops at once (the
                session died): what is not registered keeps its pending mark
                and is registered by the next worker.
            timeout: Longest wait for the thread when `wait` is true.
        """
        if not wait:
            self._abandon = True
            self._stopping.set()
        self._put("close")
        self._thread.join(timeout if wait else 2.0)

    # -- the writer's thread ---------------------------------------------

    def _loop(self) -> None:
        held: tuple[str, tuple[Any, ...]] | None = None
        backoff = 0.2
        while not self._abandon:
            if held is None:
                try:
                    held = self._queue.get(timeout=self._next_wake())
                except queue.Empty:
                    pass
            if self._abandon:
                return
            if held is not None:
                op, args = held
                if self._client is None and not self._try_connect():
                    if op == "close":
                        return  # nothing can be registered: the marks stay
                    self._stopping.wait(backoff)  # the server may be starting
                    backoff = min(1.0, backoff * 2)
                    continue
                held, backoff = None, 0.2
                if op == "close":
                    self._flush(force=True)
                    return
                self._step(op, args)
                with self._lock:
                    self._done += 1
            # Rows that waited flush_seconds are written, also while a backlog
            # is worked off: a queued short run reaches its stop (which writes
            # its rows in one append per stream) well before its rows wait so long.
            self._flush(force=False)
            self._retry_due()

    def _next_wake(self) -> float | None:
        now = time.monotonic()
        waits = [
            run.dirty_since + self.flush_seconds - now
            for run in self._runs.values()
            if run.dirty_since is not None
        ]
        waits.extend(due - now for _, due, _ in self._retry.values())
        return max(0.0, min(waits)) if waits else None

    def _try_connect(self) -> bool:
        try:
            import bluesky_tiled_plugins  # noqa: F401 - the run client's specs

            self._client = self._connect().include_data_sources()
            self._writer_class = _live_run_writer_class()
        except Exception as exc:  # noqa: BLE001 - any failure to connect: retried
            logger.info("the catalog is not reachable yet: %s", exc)
            return False
        return True

    def _step(self, op: str, args: tuple[Any, ...]) -> None:
        if op == "sync":
            self._flush(force=True)
            args[0].set()
        elif op == "document":
            self._safely(args[0], self._document, *args)
        elif op == "events":
            batch = args[0]
            self._safely("events", self._events, batch)
        elif op == "stored":
            self._safely("stored", self._stored, *args)
        elif op == "file":
            self._register_file(args[0])

    def _safely(self, what: str, action: Callable[..., None], *args: Any) -> None:
        try:
            action(*args)
        except Exception as exc:  # one run's failure never stops the catalog
            run = self._failed_run(what, args)
            message = f"catalog registration of {what} failed: {exc!r}"
            if run is not None:
                message += f"; the run {run.uid} is registered again from {run.path}"
            logger.exception(message)
            with self._lock:
                self.errors.append(message)

    def _failed_run(self, what: str, args: tuple[Any, ...]) -> _Run | None:
        uid = _run_uid(what, args, self._runs)
        run = self._runs.get(uid) if uid else None
        if run is not None:
            # Registered again once its file is complete (its stop is stored);
            # kept, without a writer, to see that stop.
            run.route = None
        return run

    # -- documents --------------------------------------------------------

    def _document(self, name: str, doc: dict[str, Any], path: Path) -> None:
        if name == "start":
            assert self._writer_class is not None
            route = _RunRoute(self._client, self._writer_class)
            self._runs[doc["uid"]] = _Run(doc["uid"], Path(path), route)
            route("start", doc)
            return
        uid = doc.get("run_start") or _run_of_datum(doc, self._runs)
        run = self._runs.get(uid or "")
        if run is None:
            if name == "stop":  # a run resumed after a crash: its whole file
                self._register_file(Path(path))
            return
        if name == "stop":
            self._stop(run, doc)
            return
        if run.route is None:
            return
        if name == "descriptor":
            self._descriptor(run, doc)
        else:
            run.route(name, doc)
            run.touch()

    def _descriptor(self, run: _Run, doc: dict[str, Any]) -> None:
        assert run.route is not None
        run.descriptors[doc["uid"]] = doc
        stream_name = doc.get("name", "primary")
        run.route("descriptor", json.loads(json.dumps(doc)))
        if stream_name in run.streams:
            return
        files = file_backed_keys(doc)
        table = [k for k in stored_keys(doc) if k not in files]
        stream = _Stream(doc, table, {})
        for key in files:
            resource = file_resource(run.uid, run.path, doc, key)
            run.route("stream_resource", resource)
            stream.file_keys[key] = resource["uid"]
        run.streams[stream_name] = stream

    def _events(self, batch: pa.RecordBatch) -> None:
        """Gather a stored events batch; rows go to the run writer in bulk.

        Converting Arrow rows to the event pages `TiledWriter` takes costs
        Python work per row; done once per flush (or per 10,000 rows) on the
        gathered batches, it is paid once instead of per one-event batch.
        """
        header = events_header(batch)
        run = self._runs.get(header.run)
        if run is None or run.route is None:
            return
        stream = run.streams[header.stream]
        if stream.batches and stream.batches[-1].schema != batch.schema:
            self._pages(run, stream)
        stream.batches.append(batch)
        stream.waiting += batch.num_rows
        if stream.waiting >= REPLAY_ROWS:
            self._pages(run, stream)
        run.touch()

    def _pages(self, run: _Run, stream: _Stream) -> None:
        """Hand a stream's gathered batches to the run writer as one event page."""
        if not stream.batches or run.route is None:
            return
        batches, stream.batches, stream.waiting = stream.batches, [], 0
        batch = batches[0]
        if len(batches) > 1:
            batch = pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
        descriptor = run.descriptors[events_header(batch).descriptor]
        # The events' own key order, as stock tables have it; file-backed keys
        # keep their timestamps (the `ts_<key>` columns) but not their values.
        table = set(stream.table_keys)
        keys = [k for k in batch_keys(batch) if k in table]
        page = event_page(batch, descriptor, keys, timestamp_keys(batch))
        run.route("event_page", page)

    def _stored(self, uid: str, stream_name: str, length: int) -> None:
        run = self._runs.get(uid)
        if run is None or run.route is None:
            return
        stream = run.streams.get(stream_name)
        if stream is None or not stream.file_keys or length <= stream.registered:
            return
        for resource in stream.file_keys.values():
            datum = stream_datum(
                resource, stream.descriptor["uid"], stream.registered, length
            )
            run.route("stream_datum", datum)
        stream.registered = length
        run.touch()

    def _stop(self, run: _Run, doc: dict[str, Any]) -> None:
        del self._runs[run.uid]
        if run.route is None:  # registration failed earlier: the whole file
            self._register_file(run.path)
            return
        try:
            for stream in run.streams.values():
                self._pages(run, stream)
            run.route.flush()  # arrays first, as stock orders a stream's nodes
            run.route("stop", doc)
        except Exception as exc:  # noqa: BLE001 - the file is complete: registered again
            self._schedule_retry(run.uid, run.path, exc)
            return
        self._registered(run.uid)

    def _registered(self, uid: str) -> None:
        clear_catalog_pending(self.runs_dir, uid)
        self._retry.pop(uid, None)
        with self._lock:
            self._behind.discard(uid)
        if self.on_registered is not None:
            self.on_registered(uid)

    def _flush(self, force: bool) -> None:
        """Write the rows that waited `flush_seconds` (all of them if forced)."""
        now = time.monotonic()
        for run in list(self._runs.values()):
            since = run.dirty_since
            if since is None or run.route is None:
                continue
            if force or now - since >= self.flush_seconds:
                run.dirty_since = None
                self._safely("rows", self._flush_run, run)

    def _flush_run(self, run: _Run) -> None:
        assert run.route is not None
        for stream in run.streams.values():
            self._pages(run, stream)
        hold = frozenset(
            name for name, s in run.streams.items() if s.file_keys and not s.registered
        )
        run.route.flush(hold)
        if hold:
            run.touch()  # the held rows go at a later flush

    # -- whole files ------------------------------------------------------

    def _register_file(self, path: Path) -> None:
        """Register a closed run file from scratch, replacing an earlier entry."""
        try:
            uid = read_run_uid(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not retried
            message = f"catalog: cannot read the run file {path}: {exc!r}"
            logger.error(message)
            with self._lock:
                self.errors.append(message)
            return
        try:
            if uid in self._client:
                self._client.delete_contents(uid, recursive=True, external_only=False)
            for op, args in run_file_items(path):
                if op == "document":
                    self._document(*args)
                elif op == "events":
                    self._events(*args)
                elif op == "stored":
                    self._stored(*args)
        except Exception as exc:  # noqa: BLE001 - retried later, with a growing wait
            self._runs.pop(uid, None)
            self._schedule_retry(uid, path, exc)

    def _schedule_retry(self, uid: str, path: Path, exc: BaseException) -> None:
        _, _, wait = self._retry.get(uid, (path, 0.0, 0.0))
        wait = min(60.0, max(self.retry_seconds, 2 * wait))
        self._retry[uid] = (path, time.monotonic() + wait, wait)
        message = (
            f"catalog registration of {path} failed ({exc!r}); it is registered "
            f"again from the file in {wait:g} s"
        )
        logger.warning(message)
        with self._lock:
            self.errors.append(message)

    def _retry_due(self) -> None:
        now = time.monotonic()
        for path, due, _ in list(self._retry.values()):
            if due <= now:
                self._register_file(path)


def _run_uid(what: str, args: tuple[Any, ...], runs: Mapping[str, _Run]) -> str | None:
    if what == "events":
        return events_header(args[0]).run
    if what in ("stored",):
        return args[0]
    if what == "rows":
        return args[0].uid
    doc = args[1] if len(args) > 1 else {}
    if what == "start":
        return doc.get("uid")
    return doc.get("run_start") or _run_of_datum(doc, runs)


def _run_of_datum(doc: Mapping[str, Any], runs: Mapping[str, _Run]) -> str | None:
    descriptor = doc.get("descriptor")
    for run in runs.values():
        if descriptor in run.descriptors:
            return run.uid
    return None


# -- run files read back --------------------------------------------------


def read_run_uid(path: Path) -> str:
    """The uid of the run in a run file."""
    import h5py

    with h5py.File(path, "r", swmr=True) as f:
        return json.loads(str(f.attrs[ATTR_START]))["uid"]


def run_file_items(path: Path) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """A closed run file as the sink would have handed it over, in order.

    Yields `("document", (name, doc, path))`, `("events", (batch,))` and
    `("stored", (run, stream, length))`: the start, each stream's descriptors,
    its detector resources, its rows in ring-format batches, its detector
    datums, then the stop.
    """
    import h5py

    with h5py.File(path, "r", swmr=True) as f:
        start = json.loads(str(f.attrs[ATTR_START]))
        stop = json.loads(str(f.attrs[ATTR_STOP])) if ATTR_STOP in f.attrs else None
        uid = start["uid"]
        yield "document", ("start", start, path)
        for name, group in stream_groups(f):
            descriptors = json.loads(str(group.attrs[ATTR_DESCRIPTORS]))
            for descriptor in descriptors:
                yield "document", ("descriptor", descriptor, path)
            first = descriptors[0]
            resources = json.loads(str(group.attrs.get(ATTR_STREAM_RESOURCES, "[]")))
            for resource in resources:
                yield "document", ("stream_resource", resource, path)
            length = int(group[SEQ_NUM].shape[0]) if SEQ_NUM in group else 0
            for begin in range(0, length, REPLAY_ROWS):
                batch = _rows_batch(
                    group, first, uid, begin, min(length, begin + REPLAY_ROWS)
                )
                yield "events", (batch,)
            yield "stored", (uid, name, length)
            datums = json.loads(str(group.attrs.get(ATTR_STREAM_DATUMS, "{}")))
            for resource in resources:
                begin, end = datums.get(resource["uid"], (0, length))
                if end > begin:
                    yield (
                        "document",
                        (
                            "stream_datum",
                            stream_datum(resource["uid"], first["uid"], begin, end),
                            path,
                        ),
                    )
        if stop is not None:
            yield "document", ("stop", stop, path)


def _rows_batch(
    group: Any, descriptor: Mapping[str, Any], run: str, begin: int, end: int
) -> pa.RecordBatch:
    """Rows `begin:end` of a stream group as a ring `events` batch.

    Columns come in the events' key order (the group's `keys`), as in the
    ring; file-backed keys keep only their timestamps (their values stay in
    the file).
    """
    files = set(file_backed_keys(descriptor))
    order = json.loads(str(group.attrs.get(ATTR_KEYS, "null")))
    fields = [pa.field(SEQ_NUM, pa.int64()), pa.field(TIME, pa.float64())]
    arrays = [pa.array(group[SEQ_NUM][begin:end]), pa.array(group[TIME][begin:end])]
    for key in order or stored_keys(descriptor):
        if key not in files:
            values = _values(group[DATA_GROUP][key], begin, end, descriptor, key)
            shape = json.dumps(list(key_shape(descriptor["data_keys"][key])))
            fields.append(pa.field(data_column(key), values.type, {"shape": shape}))
            arrays.append(values)
        fields.append(pa.field(timestamps_column(key), pa.float64()))
        arrays.append(pa.array(group[TIMESTAMPS_GROUP][key][begin:end]))
    schema = pa.schema(fields, metadata=events_metadata(descriptor, run))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _values(
    dataset: Any, begin: int, end: int, descriptor: Mapping[str, Any], key: str
) -> pa.Array:
    """A run-file dataset's rows as the ring column of that key."""
    if dataset.dtype.kind == "O":
        return pa.array(dataset.asstr()[begin:end].tolist(), pa.string())
    block = dataset[begin:end]
    shape = key_shape(descriptor["data_keys"][key])
    if not shape:
        return pa.array(block)
    return pa.FixedSizeListArray.from_arrays(
        pa.array(block.reshape(-1)), math.prod(shape)
    )
