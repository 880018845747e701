"""`RunFile`: one run's HDF5 file, written in blocks and readable while it grows.

Layout (documented in `docs/reference/hdf5-layout.md`)::

    /                      attrs: start, stop (JSON), uid, scan_id, plan_name, time
    /<stream>/             attrs: descriptor (JSON, the first), descriptors (JSON list)
    /<stream>/data/<key>   (N, *shape), chunked, resizable; external data keys
                           are HDF5 external links into the detector's file
    /<stream>/timestamps/<key>  (N,) float64
    /<stream>/time         (N,) float64
    /<stream>/seq_num      (N,) int64, written last: its length is the number of
                           committed rows, which recovery trusts

The file is written with the latest HDF5 format and kept in SWMR mode, so
readers (h5py with `swmr=True`, Tiled) see rows while the run goes on, and a
process killed mid-run leaves a file that still opens with `swmr=True`.
Objects cannot be created in SWMR mode, so a new stream, an external link or
the stop document closes and reopens the file for a moment, then SWMR mode
is switched on again (retried at every flush if a reader held the file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labsky.callbacks.ring_writer import column_dtype

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_ROWS = 65536


def chunk_rows(row_bytes: int) -> int:
    """Rows per chunk: about 1 MiB, at most 65536 rows (512 KiB of float64)."""
    return max(1, min(_MAX_CHUNK_ROWS, _CHUNK_BYTES // max(1, row_bytes)))


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
        self.keys = [
            k for k, v in descriptor["data_keys"].items() if not v.get("external")
        ]
        self.external = [
            k for k, v in descriptor["data_keys"].items() if v.get("external")
        ]
        self.length = 0  # committed rows (length of seq_num)
        self.last_seq_num = 0
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.datasets: dict[str, Any] = {}
        self.handle: h5py.File | None = None  # the file `datasets` belong to


class RunFile:
    """Write one run into one HDF5 file.

    Args:
        path: The file to create.
        start: The run's start document.
    """

    def __init__(self, path: Path, start: Mapping[str, Any]):
        self.path = path
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
        attrs["start"] = json.dumps(start)
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

    def stream_of(self, descriptor_uid: str) -> _Stream:
        """The stream a descriptor belongs to."""
        return self._by_descriptor[descriptor_uid]

    def add_descriptor(self, doc: Mapping[str, Any]) -> _Stream:
        """Create the stream's group and datasets (or record a new descriptor)."""
        name = doc.get("name", "primary")
        stream = self.streams.get(name)
        if stream is not None:
            stream.descriptor_uids.add(doc["uid"])
            self._by_descriptor[doc["uid"]] = stream
            with self._structure() as f:
                group = f[name]
                assert isinstance(group, h5py.Group)
                listed = json.loads(str(group.attrs["descriptors"]))
                group.attrs["descriptors"] = json.dumps([*listed, doc])
            return stream
        stream = _Stream(name, doc)
        with self._structure() as f:
            group = f.create_group(name)
            group.attrs["descriptor"] = json.dumps(doc)
            group.attrs["descriptors"] = json.dumps([doc])
            data = group.create_group("data")
            stamps = group.create_group("timestamps")
            chunk = chunk_rows(8)
            for key in stream.keys:
                data_key = doc["data_keys"][key]
                shape = tuple(int(d) for d in data_key.get("shape") or () if d)
                dtype = column_dtype(data_key)
                h5dtype = h5py.string_dtype() if dtype is None else dtype
                itemsize = 16 if dtype is None else dtype.itemsize
                rows = chunk_rows(itemsize * int(np.prod(shape, dtype=np.int64)))
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
                    key, shape=(0,), maxshape=(None,), chunks=(chunk,), dtype="f8"
                )
            for name_, dtype in (("time", "f8"), ("seq_num", "i8")):
                group.create_dataset(
                    name_, shape=(0,), maxshape=(None,), chunks=(chunk,), dtype=dtype
                )
        self.streams[name] = stream
        self._by_descriptor[doc["uid"]] = stream
        return stream

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
        key = resource["data_key"]
        if (stream.name, key) in self._links:
            return
        target = file_path_from_uri(resource["uri"])
        dataset = resource.get("parameters", {}).get("dataset", "/")
        relative = os.path.relpath(target, self.path.parent)
        with self._structure() as f:
            data = f[f"{stream.name}/data"]
            assert isinstance(data, h5py.Group)
            data[key] = h5py.ExternalLink(relative, dataset)
        self._links.add((stream.name, key))

    # -- rows -------------------------------------------------------------

    def add_events(self, batch: pa.RecordBatch, block_rows: int) -> None:
        """Gather an events batch; write a block when enough rows are waiting."""
        descriptor = (batch.schema.metadata or {}).get(b"descriptor", b"").decode()
        stream = self._by_descriptor[descriptor]
        seq = batch.column("seq_num")
        if stream.last_seq_num and len(seq) and seq[0].as_py() <= stream.last_seq_num:
            # Replayed after a crash: keep only the rows not yet in the file.
            mask = pc.greater(seq, stream.last_seq_num)  # type: ignore[attr-defined]
            batch = batch.filter(mask)
            if batch.num_rows == 0:
                return
        stream.last_seq_num = int(batch.column("seq_num")[-1].as_py())
        stream.pending.append(batch)
        stream.pending_rows += batch.num_rows
        if stream.pending_rows >= block_rows:
            self._write_block(stream)

    def _write_block(self, stream: _Stream) -> None:
        if not stream.pending:
            return
        table = pa.Table.from_batches(stream.pending)
        stream.pending, stream.pending_rows = [], 0
        start = stream.length
        datasets = self._datasets(stream)
        for column, dataset in datasets.items():  # seq_num last: it commits rows
            _append(dataset, start, _column_values(table.column(column), dataset))
        stream.length = start + table.num_rows

    def _datasets(self, stream: _Stream) -> dict[str, Any]:
        """The stream's datasets by column name (cached for this file handle)."""
        if stream.handle is not self._file:
            group: Any = self.file[stream.name]
            columns = {}
            for key in stream.keys:
                columns[f"data/{key}"] = group["data"][key]
                columns[f"timestamps/{key}"] = group["timestamps"][key]
            columns["time"] = group["time"]
            columns["seq_num"] = group["seq_num"]
            stream.datasets, stream.handle = columns, self._file
        return stream.datasets

    def flush(self) -> dict[str, int]:
        """Write what is gathered, flush to disk and return rows per stream."""
        for stream in self.streams.values():
            self._write_block(stream)
        self._enable_swmr()
        self.file.flush()
        return {name: s.length for name, s in self.streams.items()}

    def close(self, stop: Mapping[str, Any] | None) -> None:
        """Write the last rows and the stop document, and close the file."""
        self.flush()
        with self._structure(swmr_after=False) as f:
            if stop is not None:
                f.attrs["stop"] = json.dumps(stop)
                self.stopped = True
        self.file.close()
        self._file = None

    # -- recovery ---------------------------------------------------------

    def _copy_stream(self, name: str, group: Any) -> None:
        """Copy a stream's committed rows and links from another run file."""
        stream = None
        for doc in json.loads(str(group.attrs["descriptors"])):
            stream = self.add_descriptor(doc)
        assert stream is not None
        target: Any = self.file[name]
        rows = _committed_rows(group, stream.keys)
        for column, values in rows.items():
            _append(target[column], 0, values)
        stream.length = len(rows["seq_num"])
        stream.last_seq_num = int(rows["seq_num"][-1]) if stream.length else 0
        data = group["data"]
        for key in data:
            link = data.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                target["data"][key] = h5py.ExternalLink(link.filename, link.path)
                self._links.add((name, key))

    @classmethod
    def resume(cls, path: Path) -> RunFile:
        """Reopen a file left open by a process that died, to go on writing it.

        A file the writer never closed stays marked as open for writing, so it
        is read in SWMR mode, its committed rows (up to the length of each
        stream's `seq_num`) are copied into a fresh file, and that file
        replaces it.
        """
        fresh = path.with_name(path.name + ".recovering")
        with _open_left_behind(path) as old:
            run = cls(fresh, json.loads(str(old.attrs["start"])))
            for name, group in old.items():
                if isinstance(group, h5py.Group) and "descriptors" in group.attrs:
                    run._copy_stream(name, group)
        run.file.close()
        os.replace(fresh, path)
        run.path = path
        run._file = h5py.File(path, "a", libver="latest")
        return run


