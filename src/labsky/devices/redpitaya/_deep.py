"""Deep-memory traces into HDF5: the scope's data logic in DEEP mode.

A deep trace (up to a quarter of the board's reserved RAM per input: 512 Ki
samples, 2 MiB of float32, on a stock STEMlab) is too big to travel in an
event, so the scope writes its traces to one HDF5 file per run, as a camera
writes frames: `/entry/ch1`, `/entry/ch2` (float32, one row per trigger)
and their means. StreamResource and StreamDatum documents point at the
file, so the run's file links the traces under `/primary/data` beside the
other readings, and Tiled serves them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
from ophyd_async.core import (
    DetectorDataLogic,
    PathProvider,
    StreamableDataProvider,
    StreamResourceDataProvider,
    StreamResourceInfo,
)

from labsky.devices.redpitaya._scpi import Trace
from labsky.transports import ReplyError

if TYPE_CHECKING:
    from labsky.devices.redpitaya._scope import RedPitayaScope

#: Rows of the mean datasets per chunk.
MEAN_CHUNK = 4096


class DeepTraceWriter:
    """One HDF5 file of deep traces, readable while it grows (SWMR).

    Args:
        path: The file to create.
        samples: Samples per input and trace.
    """

    def __init__(self, path: Path, samples: int):
        self.path = path
        self.samples = samples
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(path, "w", libver="latest")
        self._traces = [
            self._file.create_dataset(
                f"/entry/ch{n}",
                shape=(0, samples),
                maxshape=(None, samples),
                chunks=(1, samples),
                dtype="<f4",
            )
            for n in (1, 2)
        ]
        self._means = [
            self._file.create_dataset(
                f"/entry/ch{n}_mean",
                shape=(0,),
                maxshape=(None,),
                chunks=(MEAN_CHUNK,),
                dtype="<f8",
            )
            for n in (1, 2)
        ]
        self._file.swmr_mode = True

    def append(self, ch1: np.ndarray, ch2: np.ndarray) -> int:
        """Write one trace of both inputs and flush; return the rows written."""
        row = self.rows
        for traces, means, data in zip(
            self._traces, self._means, (ch1, ch2), strict=True
        ):
            traces.resize(row + 1, axis=0)
            traces[row] = data
            means.resize(row + 1, axis=0)
            means[row] = float(np.mean(data))
        self._file.flush()
        self.rows = row + 1
        return self.rows

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()


class DeepDataLogic(DetectorDataLogic):
    """Deep traces into one HDF5 file per stage, referenced by stream documents.

    Args:
        scope: The scope whose traces it stores.
        path_provider: Where the files go (the session's); None refuses DEEP mode.
    """

    def __init__(self, scope: RedPitayaScope, path_provider: PathProvider | None):
        self.scope = scope
        self.path_provider = path_provider
        self.writer: DeepTraceWriter | None = None

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        """Open the file; describe the traces (shape [deep_samples]) and means."""
        await self.stop()
        if self.path_provider is None:
            raise ValueError(
                f"{self.scope.name}: DEEP mode writes its traces to HDF5 and needs a "
                "path provider; build the board with one (a session does)"
            )
        samples = int(await self.scope.deep_samples.get_value())
        info = self.path_provider(datakey_name)
        path = Path(info.directory_path) / f"{info.filename}.h5"
        self.writer = await asyncio.to_thread(DeepTraceWriter, path, samples)
        self.scope.set_deep_written(0)
        resources = [
            StreamResourceInfo(
                data_key=f"{datakey_name}-deep_ch{n}",
                shape=(samples,),
                chunk_shape=(1, samples),
                dtype_numpy="<f4",
                parameters={"dataset": f"/entry/ch{n}"},
            )
            for n in (1, 2)
        ] + [
            StreamResourceInfo(
                data_key=f"{datakey_name}-deep_ch{n}_mean",
                shape=(),
                chunk_shape=(MEAN_CHUNK,),
                dtype_numpy="<f8",
                parameters={"dataset": f"/entry/ch{n}_mean"},
            )
            for n in (1, 2)
        ]
        return StreamResourceDataProvider(
            uri=f"{info.directory_uri}{info.filename}.h5",
            resources=resources,
            mimetype="application/x-hdf5",
            collections_written_signal=self.scope.deep_written,
        )

    async def store(self, trace: Trace) -> None:
        """Append a deep trace to the file.

        Raises:
            ReplyError: If the scope was not prepared for deep traces of
                this length.
        """
        writer = self.writer
        name = self.scope.name
        if writer is None:
            raise ReplyError(
                f"{name}: a DEEP trace came, but the scope was staged in another "
                "mode; set scope.mode before the run"
            )
        if len(trace.ch1) != writer.samples or len(trace.ch2) != writer.samples:
            raise ReplyError(
                f"{name}: the deep trace has {len(trace.ch1)} samples, the run's "
                f"file {writer.samples}; set scope.deep_samples before the run"
            )
        rows = await asyncio.to_thread(writer.append, trace.ch1, trace.ch2)
        self.scope.set_deep_written(rows)

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        """The traces' means: what a live table or plot can show."""
        return [f"{datakey_name}-deep_ch1_mean", f"{datakey_name}-deep_ch2_mean"]

    async def stop(self) -> None:
        """Close the file."""
        writer, self.writer = self.writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
