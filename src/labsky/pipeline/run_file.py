"""`RunFile`: one run's HDF5 file, written in blocks and readable while it grows.

The layout is `labsky.pipeline.format`'s (and `docs/reference/hdf5-layout.md`).
The file is written with the latest HDF5 format and kept in SWMR mode, so
readers (h5py with `swmr=True`, Tiled) see rows while the run goes on, and a
process killed mid-run leaves a file that still opens with `swmr=True`.
Objects cannot be created in SWMR mode, so a new stream, its first block (its
datasets are made then, with chunks sized to that block), an external link
or the stop document closes and reopens the file for a moment, then SWMR mode
is switched on again (retried at every flush if a reader held the file).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labsky.pipeline.format import (
    ATTR_DESCRIPTOR,
    ATTR_DESCRIPTORS,
    ATTR_KEYS,
    ATTR_START,
    ATTR_STOP,
    ATTR_STREAM_DATUMS,
    ATTR_STREAM_RESOURCES,
    DATA_GROUP,
    SEQ_NUM,
    TIME,
    TIMESTAMPS_GROUP,
    batch_keys,
    chunk_rows,
    column_dtype,
    column_values,
    data_column,
    key_shape,
    stored_keys,
    stream_groups,
    timestamps_column,
)

logger = logging.getLogger(__name__)


def file_path_from_uri(uri: str) -> Path:
    """The local path of a `file://` URI (as in StreamResource documents)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"not a local file URI: {uri}")
    return Path(parsed.path)


class _Stream:
    """A stream's datasets and the rows gathered for its next block."""

    def __init__(self, name: str, descriptor: Mapping[str, Any]):
        self.name = name
        self.descriptor = dict(descriptor)
        self.descriptor_uids = {descriptor["uid"]}
        self.keys = stored_keys(descriptor)
        self.length = 0  # committed rows (length of seq_num)
        self.last_seq_num = 0
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.descriptors = [dict(descriptor)]
        self.group_made = False  # its group exists (made at the first flush)
        self.created = False  # the datasets exist (made with the first block)
        self.datasets: dict[str, Any] = {}
        self.handle: h5py.File | None = None  # the file `datasets` belong to
        self.resources: list[dict[str, Any]] = []
        self.datums: dict[str, list[int]] = {}  # resource uid -> [start, stop]


