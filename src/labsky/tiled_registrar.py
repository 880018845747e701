"""Register run files in Tiled while they are written, with bluesky-tiled-plugins.

The bytes live once, in the HDF5 run files. Tiled only needs to know where
they are: bluesky-tiled-plugins' `TiledWriter` already registers externally
written HDF5 datasets (its HDF5 consolidator) and builds the BlueskyRun
structure (`run["primary"]["x"]`, `start`/`stop` in the node metadata). So the
registrar turns what the HDF5 sink reports into the documents `TiledWriter`
understands:

- the start document, as is (the run is visible as soon as it opens);
- each descriptor with every stored data key marked external, plus a `time`
  key, and one StreamResource per key pointing at `/<stream>/data/<key>` (or
  `/<stream>/time`) in the run file;
- after every flush of the file, one StreamDatum per key covering the new
  rows, so the arrays grow in Tiled while the run goes on;
- detectors' own StreamResource/StreamDatum documents, as is;
- the stop document.

It runs on its own thread and coalesces row updates, so a slow server makes
updates coarser, never the RunEngine slower. String-valued keys stay in the
HDF5 file only (Tiled's HDF5 adapter reads numbers).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labsky.callbacks.ring_writer import column_dtype
from labsky.storage.run_file import chunk_rows

logger = logging.getLogger(__name__)

TIME_KEY = "time"


@dataclass
class _Stream:
    descriptor: str
    resources: dict[str, str]  # data key -> StreamResource uid
    length: int = 0


@dataclass
class _Run:
    uid: str
    path: Path
    streams: dict[str, _Stream] = field(default_factory=dict)


def _stored_keys(descriptor: Mapping[str, Any]) -> dict[str, np.dtype]:
    """The data keys stored as numeric datasets of the run file, with dtypes."""
    keys = {}
    for key, data_key in descriptor["data_keys"].items():
        if data_key.get("external"):
            continue
        dtype = column_dtype(data_key)
        if dtype is not None:
            keys[key] = dtype
    return keys


def tiled_descriptor(descriptor: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptor as Tiled should see it: stored keys external, plus `time`."""
    doc = json.loads(json.dumps(descriptor))
    for key, dtype in _stored_keys(descriptor).items():
        doc["data_keys"][key].update(external="STREAM:", dtype_numpy=dtype.str)
    doc["data_keys"][TIME_KEY] = {
        "source": "labsky",
        "dtype": "number",
        "shape": [],
        "dtype_numpy": "<f8",
        "external": "STREAM:",
    }
    return doc


