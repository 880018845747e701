"""The pipeline's data contract: the ring batch format and the HDF5 run-file layout.

Every writer and reader of the pipeline (the RingWriter, the HDF5 sink, the
catalog writer, recovery, live readers, `labsky ring tail`) encodes and
decodes through this module, and nothing else in labsky states the format.
It needs only numpy, pyarrow and the standard library, so a reader in another
process can use it without the rest of labsky.

Ring batches
    Each ring slot holds one Arrow record batch. Its schema metadata says what
    it is (`kind`):

    - `document`: one row, columns `name` and `doc` (the event-model document
      as JSON): start, descriptor, stop, stream_resource, stream_datum.
    - `events`: rows of one descriptor's events; metadata `descriptor`,
      `stream` and `run` (uids, stream name); columns `seq_num`, `time`, then
      `data/<key>` and `timestamps/<key>` for every data key that is not
      external. Numbers, bools and fixed-shape arrays are typed columns
      (arrays as fixed-size lists, their shape in the field metadata `shape`);
      strings are string columns; values of no fixed shape are JSON text.
      Event uids are not carried (nothing downstream reads them; they were a
      fifth of the bytes): `event_page` makes deterministic ones.

Run files (one HDF5 file per run, `docs/reference/hdf5-layout.md`)::

    /                        attrs: start, stop (JSON), uid, scan_id, plan_name, time
    /<stream>/               attrs: descriptor (the first, JSON), descriptors (all),
                             keys (the data keys in event order, JSON list),
                             stream_resources (detector resources, JSON list),
                             stream_datums (their row ranges, at the stop)
    /<stream>/data/<key>     (N, *shape); detector data are external links
    /<stream>/timestamps/<key>  (N,)
    /<stream>/time           (N,)
    /<stream>/seq_num        (N,), written last: its length is the committed rows
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

# -- ring batches -------------------------------------------------------------

KIND = b"kind"
DOCUMENT = "document"
EVENTS = "events"
SEQ_NUM = "seq_num"
TIME = "time"
DATA_PREFIX = "data/"
TIMESTAMPS_PREFIX = "timestamps/"

_JSON_DTYPES = {"number": np.float64, "integer": np.int64, "boolean": np.bool_}


def column_dtype(data_key: Mapping[str, Any]) -> np.dtype | None:
    """The numpy dtype of a data key's column, or None for strings and JSON values."""
    if data_key.get("dtype") == "string" or None in (data_key.get("shape") or ()):
        return None
    if data_key.get("dtype_numpy"):
        dtype = np.dtype(data_key["dtype_numpy"])
        return None if dtype.kind in "OUS" else dtype
    return np.dtype(_JSON_DTYPES.get(data_key.get("dtype", "number"), np.float64))


def is_json_column(data_key: Mapping[str, Any]) -> bool:
    """Whether a key's values travel as JSON text (no fixed shape, not strings)."""
    return column_dtype(data_key) is None and data_key.get("dtype") != "string"


def key_shape(data_key: Mapping[str, Any]) -> tuple[int, ...]:
    """The fixed shape of one value of a data key (() for scalars)."""
    return tuple(int(d) for d in data_key.get("shape") or () if d)


def stored_keys(descriptor: Mapping[str, Any]) -> list[str]:
    """The data keys whose values travel in the ring (every key not external)."""
    return [k for k, v in descriptor["data_keys"].items() if not v.get("external")]


def data_column(key: str) -> str:
    """The ring column of a data key's values."""
    return DATA_PREFIX + key


def timestamps_column(key: str) -> str:
    """The ring column of a data key's timestamps."""
    return TIMESTAMPS_PREFIX + key


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def to_json(doc: Any) -> str:
    """A document as JSON (numpy values as plain numbers and lists)."""
    return json.dumps(doc, default=_json_default)


_DOCUMENT_SCHEMAS: dict[str, pa.Schema] = {}


def document_batch(name: str, doc: Any) -> pa.RecordBatch:
    """A one-row batch carrying a whole document as JSON."""
    schema = _DOCUMENT_SCHEMAS.get(name)
    if schema is None:
        schema = pa.schema(
            [("name", pa.string()), ("doc", pa.string())],
            metadata={"kind": DOCUMENT, "name": name},
        )
        _DOCUMENT_SCHEMAS[name] = schema
    return pa.RecordBatch.from_arrays(
        [pa.array([name]), pa.array([to_json(doc)])], schema=schema
    )


