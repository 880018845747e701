"""The session's end of the pipeline: the ring, its writer, and the storage worker.

The RunEngine's process keeps only the cheap end: `RingWriter` packs
documents into Arrow batches in the ring. Everything else runs in a storage
worker process (`labsky.pipeline.worker`): it first finishes whatever a
session that died left in the same ring and run directory, then drains the
new ring as its durable reader into the HDF5 run files and the catalog. A
separate process never competes with the RunEngine for the interpreter lock,
and it stores what was published even when the session is killed.

Stored is not catalogued: `wait_stored` returns once the run files are
complete, however far the catalog lags; `wait_catalogued` is for callers that
read runs back through Tiled. Neither has a fixed time limit: they wait while
the worker makes progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labsky.config import RingConfig, StorageConfig
from labsky.errors import LabskyError
from labsky.pipeline.format import OPEN_RUNS, SINK_CURSOR
from labsky.pipeline.holders import ring_writer_pid
from labsky.pipeline.report import RecoveryReport
from labsky.pipeline.ring import RingBuffer
from labsky.pipeline.ring.layout import wake_path
from labsky.pipeline.writer import RingWriter
from labsky.processes import describe_process

logger = logging.getLogger(__name__)


def ring_path(ring: RingConfig, profile_name: str, data_dir: Path) -> Path:
    """The ring file of a session: one per data directory."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return ring.path / f"labsky-{profile_name or 'default'}-{digest}.ring"


@dataclass(frozen=True)
class CatalogAddress:
    """Where the storage worker registers runs.

    Attributes:
        url: The Tiled server.
        api_key: Its API key (passed to the worker on its standard input,
            never on a command line).
        container: The runs container.
        flush_seconds: Longest wait of a stored row before it is catalogued.
        stall_seconds: How long a wait for the catalog goes on without progress.
    """

    url: str
    api_key: str | None
    container: str
    flush_seconds: float = 0.5
    stall_seconds: float = 120.0


class StorageError(LabskyError, RuntimeError):
    """The storage worker failed; the message says what and where its log is."""


class ProfileInUseError(StorageError):
    """Another live session stores into the same data directory."""


@dataclass(frozen=True)
class CatalogLag:
    """How the catalog stands after a wait.

    Attributes:
        runs_behind: Runs stored whose catalog entry is not complete yet.
        errors: What failed since the last look (retried from the files).
    """

    runs_behind: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.runs_behind:
            return "the catalog is up to date"
        runs = "run" if self.runs_behind == 1 else "runs"
        return (
            f"the catalog is {self.runs_behind} {runs} behind; they are stored, and "
            "appear in it as the server catches up"
        )