def stream_resources(
    run_uid: str, path: Path, descriptor: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    """One StreamResource per stored key of a stream, into the run file."""
    stream = descriptor.get("name", "primary")
    keys = {**_stored_keys(descriptor), TIME_KEY: np.dtype("<f8")}
    for key, dtype in keys.items():
        shape = [] if key == TIME_KEY else descriptor["data_keys"][key].get("shape", [])
        row_bytes = dtype.itemsize * int(np.prod(shape or [1]))
        dataset = f"/{stream}/time" if key == TIME_KEY else f"/{stream}/data/{key}"
        yield {
            "uid": f"{run_uid}/{stream}/{key}",
            "run_start": run_uid,
            "data_key": key,
            "mimetype": "application/x-hdf5",
            "uri": path.absolute().as_uri(),
            "parameters": {
                "dataset": dataset,
                "chunk_shape": [chunk_rows(row_bytes), *shape],
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


class TiledRegistrar:
    """Keep a Tiled catalog in step with the run files, on a thread of its own.

    Args:
        runs: A Tiled client of the container (a CatalogOfBlueskyRuns) that
            holds the runs.
        connect: Instead of `runs`, a function returning it, called in the
            registrar's thread, so a server that is still starting delays
            registration (reports queue meanwhile) but not the caller.
        min_interval: Shortest time between two row updates of a stream
            (each is an HTTP request per key; the registrar runs in the
            storage worker, so they cost the RunEngine nothing).
    """

    def __init__(
        self,
        runs: Any = None,
        min_interval: float = 0.2,
        connect: Callable[[], Any] | None = None,
    ):
        if (runs is None) == (connect is None):
            raise ValueError("give the runs container or a connect function")
        self.runs = runs
        self._connect = connect
        self._writer: Any = None
        self.min_interval = min_interval
        self._runs: dict[str, _Run] = {}
        self._deferred: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_rows: dict[tuple[str, str], float] = {}
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )
        self.errors: list[str] = []
        self._thread = threading.Thread(
            target=self._loop, name="labsky-tiled-registrar", daemon=True
        )
        self._thread.start()

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        """Take a report from the HDF5 sink (any thread)."""
        self._queue.put((name, payload))

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every report so far is in Tiled."""
        done = threading.Event()
        self._queue.put(("_sync", {"done": done}))
        if not done.wait(timeout):
            raise TimeoutError(f"Tiled registration still busy after {timeout} s")

    def close(self, timeout: float = 30.0) -> None:
        """Register what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _open(self) -> None:
        from bluesky_tiled_plugins import TiledWriter

        try:
            if self._connect is not None:
                self.runs = self._connect()
            self._writer = TiledWriter(self.runs, normalizer=None, batch_size=1)
        except Exception as exc:  # noqa: BLE001 - every report then says so
            reason = f"cannot reach the Tiled catalog: {type(exc).__name__}: {exc}"

            def unreachable(name: str, doc: Any) -> None:
                raise RuntimeError(reason)

            self._writer = unreachable

    def _loop(self) -> None:
        self._open()
        while True:
            items: list[tuple[str, dict[str, Any]] | None] = []
            try:
                items.append(self._queue.get(timeout=self._next_due()))
                while True:  # take everything queued, coalescing row updates
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            done = False
            for name, payload in _coalesce(items):
                if name is None:
                    done = True
                elif name == "rows":
                    self._deferred[(payload["run"], payload["stream"])] = payload
                else:
                    self._send_rows(due_only=False)  # rows before what follows
                    self._safely(name, payload)
            self._send_rows(due_only=not done)
            if done:
                return

    def _next_due(self) -> float | None:
        if not self._deferred:
            return None
        now = time.monotonic()
        due = min(self._last_rows.get(k, 0.0) for k in self._deferred)
        return max(0.0, due + self.min_interval - now)

    def _send_rows(self, due_only: bool) -> None:
        now = time.monotonic()
        for key, payload in list(self._deferred.items()):
            if due_only and now - self._last_rows.get(key, 0.0) < self.min_interval:
                continue
            del self._deferred[key]
            self._last_rows[key] = now
            self._safely("rows", payload)

    def _safely(self, name: str, payload: dict[str, Any]) -> None:
        try:
            self._handle(name, payload)
        except Exception as exc:  # noqa: BLE001 - never stop registering
            message = f"Tiled registration of {name} failed: {exc!r}"
            logger.exception(message)
            self.errors.append(message)

    def _handle(self, name: str, payload: dict[str, Any]) -> None:
        if name == "_sync":
            payload["done"].set()
            return
        if name == "start":
            doc = payload["doc"]
            self._runs[doc["uid"]] = _Run(doc["uid"], Path(payload["path"]))
            self._writer("start", doc)
        elif name == "descriptor":
            doc = payload["doc"]
            run = self._runs.get(doc["run_start"])
            if run is None:
                return
            stream_name = doc.get("name", "primary")
            if stream_name in run.streams:
                self._writer("descriptor", doc)
                return
            self._writer("descriptor", tiled_descriptor(doc))
            resources = {}
            for resource in stream_resources(run.uid, run.path, doc):
                self._writer("stream_resource", resource)
                resources[resource["data_key"]] = resource["uid"]
            run.streams[stream_name] = _Stream(doc["uid"], resources)
        elif name in ("stream_resource", "stream_datum"):
            self._writer(name, payload["doc"])
        elif name == "rows":
            run = self._runs.get(payload["run"])
            if run is None:
                return
            stream = run.streams[payload["stream"]]
            length = int(payload["length"])
            if length > stream.length:
                for resource in stream.resources.values():
                    self._writer(
                        "stream_datum",
                        stream_datum(
                            resource, stream.descriptor, stream.length, length
                        ),
                    )
                stream.length = length
        elif name == "stop":
            doc = payload["doc"]
            if self._runs.pop(doc["run_start"], None) is not None:
                self._writer("stop", doc)
            else:  # a run resumed after a crash: register the finished file
                register_run_file(self.runs, Path(payload["path"]), replace=True)


def _coalesce(
    items: list[tuple[str, dict[str, Any]] | None],
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Drop row updates superseded by a later one for the same stream."""
    last: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if item is not None and item[0] == "rows":
            last[(item[1]["run"], item[1]["stream"])] = index
    for index, item in enumerate(items):
        if item is None:
            yield None, {}
        elif item[0] != "rows" or last[(item[1]["run"], item[1]["stream"])] == index:
            yield item


def register_run_file(runs: Any, path: Path, replace: bool = False) -> str:
    """Register a closed run file in Tiled (a run recovered, or files copied in).

    Args:
        runs: Client of the runs container.
        path: The run's HDF5 file.
        replace: Remove a registration of the same run first.

    Returns:
        The run's uid.
    """
    import h5py
    from bluesky_tiled_plugins import TiledWriter

    with h5py.File(path, "r", swmr=True) as f:
        start = json.loads(str(f.attrs["start"]))
        stop = json.loads(str(f.attrs["stop"])) if "stop" in f.attrs else None
        streams = []
        for _name, group in f.items():
            if isinstance(group, h5py.Group) and "descriptors" in group.attrs:
                descriptors = json.loads(str(group.attrs["descriptors"]))
                streams.append((descriptors, int(group["seq_num"].shape[0])))  # type: ignore[index]
    if replace and start["uid"] in runs:
        runs.delete_contents(start["uid"], recursive=True, external_only=False)
    writer = TiledWriter(runs, normalizer=None, batch_size=1)
    writer("start", start)
    for descriptors, length in streams:
        first = descriptors[0]
        writer("descriptor", tiled_descriptor(first))
        for later in descriptors[1:]:
            writer("descriptor", later)
        for resource in stream_resources(start["uid"], path, first):
            writer("stream_resource", resource)
            if length:
                writer(
                    "stream_datum",
                    stream_datum(resource["uid"], first["uid"], 0, length),
                )
    if stop is not None:
        writer("stop", stop)
    return start["uid"]
