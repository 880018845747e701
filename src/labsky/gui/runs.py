"""The run browser: search the daemon's Tiled catalog, open a run, read its streams.

Blocking Tiled client calls; the web app runs them in worker threads.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from labsky.daemon.service import DaemonAddresses

#: The most rows of a stream sent to the page at once.
MAX_ROWS = 100_000


class RunBrowser:
    """Searches and reads runs through Tiled.

    Args:
        addresses: The daemon's addresses (its Tiled server and key).
        runs_dir: Where the run files are (for downloads).
    """

    def __init__(self, addresses: DaemonAddresses, runs_dir: Path):
        self.addresses = addresses
        self.runs_dir = runs_dir
        self._runs: Any = None
        self._client: Any = None

    @property
    def runs(self) -> Any:
        """The Tiled container of runs (connected on first use)."""
        if self._runs is None:
            if not self.addresses.tiled:
                raise LookupError("the daemon has no Tiled catalog")
            from labsky.pipeline.tiled_client import connect

            client = connect(self.addresses.tiled, api_key=self.addresses.tiled_api_key)
            self._client = client
            self._runs = client[self.addresses.tiled_container]
        return self._runs

    def close(self) -> None:
        """Close the connection to Tiled."""
        client, self._client, self._runs = self._client, None, None
        if client is not None:
            client.context.close()

    def search(
        self,
        sample: str = "",
        plan: str = "",
        exit_status: str = "",
        since: str = "",
        until: str = "",
        text: str = "",
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The newest runs that match, newest first.

        Args:
            sample: `start.sample` equals this.
            plan: `start.plan_name` equals this.
            exit_status: `stop.exit_status` equals this (`success`, `abort`, ...).
            since: ISO time (`2026-11-30T14:00`); runs that started at or after.
            until: ISO time; runs that started before.
            text: Full-text search of the metadata.
            limit: How many at most.
        """
        from tiled.queries import FullText, Key

        results = self.runs
        if sample:
            results = results.search(Key("start.sample") == sample)
        if plan:
            results = results.search(Key("start.plan_name") == plan)
        if exit_status:
            results = results.search(Key("stop.exit_status") == exit_status)
        if since:
            results = results.search(Key("start.time") >= _timestamp(since, "since"))
        if until:
            results = results.search(Key("start.time") < _timestamp(until, "until"))
        if text:
            results = results.search(FullText(text))
        newest = results.items()[-1 : -(limit + 1) : -1]  # Tiled slices backwards so
        return [run_summary(uid, run.metadata) for uid, run in newest]

    def open(self, uid: str) -> dict[str, Any]:
        """A run's metadata, streams, and keys per stream (with shapes)."""
        run = self.runs[uid]
        streams = {}
        for name in run:
            stream = run[name]
            keys = {}
            descriptors = stream.metadata.get("data_keys") or {}
            if not descriptors:
                for desc in stream.metadata.get("descriptors", []) or []:
                    descriptors.update(desc.get("data_keys", {}))
            for key, spec in descriptors.items():
                keys[key] = {
                    "shape": list(spec.get("shape") or []),
                    "dtype": spec.get("dtype"),
                    "units": spec.get("units"),
                    "external": bool(spec.get("external")),
                }
            streams[name] = keys
        summary = run_summary(uid, run.metadata)
        summary["start_doc"] = _plain(run.metadata.get("start", {}))
        summary["stop_doc"] = _plain(run.metadata.get("stop") or {})
        summary["streams"] = streams
        summary["file"] = self.run_file(uid) is not None
        return summary

    def table(self, uid: str, stream: str) -> dict[str, list[Any]]:
        """The scalar columns of a stream (and `time`, `seq_num`)."""
        run = self.runs[uid]
        frame = run[stream].read()
        columns: dict[str, list[Any]] = {}
        for name in frame.data_vars if hasattr(frame, "data_vars") else frame:
            values = np.asarray(frame[name])
            if values.ndim != 1 or values.dtype.kind not in "biuf":
                continue
            columns[str(name)] = [_number(v) for v in values[:MAX_ROWS]]
        if "time" in getattr(frame, "coords", {}):
            columns.setdefault(
                "time", [_number(v) for v in np.asarray(frame["time"])[:MAX_ROWS]]
            )
        return columns

    def frame(self, uid: str, stream: str, key: str, index: int) -> np.ndarray:
        """Frame `index` of an image key of a stream (2-D)."""
        array = self.runs[uid][stream][key]
        count = array.shape[0]
        if not -count <= index < count:
            raise IndexError(f"{key}: frame {index} of {count}")
        frame = np.asarray(array[index])
        while frame.ndim > 2:
            frame = frame[0]
        return frame

    def run_file(self, uid: str) -> Path | None:
        """The run's HDF5 file (as `Session.run_file` finds it)."""
        return next(self.runs_dir.rglob(f"scan*-{uid[:8]}.h5"), None)


def _timestamp(text: str, what: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"{what}: {text!r} is not a time; write it as 2026-11-30T14:00"
        ) from None


def _number(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_summary(uid: str, metadata: Any) -> dict[str, Any]:
    """One line of the run list."""
    start = metadata.get("start", {}) or {}
    stop = metadata.get("stop") or {}
    return {
        "uid": uid,
        "scan_id": start.get("scan_id"),
        "plan_name": start.get("plan_name"),
        "sample": start.get("sample"),
        "time": start.get("time"),
        "exit_status": stop.get("exit_status") if stop else "running",
        "reason": stop.get("reason", "") if stop else "",
        "num_events": _plain(stop.get("num_events", {})) if stop else {},
    }