class RunFile:
    """Write one run into one HDF5 file.

    Args:
        path: The file to create.
        start: The run's start document.
    """

    def __init__(self, path: Path, start: Mapping[str, Any]):
        self.path = path
        self.start = dict(start)
        self.uid: str = start["uid"]
        self.streams: dict[str, _Stream] = {}
        self._by_descriptor: dict[str, _Stream] = {}
        self._resources: dict[str, dict[str, Any]] = {}
        self._links: set[tuple[str, str]] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: h5py.File | None = h5py.File(path, "w", libver="latest")
        self._swmr = False
        self.stopped = False
        attrs = self._file.attrs
        attrs[ATTR_START] = json.dumps(start)
        attrs["uid"] = self.uid
        attrs["scan_id"] = int(start.get("scan_id") or 0)
        attrs["plan_name"] = str(start.get("plan_name", ""))
        attrs["time"] = float(start["time"])
        self._enable_swmr()

    # -- structure --------------------------------------------------------

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"{self.path} is closed")
        return self._file

    @contextmanager
    def _structure(self, swmr_after: bool = True) -> Iterator[h5py.File]:
        """Leave SWMR mode (by reopening) while objects are created."""
        if self._swmr:
            self.file.close()
            self._file = h5py.File(self.path, "a", libver="latest")
            self._swmr = False
        yield self.file
        if swmr_after:
            self._enable_swmr()

    def _enable_swmr(self) -> None:
        if self._swmr:
            return
        try:
            self.file.swmr_mode = True
        except (OSError, ValueError) as exc:  # a reader holds the file: next flush
            logger.debug("%s: SWMR mode not switched on yet: %s", self.path, exc)
            self.file.flush()
        else:
            self._swmr = True

    def stream_descriptor_uids(self) -> set[str]:
        """The uids of every descriptor of the run's streams."""
        return set(self._by_descriptor)

    def stream_of(self, descriptor_uid: str) -> _Stream:
        """The stream a descriptor belongs to."""
        return self._by_descriptor[descriptor_uid]

    def add_descriptor(self, doc: Mapping[str, Any]) -> _Stream:
        """Record a stream (its group is made at the next flush, with its datasets).

        Structure is created in as few visits outside SWMR mode as possible:
        every new group and dataset waiting at a flush is made in one.
        """
        name = doc.get("name", "primary")
        stream = self.streams.get(name)
        if stream is not None:
            stream.descriptor_uids.add(doc["uid"])
            stream.descriptors.append(dict(doc))
            self._by_descriptor[doc["uid"]] = stream
            if stream.group_made:  # a configuration change mid-run
                with self._structure() as f:
                    attrs: Any = f[name].attrs
                    attrs[ATTR_DESCRIPTORS] = json.dumps(stream.descriptors)
            return stream
        stream = _Stream(name, doc)
        self.streams[name] = stream
        self._by_descriptor[doc["uid"]] = stream
        return stream

    def _make_group(self, f: h5py.File, stream: _Stream) -> None:
        if stream.group_made:
            return
        group = f.create_group(stream.name)
        group.attrs[ATTR_DESCRIPTOR] = json.dumps(stream.descriptor)
        group.attrs[ATTR_DESCRIPTORS] = json.dumps(stream.descriptors)
        group.create_group(DATA_GROUP)
        group.create_group(TIMESTAMPS_GROUP)
        stream.group_made = True

    def _make_structure(
        self, new: dict[str, tuple[int, list[str] | None]], close: bool = False
    ) -> None:
        """In one visit outside SWMR mode: every group not yet made, and datasets.

        Args:
            new: Streams whose datasets to make, with their first block's rows
                and key order.
            close: Leave SWMR mode off (the file is about to be closed).
        """
        with self._structure(swmr_after=not close) as f:
            for stream in self.streams.values():
                self._make_group(f, stream)
            for name, (first_rows, order) in new.items():
                self._create_datasets(f, self.streams[name], first_rows, order)

    def _create_datasets(
        self,
        f: h5py.File,
        stream: _Stream,
        first_rows: int,
        order: list[str] | None = None,
    ) -> None:
        """Make a stream's datasets, with chunks sized to its first block.

        Args:
            f: The file, outside SWMR mode.
            stream: The stream.
            first_rows: Rows of its first block.
            order: Its keys in the order the events gave them.
        """
        doc = stream.descriptor
        if order is not None:
            stream.keys = order + [k for k in stream.keys if k not in order]
        group: Any = f[stream.name]
        group.attrs[ATTR_KEYS] = json.dumps(stream.keys)
        data, stamps = group[DATA_GROUP], group[TIMESTAMPS_GROUP]
        small = chunk_rows(8, first_rows)
        for key in stream.keys:
            data_key = doc["data_keys"][key]
            shape = key_shape(data_key)
            dtype = column_dtype(data_key)
            h5dtype = h5py.string_dtype() if dtype is None else dtype
            itemsize = 16 if dtype is None else dtype.itemsize
            rows = chunk_rows(
                itemsize * int(np.prod(shape, dtype=np.int64)), first_rows
            )
            dataset = data.create_dataset(
                key,
                shape=(0, *shape),
                maxshape=(None, *shape),
                chunks=(rows, *shape),
                dtype=h5dtype,
            )
            for attr in ("source", "units", "dtype", "precision"):
                if data_key.get(attr) is not None:
                    dataset.attrs[attr] = data_key[attr]
            stamps.create_dataset(
                key, shape=(0,), maxshape=(None,), chunks=(small,), dtype="f8"
            )
        for name, dtype in ((TIME, "f8"), (SEQ_NUM, "i8")):
            group.create_dataset(
                name, shape=(0,), maxshape=(None,), chunks=(small,), dtype=dtype
            )
        stream.created = True

    def add_stream_resource(self, doc: Mapping[str, Any]) -> None:
        """Remember a detector's file; link it into the run at its first datum."""
        self._resources[doc["uid"]] = dict(doc)

    def add_stream_datum(self, doc: Mapping[str, Any]) -> None:
        """Link the detector dataset a datum refers to under its stream."""
        resource = self._resources.get(doc["stream_resource"])
        stream = self._by_descriptor.get(doc["descriptor"])
        if resource is None or stream is None:
            logger.warning("%s: stream_datum for an unknown resource", self.path)
            return
        indices = stream.datums.setdefault(
            resource["uid"], [doc["indices"]["start"], 0]
        )
        indices[1] = max(indices[1], doc["indices"]["stop"])
        key = resource["data_key"]
        if (stream.name, key) in self._links:
            return
        target = file_path_from_uri(resource["uri"])
        dataset = resource.get("parameters", {}).get("dataset", "/")
        relative = os.path.relpath(target, self.path.parent)
        stream.resources.append(resource)
        with self._structure() as f:
            self._make_group(f, stream)
            group: Any = f[stream.name]
            group[DATA_GROUP][key] = h5py.ExternalLink(relative, dataset)
            group.attrs[ATTR_STREAM_RESOURCES] = json.dumps(stream.resources)
        self._links.add((stream.name, key))

    # -- rows -------------------------------------------------------------

    def add_events(self, batch: pa.RecordBatch, block_rows: int) -> None:
        """Gather an events batch; write a block when enough rows are waiting."""
        descriptor = (batch.schema.metadata or {}).get(b"descriptor", b"").decode()
        stream = self._by_descriptor[descriptor]
        seq = batch.column(SEQ_NUM)
        if stream.last_seq_num and len(seq) and seq[0].as_py() <= stream.last_seq_num:
            # Replayed after a crash: keep only the rows not yet in the file.
            mask = pc.greater(seq, stream.last_seq_num)  # type: ignore[attr-defined]
            batch = batch.filter(mask)
            if batch.num_rows == 0:
                return
        stream.last_seq_num = int(batch.column(SEQ_NUM)[-1].as_py())
        stream.pending.append(batch)
        stream.pending_rows += batch.num_rows
        if stream.pending_rows >= block_rows:
            self._write_block(stream)

    def _take_pending(self, stream: _Stream) -> pa.Table | None:
        if not stream.pending:
            return None
        table = pa.Table.from_batches(stream.pending)
        stream.pending, stream.pending_rows = [], 0
        return table

    def _write_block(self, stream: _Stream) -> None:
        table = self._take_pending(stream)
        if table is not None:
            self._write_table(stream, table)

    def _write_table(self, stream: _Stream, table: pa.Table) -> None:
        if not stream.created:
            self._make_structure({stream.name: (table.num_rows, batch_keys(table))})
        start = stream.length
        for column, dataset in self._datasets(stream).items():  # seq_num last
            values = column_values(table.column(column))
            _append(dataset, start, values.reshape((len(values), *dataset.shape[1:])))
        stream.length = start + table.num_rows

    def _datasets(self, stream: _Stream) -> dict[str, Any]:
        """The stream's datasets by ring column (cached for this file handle)."""
        if stream.handle is not self._file:
            group: Any = self.file[stream.name]
            columns = {}
            for key in stream.keys:
                columns[data_column(key)] = group[DATA_GROUP][key]
                columns[timestamps_column(key)] = group[TIMESTAMPS_GROUP][key]
            columns[TIME] = group[TIME]
            columns[SEQ_NUM] = group[SEQ_NUM]
            stream.datasets, stream.handle = columns, self._file
        return stream.datasets

    def flush(self) -> dict[str, int]:
        """Write what is gathered, flush to disk and return rows per stream."""
        tables = {}
        for name, stream in self.streams.items():
            table = self._take_pending(stream)
            if table is not None:
                tables[name] = table
        new: dict[str, tuple[int, list[str] | None]] = {
            name: (table.num_rows, batch_keys(table))
            for name, table in tables.items()
            if not self.streams[name].created
        }
        if new or any(not s.group_made for s in self.streams.values()):
            self._make_structure(new)
        for name, table in tables.items():
            self._write_table(self.streams[name], table)
        self._enable_swmr()
        self.file.flush()
        return {name: s.length for name, s in self.streams.items()}

    def close(self, stop: Mapping[str, Any] | None) -> None:
        """Write the last rows and the stop document, and close the file.

        A stream that never had a row still gets its (empty) datasets.
        """
        self.flush()
        empty = {n: (0, None) for n, s in self.streams.items() if not s.created}
        with self._structure(swmr_after=False) as f:
            for stream in self.streams.values():
                self._make_group(f, stream)
            for name in empty:
                self._create_datasets(f, self.streams[name], 0)
            for stream in self.streams.values():
                if stream.datums:
                    group: Any = f[stream.name]
                    group.attrs[ATTR_STREAM_DATUMS] = json.dumps(stream.datums)
            if stop is not None:
                f.attrs[ATTR_STOP] = json.dumps(stop)
                self.stopped = True
        self.file.close()
        self._file = None

    # -- recovery ---------------------------------------------------------

    def _copy_stream(self, name: str, group: Any) -> None:
        """Copy a stream's committed rows and links from another run file."""
        stream = None
        for doc in json.loads(str(group.attrs[ATTR_DESCRIPTORS])):
            stream = self.add_descriptor(doc)
        assert stream is not None
        order = json.loads(str(group.attrs.get(ATTR_KEYS, "null")))
        if order is not None:
            stream.keys = order
        rows = committed_rows(group, stream.keys)
        if len(rows[SEQ_NUM]):
            self._make_structure({name: (len(rows[SEQ_NUM]), order)})
            target: Any = self.file[name]
            for column, values in rows.items():
                _append(target[column], 0, values)
        elif not stream.group_made:
            self._make_structure({})
        stream.length = len(rows[SEQ_NUM])
        stream.last_seq_num = int(rows[SEQ_NUM][-1]) if stream.length else 0
        stream.resources = json.loads(str(group.attrs.get(ATTR_STREAM_RESOURCES, "[]")))
        self._resources.update({r["uid"]: r for r in stream.resources})
        data = group[DATA_GROUP]
        for key in data:
            link = data.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                with self._structure() as f:
                    target: Any = f[name]
                    linked = h5py.ExternalLink(link.filename, link.path)
                    target[DATA_GROUP][key] = linked
                self._links.add((name, key))
        if stream.resources:
            with self._structure() as f:
                f[name].attrs[ATTR_STREAM_RESOURCES] = json.dumps(stream.resources)

    @classmethod
    def resume(cls, path: Path) -> RunFile:
        """Reopen a file left open by a process that died, to go on writing it.

        A file the writer never closed stays marked as open for writing, so it
        is read in SWMR mode, its committed rows (up to the length of each
        stream's `seq_num`) are copied into a fresh file, and that file
        replaces it. (Recovery probes the file in a child process first, so a
        damaged file is refused there instead of hanging here.)
        """
        fresh = path.with_name(path.name + ".recovering")
        with h5py.File(path, "r", swmr=True) as old:
            run = cls(fresh, json.loads(str(old.attrs[ATTR_START])))
            for name, group in stream_groups(old):
                run._copy_stream(name, group)
        run.file.close()
        os.replace(fresh, path)
        run.path = path
        run._file = h5py.File(path, "a", libver="latest")
        return run


def committed_rows(group: Any, keys: list[str]) -> dict[str, np.ndarray]:
    """A stream group's datasets cut to its committed length (`seq_num`'s).

    A stream whose first block was never written has no datasets: no rows.
    """
    if SEQ_NUM not in group:
        return {SEQ_NUM: np.zeros(0, np.int64)}
    n = int(group[SEQ_NUM].shape[0])
    rows = {}
    for key in keys:
        rows[f"{DATA_GROUP}/{key}"] = group[DATA_GROUP][key][:n]
        rows[f"{TIMESTAMPS_GROUP}/{key}"] = group[TIMESTAMPS_GROUP][key][:n]
    rows[TIME] = group[TIME][:n]
    rows[SEQ_NUM] = group[SEQ_NUM][:n]  # last, as when writing
    return rows


def _append(dataset: Any, start: int, values: np.ndarray) -> None:
    n = len(values)
    dataset.resize(start + n, axis=0)
    if n:
        dataset[start : start + n] = values
