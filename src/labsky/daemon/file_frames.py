"""The newest frame of any 2-D detector, read from the file its run writes.

A PVCAM camera hands its newest frame over in memory (`preview()`); other
2-D detectors (ophyd-async's `SimBlobDetector`, areaDetector through its HDF5
plugin, any `StandardDetector` with an HDF5 data logic) only write files. Their
run documents say where: a descriptor's data key with `external: "STREAM:"`
and a frame shape, a `stream_resource` with the file's URI and dataset, and a
`stream_datum` per batch of frames written. `FileFrames` follows those
documents (O(1) work on the RunEngine's thread) and reads the newest frame a
`stream_datum` has announced, opening the file read-only (SWMR, as the
writers of ophyd-async and areaDetector keep it), from the device API's own
thread. Frames come while a plan acquires; a frame is only read when a page
watches.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

#: The smallest side a data key needs to be shown as an image, not a trace.
MIN_SIDE = 8


@dataclass(frozen=True)
class FrameKey:
    """A data key holding images: its device and frames per event."""

    device: str
    frames_per_event: int


@dataclass(frozen=True)
class FrameSource:
    """Where a data key's frames are: a file and a dataset in it."""

    device: str
    path: str
    dataset: str
    frames_per_event: int


def frame_key(device: str, shape: Sequence[int | None]) -> FrameKey | None:
    """The data key's frames, if its shape is an image (`[H, W]` or `[N, H, W]`)."""
    dims = [int(d or 0) for d in shape]
    if len(dims) not in (2, 3) or min(dims[-2:]) < MIN_SIDE:
        return None
    return FrameKey(device, dims[0] if len(dims) == 3 else 1)


def file_path(uri: str) -> str:
    """The local path of a stream resource's `file://host/path` URI."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("file", "") else ""


class FileFrames:
    """The newest frames of the 2-D detectors a running plan acquires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, FrameKey] = {}
        self._sources: dict[str, FrameSource] = {}  # stream resource uid
        self._newest: dict[str, tuple[FrameSource, int]] = {}  # device

    def document(self, name: str, doc: Mapping[str, Any]) -> None:
        """Take one run document (called on the RunEngine's thread)."""
        if name == "descriptor":
            owners = {
                key: device
                for device, keys in (doc.get("object_keys") or {}).items()
                for key in keys
            }
            for key, datakey in (doc.get("data_keys") or {}).items():
                if not str(datakey.get("external", "")).startswith("STREAM:"):
                    continue
                found = frame_key(owners.get(key, key), datakey.get("shape") or [])
                if found is not None:
                    with self._lock:
                        self._keys[key] = found
        elif name == "stream_resource":
            key = self._keys.get(doc.get("data_key", ""))
            dataset = (doc.get("parameters") or {}).get("dataset")
            path = file_path(str(doc.get("uri", "")))
            if key is not None and dataset and path:
                source = FrameSource(key.device, path, dataset, key.frames_per_event)
                with self._lock:
                    self._sources[doc["uid"]] = source
        elif name == "stream_datum":
            source = self._sources.get(doc.get("stream_resource", ""))
            stop = int((doc.get("indices") or {}).get("stop", 0))
            if source is not None and stop > 0:
                with self._lock:
                    self._newest[source.device] = (source, stop)

    def has_frames(self, device: str) -> bool:
        """Whether a run has announced frames of `device`."""
        return device in self._newest

    def latest(self, device: str) -> tuple[np.ndarray, int] | None:
        """The newest announced frame of `device` and its number (blocking I/O).

        Returns:
            The frame and the number of frames written, or None before the
            first frame or when the file cannot be read (yet).
        """
        with self._lock:
            newest = self._newest.get(device)
        if newest is None:
            return None
        source, stop = newest
        import h5py

        rows = stop * source.frames_per_event
        try:
            with _open(h5py, source.path) as handle:
                dataset: Any = handle[source.dataset]
                if hasattr(dataset, "refresh"):
                    dataset.refresh()
                rows = min(rows, int(dataset.shape[0]))
                if rows <= 0:
                    return None
                return np.asarray(dataset[rows - 1]), rows
        except (OSError, KeyError, ValueError):
            return None  # not flushed yet, or the file went away: the next one


def _open(h5py: Any, path: str) -> Any:
    """The file read-only, as a SWMR reader where the writer allows it."""
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError:
        return h5py.File(path, "r")
