"""The data pipeline of a session: RingWriter -> ring -> storage worker -> HDF5, Tiled.

The RunEngine's process keeps only the cheap end: `RingWriter` packs
documents into Arrow batches in the ring. Everything else runs in a storage
worker process (`labsky.storage.worker`): it first finishes whatever a session
that died left in the same ring and run directory, then drains the new ring
as its durable reader into the HDF5 run files and registers them in Tiled.
A separate process never competes with the RunEngine for the interpreter
lock, and it stores what was published even when the session is killed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labsky.callbacks.ring_writer import RingWriter
from labsky.config import Profile, RingConfig, StorageConfig
from labsky.ring import RingBuffer
from labsky.storage import RecoveryReport, recover
from labsky.storage.recover import SINK_CURSOR, wait_for_worker
from labsky.storage.sink import OPEN_RUNS
from labsky.tiled_registrar import TiledRegistrar

logger = logging.getLogger(__name__)


def ring_path(ring: RingConfig, profile_name: str, data_dir: Path) -> Path:
    """The ring file of a session: one per data directory."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return ring.directory / f"labsky-{profile_name or 'default'}-{digest}.ring"


@dataclass(frozen=True)
class CatalogAddress:
    """Where the storage worker registers runs.

    Attributes:
        url: The Tiled server.
        api_key: Its API key (passed to the worker on its standard input,
            never on a command line).
        container: The runs container.
    """

    url: str
    api_key: str | None
    container: str


class StorageError(RuntimeError):
    """The storage worker failed; the message says where its log is."""


class _WorkerProcess:
    """The storage worker and the thread that reads its replies."""

    def __init__(self, config: dict[str, Any], log: Path):
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "labsky.storage.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
                start_new_session=True,  # a Ctrl-C at the prompt must not stop a drain
            )
        self._replies: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._eof = False
        self.errors: list[str] = []
        self._reader = threading.Thread(
            target=self._read, name="labsky-storage-replies", daemon=True
        )
        self._reader.start()
        self.send(config)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise StorageError(self._died()) from None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self._arrived:
                if message["op"] == "error":
                    logger.error("storage worker: %s", message["message"])
                    self.errors.append(message["message"])
                key = f"{message['op']}:{message.get('id', '')}"
                self._replies[key] = message
                self._arrived.notify_all()
        with self._arrived:
            self._eof = True
            self._arrived.notify_all()

    def expect(
        self, op: str, ident: str = "", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Wait for a reply of type `op` (with `id` = `ident`)."""
        key = f"{op}:{ident}"
        with self._arrived:
            if not self._arrived.wait_for(
                lambda: key in self._replies or self._eof, timeout
            ):
                raise StorageError(
                    f"the storage worker did not answer {op!r} within {timeout} s; "
                    f"see {self.log}"
                )
            if key not in self._replies:
                raise StorageError(self._died())
            return self._replies.pop(key)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _died(self) -> str:
        code = self.process.poll()
        return (
            f"the storage worker exited (code {code}); see {self.log}. What was "
            "published is safe in the ring: `labsky recover PROFILE` stores it"
        )


class DataPipeline:
    """The ring, its writer and the storage worker, started and closed together.

    Attributes:
        writer: The RingWriter to subscribe to the RunEngine.
        ring: The ring's writing end.
        recovered: What the worker recovered before this pipeline started.
    """

    def __init__(
        self,
        path: Path,
        runs_dir: Path,
        ring: RingConfig | None = None,
        storage: StorageConfig | None = None,
        catalog: CatalogAddress | None = None,
    ):
        self.path = path
        self.runs_dir = runs_dir
        self.ring_config = ring or RingConfig()
        storage = storage or StorageConfig()
        config = {
            "ring": str(path),
            "runs_dir": str(runs_dir),
            "flush_seconds": storage.flush_seconds,
            "block_rows": storage.block_rows,
            "catalog": catalog.__dict__ if catalog is not None else None,
        }
        self.worker = _WorkerProcess(config, runs_dir.parent / "storage-worker.log")
        self.recovered = RecoveryReport()
        self._syncs = 0
        self._closed = False
        self._ring: RingBuffer | None = None
        self._writer: RingWriter | None = None

    @property
    def ring(self) -> RingBuffer:
        """The ring's writing end (once started)."""
        if self._ring is None:
            raise RuntimeError("the pipeline is not started: call start()")
        return self._ring

    @property
    def writer(self) -> RingWriter:
        """The RingWriter to subscribe to the RunEngine (once started)."""
        if self._writer is None:
            raise RuntimeError("the pipeline is not started: call start()")
        return self._writer

    def start(self, timeout: float = 600.0) -> DataPipeline:
        """Wait for the worker's recovery, then create the ring and attach it."""
        try:
            reply = self.worker.expect("recovered", timeout=timeout)
            self.recovered = RecoveryReport(
                batches=reply["batches"], runs=[Path(p) for p in reply["runs"]]
            )
            ring = self.ring_config
            slot_size = ring.slot_kb * 1024
            slot_count = max(4, ring.size_mb * 1024 * 1024 // slot_size)
            self._ring = RingBuffer(
                self.path,
                slot_count=slot_count,
                slot_size=slot_size,
                reader_alive=self.worker.alive,
            )
            cursor = self._ring.register_durable_reader()
            assert cursor == SINK_CURSOR
            self.worker.send({"op": "attach"})
            self.worker.expect("ready")
        except BaseException:
            self.worker.process.kill()
            raise
        self._writer = RingWriter(self._ring)
        return self

    @classmethod
    def open(
        cls,
        path: Path,
        runs_dir: Path,
        ring: RingConfig | None = None,
        storage: StorageConfig | None = None,
        catalog: CatalogAddress | None = None,
    ) -> DataPipeline:
        """Start the worker (which recovers first), then create the ring.

        The same as the constructor (which only launches the worker, so a
        session can do other work meanwhile) followed by `start`.

        Args:
            path: The ring file.
            runs_dir: Where run files go.
            ring: Ring geometry.
            storage: HDF5 sink settings.
            catalog: Tiled server and container, or None for files only.
        """
        return cls(path, runs_dir, ring, storage, catalog).start()

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every document so far is in its HDF5 file and in Tiled.

        Raises:
            StorageError: If the worker failed or did not finish in time.
        """
        self.writer.flush()
        self._syncs += 1
        ident = str(self._syncs)
        self.worker.send(
            {"op": "sync", "id": ident, "seq": self.ring.next_seq, "timeout": timeout}
        )
        reply = self.worker.expect("synced", ident, timeout + 10)
        if reply.get("error"):
            raise StorageError(f"storing the runs failed: {reply['error']}")

    def close(self, timeout: float = 120.0) -> None:
        """Store everything, stop the worker; remove the ring when nothing is left."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        left_open: list[str] = ["?"]
        try:
            self.worker.send({"op": "close"})
            reply = self.worker.expect("closed", timeout=timeout)
            left_open = reply["left_open"]
            if reply.get("error"):
                logger.error("storage worker: %s", reply["error"])
                left_open = left_open or ["?"]
            self.worker.process.wait(30)
        except (StorageError, subprocess.TimeoutExpired) as exc:
            logger.error("%s", exc)
            self.worker.process.kill()
        if self._ring is None:
            return
        self._ring.close()
        if not left_open:
            self.path.unlink(missing_ok=True)
            (self.runs_dir / OPEN_RUNS).unlink(missing_ok=True)


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
        wait_for_worker(data_dir / "runs")
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