def batch_kind(batch: pa.RecordBatch) -> str:
    """`document`, `events`, or "" for a batch this format does not know."""
    return (batch.schema.metadata or {}).get(KIND, b"").decode()


def decode_document(batch: pa.RecordBatch) -> tuple[str, dict[str, Any]]:
    """The (name, document) a `document` batch carries."""
    return batch.column("name")[0].as_py(), json.loads(batch.column("doc")[0].as_py())


@dataclass(frozen=True)
class EventsHeader:
    """Whose rows an `events` batch holds."""

    descriptor: str
    stream: str
    run: str


def events_header(batch: pa.RecordBatch) -> EventsHeader:
    """The descriptor, stream and run an `events` batch belongs to."""
    meta = batch.schema.metadata or {}
    return EventsHeader(
        meta[b"descriptor"].decode(),
        meta.get(b"stream", b"primary").decode(),
        meta[b"run"].decode(),
    )


def events_metadata(descriptor: Mapping[str, Any], run: str) -> dict[str, str]:
    """The schema metadata of a descriptor's `events` batches."""
    return {
        "kind": EVENTS,
        "descriptor": descriptor["uid"],
        "stream": descriptor.get("name", "primary"),
        "run": run,
    }


def events_schema(
    keys: Sequence[str],
    types: Sequence[pa.DataType],
    shapes: Mapping[str, tuple[int, ...]],
    metadata: Mapping[str, str],
) -> pa.Schema:
    """The schema of an `events` batch with these keys and value types."""
    fields = [pa.field(SEQ_NUM, pa.int64()), pa.field(TIME, pa.float64())]
    for key, value_type in zip(keys, types, strict=True):
        shape = json.dumps(list(shapes[key]))
        fields.append(pa.field(data_column(key), value_type, metadata={"shape": shape}))
        fields.append(pa.field(timestamps_column(key), pa.float64()))
    return pa.schema(fields, metadata=dict(metadata))


def batch_keys(batch: pa.RecordBatch) -> list[str]:
    """The data keys of an `events` batch, in column order."""
    return [
        name[len(DATA_PREFIX) :]
        for name in batch.schema.names
        if name.startswith(DATA_PREFIX)
    ]


def timestamp_keys(batch: pa.RecordBatch) -> list[str]:
    """The data keys whose timestamps an `events` batch carries, in column order."""
    return [
        name[len(TIMESTAMPS_PREFIX) :]
        for name in batch.schema.names
        if name.startswith(TIMESTAMPS_PREFIX)
    ]


def column_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column's values as one numpy array, rows first (strings as objects)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks != 1 and pa.types.is_primitive(column.type):
            return column.to_numpy()  # one concatenating copy
        column = column.combine_chunks()
    n = len(column)
    if pa.types.is_fixed_size_list(column.type):
        shape = _field_shape(column.type)
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape((n, *shape)) if shape else flat.reshape((n, -1))
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.array(column.to_pylist(), dtype=object)
    return column.to_numpy(zero_copy_only=False)


def _field_shape(value_type: pa.DataType) -> tuple[int, ...]:
    """The value shape of a fixed-size-list type (nested lists give more axes)."""
    shape = []
    while pa.types.is_fixed_size_list(value_type):
        shape.append(value_type.list_size)
        value_type = value_type.value_type
    return tuple(shape)


def python_values(batch: pa.RecordBatch, key: str, json_values: bool) -> list[Any]:
    """A key's values as Python objects, as the event documents held them."""
    values = batch.column(data_column(key)).to_pylist()
    if json_values:
        return [json.loads(v) for v in values]
    field = batch.schema.field(data_column(key))
    shape = json.loads((field.metadata or {}).get(b"shape", b"[]"))
    if len(shape) > 1:  # fixed-size lists are flat: give back nested lists
        return [np.reshape(v, shape).tolist() for v in values]
    return values


