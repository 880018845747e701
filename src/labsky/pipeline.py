"""The data pipeline of a session: RingWriter -> ring -> HDF5 sink -> Tiled.

`DataPipeline.open` first finishes whatever a session that died left in the
same ring and run directory (`labsky.storage.recover`), then creates the ring,
starts the HDF5 sink as its durable reader and, if there is a catalog, the
Tiled registrar. Subscribe `pipeline.writer` to the RunEngine.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from labsky.callbacks.ring_writer import RingWriter
from labsky.config import Profile, RingConfig, StorageConfig
from labsky.ring import RingBuffer, RingReader
from labsky.storage import HDF5Sink, RecoveryReport, recover
from labsky.storage.recover import SINK_CURSOR
from labsky.tiled_registrar import TiledRegistrar

logger = logging.getLogger(__name__)


def ring_path(ring: RingConfig, profile_name: str, data_dir: Path) -> Path:
    """The ring file of a session: one per data directory."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return ring.directory / f"labsky-{profile_name or 'default'}-{digest}.ring"


class DataPipeline:
    """Ring, HDF5 sink and Tiled registrar, started together, closed together.

    Attributes:
        writer: The RingWriter to subscribe to the RunEngine.
        ring: The ring's writing end.
        sink: The HDF5 sink.
        registrar: The Tiled registrar, if runs go to a catalog.
        recovered: What recovery did before this pipeline started.
    """

    def __init__(
        self,
        writer: RingWriter,
        ring: RingBuffer,
        sink: HDF5Sink,
        registrar: TiledRegistrar | None,
        recovered: RecoveryReport,
    ):
        self.writer = writer
        self.ring = ring
        self.sink = sink
        self.registrar = registrar
        self.recovered = recovered

    @classmethod
    def open(
        cls,
        path: Path,
        runs_dir: Path,
        ring: RingConfig | None = None,
        storage: StorageConfig | None = None,
        runs: Any = None,
    ) -> DataPipeline:
        """Recover, then start the pipeline.

        Args:
            path: The ring file.
            runs_dir: Where run files go.
            ring: Ring geometry.
            storage: HDF5 sink settings.
            runs: Tiled client of the runs container, or None for files only.
        """
        ring = ring or RingConfig()
        storage = storage or StorageConfig()
        registrar = TiledRegistrar(runs) if runs is not None else None
        recovered = recover(path, runs_dir, notify=registrar)
        slot_size = ring.slot_kb * 1024
        slot_count = max(4, ring.size_mb * 1024 * 1024 // slot_size)
        buffer = RingBuffer(path, slot_count=slot_count, slot_size=slot_size)
        cursor = buffer.register_durable_reader()
        assert cursor == SINK_CURSOR
        reader = RingReader(path, durable_cursor=cursor, auto_commit=False)
        sink = HDF5Sink(
            reader,
            runs_dir,
            flush_seconds=storage.flush_seconds,
            block_rows=storage.block_rows,
            notify=registrar,
        ).start()
        return cls(RingWriter(buffer), buffer, sink, registrar, recovered)

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every document so far is in its HDF5 file and in Tiled."""
        self.sink.drain(timeout)
        if self.registrar is not None:
            self.registrar.wait(timeout)

    def close(self) -> None:
        """Drain and stop; remove the ring file when nothing is left in it."""
        self.writer.close()
        self.sink.close()
        if self.registrar is not None:
            self.registrar.close()
        self.ring.close()
        if self.sink.error is None and not self.sink.left_open:
            self.ring.path.unlink(missing_ok=True)
            (self.sink.runs_dir / "open-runs.json").unlink(missing_ok=True)


def recover_profile(profile: Profile, tiled: bool = True) -> RecoveryReport:
    """Recover a profile's data directory, registering the runs in its catalog.

    This is `labsky recover`: the same as a session does when it starts,
    without building devices.
    """
    from labsky.tiled_service import LocalTiled, remote_client, runs_container

    data_dir = profile.data_path
    path = ring_path(profile.ring, profile.name, data_dir)
    uri = profile.tiled.uri if tiled else None
    server = None
    registrar = None
    try:
        if uri == "embedded":
            server = LocalTiled(data_dir)
            client = server.client()
            registrar = TiledRegistrar(runs_container(client, profile.tiled.container))
        elif uri is not None:
            runs = runs_container(remote_client(profile.tiled), profile.tiled.container)
            registrar = TiledRegistrar(runs)
        report = recover(path, data_dir / "runs", notify=registrar)
        if registrar is not None:
            registrar.wait(120)
            registrar.close()
        if report.runs or report.batches:
            path.unlink(missing_ok=True)
        return report
    finally:
        if server is not None:
            server.close()
