"""The newest frame of any 2-D detector, read from the file its run writes.

A PVCAM camera hands its newest frame over in memory (`preview()`); other
2-D detectors (ophyd-async's `SimBlobDetector`, areaDetector through its HDF5
plugin, any `StandardDetector` with an HDF5 data logic) only write files. Their
run documents say where: a descriptor's data key with `external: "STREAM:"`
and an image shape, then a `stream_resource` with the file's URI and
dataset. `FileFrames` follows those documents (O(1) work on the RunEngine's
thread) and, from the device API's own thread, reads the newest frame in
the file, opened read-only as a SWMR reader (ophyd-async's and
areaDetector's HDF5 writers flush every frame). It goes by the file's
current length, not by the `stream_datum` documents, so a fly scan that
announces its frames in batches (every 0.2 s) still previews at the page's
rate. Frames come while a plan acquires; a frame is only read when a page
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
class FrameSource:
    """Where a device's frames are: a file and a dataset in it."""

    device: str
    path: str
    dataset: str


def is_image(shape: Sequence[int | None]) -> bool:
    """Whether a data key's shape is an image (`[H, W]`, or `[N, H, W]` per event)."""
    dims = [int(d or 0) for d in shape]
    return len(dims) in (2, 3) and min(dims[-2:]) >= MIN_SIDE


def file_path(uri: str) -> str:
    """The local path of a stream resource's `file://host/path` URI."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("file", "") else ""


class FileFrames:
    """The newest frames of the 2-D detectors a running plan acquires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}  # image data key -> its device
        self._newest: dict[str, FrameSource] = {}  # device -> its newest file

    def document(self, name: str, doc: Mapping[str, Any]) -> None:
        """Take one run document (called on the RunEngine's thread)."""
        if name == "descriptor":
            owners = {
                key: device
                for device, keys in (doc.get("object_keys") or {}).items()
                for key in keys
            }
            for key, datakey in (doc.get("data_keys") or {}).items():
                external = str(datakey.get("external", ""))
                if external.startswith("STREAM:") and is_image(
                    datakey.get("shape") or []
                ):
                    with self._lock:
                        self._keys[key] = owners.get(key, key)
        elif name == "stream_resource":
            device = self._keys.get(doc.get("data_key", ""))
            dataset = (doc.get("parameters") or {}).get("dataset")
            path = file_path(str(doc.get("uri", "")))
            if device is not None and dataset and path:
                with self._lock:
                    self._newest[device] = FrameSource(device, path, dataset)

    def has_frames(self, device: str) -> bool:
        """Whether a run has announced a frame file of `device`."""
        return device in self._newest

    def file_of(self, device: str) -> str | None:
        """The file the newest frames of `device` are read from."""
        source = self._newest.get(device)
        return None if source is None else source.path

    def latest(
        self, device: str, shown: int | None = None
    ) -> tuple[np.ndarray, int] | None:
        """The newest frame of `device` in its file, and its number (blocking I/O).

        Args:
            device: The detector's name.
            shown: The number of the frame the caller has: if the file has no
                newer one, no pixels are read (a page watching after the run).

        Returns:
            The frame and the number of frames in the file, or None before
            the first frame, when there is none newer than `shown`, or when
            the file cannot be read (yet).
        """
        with self._lock:
            source = self._newest.get(device)
        if source is None:
            return None
        import h5py

        try:
            with _open(h5py, source.path) as handle:
                dataset: Any = handle[source.dataset]
                if hasattr(dataset, "refresh"):
                    dataset.refresh()
                rows = int(dataset.shape[0])
                if rows <= 0 or rows == shown:
                    return None
                frame = np.asarray(dataset[rows - 1])
                while frame.ndim > 2 and frame.shape[0] == 1:
                    frame = frame[0]  # a row of one frame: [1, H, W]
                return frame, rows
        except (OSError, KeyError, ValueError):
            return None  # not flushed yet, or the file went away: the next one


def _open(h5py: Any, path: str) -> Any:
    """The file read-only, as a SWMR reader where the writer allows it."""
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError:
        return h5py.File(path, "r")