def _open_left_behind(path: Path) -> h5py.File:
    """Open a file a dead writer left: SWMR read, else after `h5clear -s`."""
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError as exc:
        # Killed during the instant the file was reopened outside SWMR mode.
        h5clear = shutil.which("h5clear")
        if h5clear is None:
            raise OSError(
                f"{path} was left open for writing outside SWMR mode and cannot be "
                "read; install HDF5's tools (Debian: apt install hdf5-tools), run "
                f"'h5clear -s {path}', then 'labsky recover' again"
            ) from exc
        subprocess.run([h5clear, "-s", str(path)], check=True)
        return h5py.File(path, "r")


def _committed_rows(group: Any, keys: list[str]) -> dict[str, np.ndarray]:
    """A stream group's datasets cut to its committed length (`seq_num`'s)."""
    n = int(group["seq_num"].shape[0])
    rows = {}
    for key in keys:
        rows[f"data/{key}"] = group["data"][key][:n]
        rows[f"timestamps/{key}"] = group["timestamps"][key][:n]
    rows["time"] = group["time"][:n]
    rows["seq_num"] = group["seq_num"][:n]  # last, as when writing
    return rows


def _column_values(column: pa.ChunkedArray | pa.Array, dataset: Any) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks != 1 and pa.types.is_primitive(column.type):
            return column.to_numpy()  # one concatenating copy
        column = column.combine_chunks()
    array = column
    n = len(array)
    if pa.types.is_fixed_size_list(array.type):
        flat = array.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape((n, *dataset.shape[1:]))
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return np.array(array.to_pylist(), dtype=object)
    return array.to_numpy(zero_copy_only=False)


def _append(dataset: Any, start: int, values: np.ndarray) -> None:
    n = len(values)
    dataset.resize(start + n, axis=0)
    if n:
        dataset[start : start + n] = values