class _WorkerProcess:
    """The storage worker and the thread that reads its replies."""

    def __init__(self, config: dict[str, Any], log: Path):
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "labsky.pipeline.worker"],
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
        self.failure: str | None = None  # the sink stopped: why
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
                    self.failure = message["message"]
                key = f"{message['op']}:{message.get('id', '')}"
                self._replies[key] = message
                self._arrived.notify_all()
        with self._arrived:
            self._eof = True
            self._arrived.notify_all()

    def expect(self, op: str, ident: str = "") -> dict[str, Any]:
        """Wait for a reply of type `op` (with `id` = `ident`), or the worker's end.

        There is no time limit: the worker bounds its own waits (by progress),
        and a worker that dies ends the wait at once.
        """
        key = f"{op}:{ident}"
        with self._arrived:
            self._arrived.wait_for(lambda: key in self._replies or self._eof)
            if key not in self._replies:
                raise StorageError(self._died())
            return self._replies.pop(key)

    def release(self) -> None:
        """Close the pipes to a worker that has ended (or been killed)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(OSError):  # a worker that died mid-message
            self.process.stdin.close()
        self._reader.join(10)  # it reads to the end of the output
        if not self._reader.is_alive():
            self.process.stdout.close()

    def healthy(self) -> bool:
        """Whether the worker runs and its sink has not stopped."""
        return self.failure is None and self.process.poll() is None

    def _died(self) -> str:
        code = self.process.wait()
        reason = f" ({self.failure})" if self.failure else ""
        return (
            f"the storage worker exited (code {code}){reason}; see {self.log}. What "
            "was published is safe in the ring: `labsky recover PROFILE` stores it"
        )


class DataPipeline:
    """The ring, its writer and the storage worker, started and closed together.

    Constructing it checks that no other session uses the data directory and
    launches the worker (which recovers first), so a session can do other
    work meanwhile; `start` then waits for the recovery and creates the ring.

    Args:
        path: The ring file.
        runs_dir: Where run files go.
        ring: Ring geometry.
        storage: HDF5 sink settings.
        catalog: Tiled server and container, or None for files only.

    Raises:
        ProfileInUseError: If a live session already writes this ring
            (naming its process).
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
        self.storage = storage or StorageConfig()
        self.catalog = catalog
        _refuse_if_in_use(path, runs_dir)
        config = {
            "ring": str(path),
            "runs_dir": str(runs_dir),
            "flush_seconds": self.storage.flush_seconds,
            "block_rows": self.storage.block_rows,
            "stall_seconds": self.storage.stall_seconds,
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

    def start(self) -> DataPipeline:
        """Wait for the worker's recovery, then create the ring and attach it.

        Raises:
            StorageError: If recovery refused (its message says what to do) or
                the worker failed.
        """
        try:
            reply = self.worker.expect("recovered")
            if reply.get("error"):
                raise StorageError(
                    f"the data directory {self.runs_dir.parent} holds runs a "
                    f"session left behind, and recovering them failed: "
                    f"{reply['error']}"
                )
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
                stall_seconds=self.storage.stall_seconds,
                reader_alive=self.worker.healthy,
            )
            cursor = self._ring.register_durable_reader()
            assert cursor == SINK_CURSOR
            self.worker.send({"op": "attach"})
            self.worker.expect("ready")
        except BaseException:
            self.worker.process.kill()
            self.worker.process.wait()
            self.worker.release()
            self._closed = True  # nothing was published: close has nothing to do
            raise
        self._writer = RingWriter(self._ring, check=self.check)
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
        """The constructor followed by `start`."""
        return cls(path, runs_dir, ring, storage, catalog).start()

    def check(self) -> None:
        """Raise at once if the storage worker has failed (called per publish).

        Raises:
            StorageError: Naming the cause; the run then ends with it.
        """
        if not self.worker.healthy():
            reason = self.worker.failure or "the storage worker exited"
            raise StorageError(
                f"runs cannot be stored: {reason}; see {self.worker.log}. What was "
                f"published is safe in the ring {self.path}"
            )

    def _sync(self, catalog: bool) -> dict[str, Any]:
        self.writer.flush()
        self._syncs += 1
        ident = str(self._syncs)
        request: dict[str, Any] = {
            "op": "sync",
            "id": ident,
            "seq": self.ring.next_seq,
            "catalog": catalog,
        }
        if self.catalog is not None:
            request["catalog_stall_seconds"] = self.catalog.stall_seconds
        self.worker.send(request)
        reply = self.worker.expect("synced", ident)
        if reply.get("error"):
            raise StorageError(f"storing the runs failed: {reply['error']}")
        return reply

    def wait_stored(self) -> CatalogLag:
        """Wait until every document so far is in its HDF5 file, flushed.

        Returns:
            How far the catalog is behind at that moment (it is not waited for).

        Raises:
            StorageError: If the worker failed, or stored nothing for the
                profile's `storage.stall_seconds`.
        """
        reply = self._sync(catalog=False)
        return CatalogLag(reply.get("runs_behind", 0), reply.get("catalog_errors", []))

    def wait_catalogued(self) -> CatalogLag:
        """Wait until every run so far is stored and in the catalog.

        The wait goes on while the catalog makes progress; if it stalls for
        the profile's `tiled.stall_seconds`, the returned lag says how many
        runs are still behind (they stay stored and are registered later).
        """
        reply = self._sync(catalog=True)
        return CatalogLag(reply.get("runs_behind", 0), reply.get("catalog_errors", []))

    def close(self) -> CatalogLag:
        """Store everything, stop the worker; remove the ring when nothing is left.

        Returns:
            How far the catalog was behind when the worker stopped (those
            runs keep a pending mark and are registered by the next session).
        """
        if self._closed:
            return CatalogLag()
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        complete = False
        lag = CatalogLag()
        try:
            self.worker.send({"op": "close"})
            reply = self.worker.expect("closed")
            complete = not reply["left_open"] and not reply.get("error")
            if reply.get("error"):
                logger.error("storage worker: %s", reply["error"])
            lag = CatalogLag(reply.get("runs_behind", 0))
            self.worker.process.wait(30)
        except (StorageError, subprocess.TimeoutExpired) as exc:
            logger.error("%s", exc)
            self.worker.process.kill()
            self.worker.process.wait()
        self.worker.release()
        if self._ring is None:
            return lag
        self._ring.close()
        if complete:
            self.path.unlink(missing_ok=True)
            wake_path(self.path).unlink(missing_ok=True)
            (self.runs_dir / OPEN_RUNS).unlink(missing_ok=True)
        else:
            logger.error(
                "some runs could not be stored completely; they are safe in the ring "
                "%s: `labsky recover PROFILE` stores them",
                self.path,
            )
        return lag


def _refuse_if_in_use(path: Path, runs_dir: Path) -> None:
    """Refuse a data directory another live session stores into.

    The storage worker of a session that died may still be draining: that is
    no refusal (the new worker waits for it).
    """
    holder = ring_writer_pid(path)
    if holder is None:
        return
    raise ProfileInUseError(
        f"the data directory {runs_dir.parent} is in use by "
        f"{describe_process(holder)}: close that session first (`exit` at its "
        "prompt, or stop its daemon), or start this one with another data "
        "directory (--data-dir)"
    )