def event_page(
    batch: pa.RecordBatch,
    descriptor: Mapping[str, Any],
    keys: Sequence[str] | None = None,
    timestamp_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """An `events` batch as an event-model EventPage document.

    Args:
        batch: The events batch.
        descriptor: Its descriptor (to tell JSON-valued keys).
        keys: The keys whose values to include (default: all in the batch).
        timestamp_keys: The keys whose timestamps to include (default: `keys`).
    """
    header = events_header(batch)
    names = batch_keys(batch) if keys is None else list(keys)
    stamped = names if timestamp_keys is None else list(timestamp_keys)
    seq_nums = batch.column(SEQ_NUM).to_pylist()
    data_keys = descriptor["data_keys"]
    return {
        "descriptor": header.descriptor,
        "uid": [f"{header.descriptor}/{s}" for s in seq_nums],
        "seq_num": seq_nums,
        "time": batch.column(TIME).to_pylist(),
        "data": {
            k: python_values(batch, k, is_json_column(data_keys[k])) for k in names
        },
        "timestamps": {
            k: batch.column(timestamps_column(k)).to_pylist() for k in stamped
        },
        "filled": {},
    }


# -- run files ---------------------------------------------------------------

ATTR_START = "start"
ATTR_STOP = "stop"
ATTR_DESCRIPTOR = "descriptor"
ATTR_DESCRIPTORS = "descriptors"
ATTR_STREAM_RESOURCES = "stream_resources"
ATTR_STREAM_DATUMS = "stream_datums"
ATTR_KEYS = "keys"
DATA_GROUP = "data"
TIMESTAMPS_GROUP = "timestamps"

# -- the data directory ------------------------------------------------------

#: The HDF5 sink is the first durable reader (cursor) of every ring.
SINK_CURSOR = 0
#: In the runs directory while a storage worker runs: its pid.
WORKER_PID = "storage-worker.pid"
#: In the runs directory: the runs a sink has not closed yet (uid -> file).
OPEN_RUNS = "open-runs.json"
#: In the runs directory: one file per run whose file is stored but whose
#: catalog entry is not complete yet (made when it opens, removed once its
#: stop is catalogued).
CATALOG_PENDING = ".catalog-pending"

#: Largest chunk of a run-file dataset, in rows and in bytes.
MAX_CHUNK_ROWS = 65536
MAX_CHUNK_BYTES = 1 << 20
#: Smallest chunk: a 5-point run costs kilobytes, not megabytes.
MIN_CHUNK_ROWS = 64


def run_file_path(runs_dir: Path, start: Mapping[str, Any]) -> Path:
    """Where a run's file goes: `runs/YYYY-MM-DD/scan00042-1a2b3c4d.h5`."""
    day = datetime.fromtimestamp(float(start["time"])).strftime("%Y-%m-%d")
    scan_id = int(start.get("scan_id") or 0)
    return runs_dir / day / f"scan{scan_id:05d}-{start['uid'][:8]}.h5"


def chunk_rows(row_bytes: int, first_block_rows: int = MAX_CHUNK_ROWS) -> int:
    """Rows per chunk of a dataset, sized to the stream.

    The chunk holds the first block the sink writes, rounded up to a power of
    two (so a stream that fills a block in its first flush gets full-size
    chunks, and a 5-point count gets tiny ones), within `MIN_CHUNK_ROWS`,
    `MAX_CHUNK_ROWS` and about 1 MiB.

    Args:
        row_bytes: Bytes of one row of the dataset.
        first_block_rows: Rows in the stream's first block.
    """
    wanted = 1 << max(0, int(first_block_rows - 1).bit_length())
    by_bytes = max(1, MAX_CHUNK_BYTES // max(1, row_bytes))
    return max(1, min(max(MIN_CHUNK_ROWS, wanted), MAX_CHUNK_ROWS, by_bytes))


def dataset_path(stream: str, key: str) -> str:
    """The run-file dataset of a stream's data key."""
    return f"/{stream}/{DATA_GROUP}/{key}"


def stream_groups(handle: Any) -> Iterator[tuple[str, Any]]:
    """The (name, group) of every stream in an open run file."""
    for name, group in handle.items():
        if ATTR_DESCRIPTORS in group.attrs:
            yield name, group
