"""The storage worker: a process of its own that drains the ring into HDF5 and Tiled.

The session process runs the RunEngine and publishes documents into the ring;
this process reads the ring as its durable reader, writes the run files and
keeps the Tiled catalog in step. Being another process, its work never takes
the RunEngine's interpreter lock, and it outlives a session that is killed:
when its standard input closes without a `close` request, it drains every
batch already published into the run files before it exits (the runs stay
open for recovery to finish; what the catalog has not registered yet keeps
its pending mark for the next worker).

It speaks JSON lines: its standard input takes the configuration, then
requests (`attach`, `sync`, `status`, `close`); its standard output carries
replies (`recovered`, `ready`, `synced`, `status`, `closed`) and `error`
reports (sent at once when the sink stops). Logs go to standard error. Run by
`DataPipeline`; `python -m labsky.pipeline.worker`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from labsky.pipeline.catalog import CatalogWriter
from labsky.pipeline.format import SINK_CURSOR, WORKER_PID
from labsky.pipeline.holders import RingInUseError, live_worker
from labsky.pipeline.recover import recover
from labsky.pipeline.report import RecoveryError
from labsky.pipeline.ring import RingReader
from labsky.pipeline.sink import HDF5Sink, catalog_pending, read_open_runs
from labsky.processes import wait_for_exit

logger = logging.getLogger("labsky.pipeline.worker")


def catalog_writer(
    catalog: dict[str, Any] | None, runs_dir: Path
) -> CatalogWriter | None:
    """The catalog writer for a worker's `catalog` configuration (or None)."""
    if not catalog:
        return None

    def connect() -> Any:
        from labsky.pipeline.server import runs_container
        from labsky.pipeline.tiled_client import connect

        client = connect(catalog["url"], api_key=catalog.get("api_key"))
        return runs_container(client, catalog["container"])

    return CatalogWriter(
        connect, runs_dir, flush_seconds=catalog.get("flush_seconds", 0.5)
    )


def register_pending(
    catalog: CatalogWriter, runs_dir: Path, skip: Iterable[Path] = ()
) -> int:
    """Register again the closed runs whose catalog entry was left incomplete.

    Args:
        catalog: The catalog writer.
        runs_dir: The run files' directory.
        skip: Run files being registered already (just recovered).
    """
    still_open = set(read_open_runs(runs_dir))
    skipped = {Path(p).resolve() for p in skip}
    count = 0
    for uid, path in catalog_pending(runs_dir).items():
        if uid not in still_open and path.exists() and path.resolve() not in skipped:
            catalog.register_file(path, uid)
            count += 1
    return count


class Worker:
    """One storage worker, driven by JSON requests.

    Args:
        config: `ring`, `runs_dir`, `flush_seconds`, `block_rows`,
            `stall_seconds` and `catalog` (`url`, `api_key`, `container`, or
            null).
        out: Where replies go.
    """

    def __init__(self, config: dict[str, Any], out: TextIO):
        self.config = config
        self.out = out
        self._lock = threading.Lock()
        self.ring = Path(config["ring"])
        self.runs_dir = Path(config["runs_dir"])
        self.stall_seconds: float | None = config.get("stall_seconds")
        self.catalog = catalog_writer(config.get("catalog"), self.runs_dir)
        self.sink: HDF5Sink | None = None

    def reply(self, message: dict[str, Any]) -> None:
        """Send one JSON line to the session."""
        with self._lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    def recover(self) -> bool:
        """Finish what a dead session left in this ring and data directory.

        Returns:
            False if recovery refused (the reply says why; the session must
            not start over that ring).
        """
        try:
            report = recover(self.ring, self.runs_dir, catalog=self.catalog)
        except (RecoveryError, RingInUseError) as exc:
            self.reply({"op": "recovered", "error": str(exc)})
            return False
        if self.catalog is not None:
            again = register_pending(self.catalog, self.runs_dir, report.runs)
            if report.runs or again:  # recovered runs are in the catalog first
                status = self.catalog.sync(self.stall_seconds)
                for error in status.errors:
                    logger.error("%s", error)
        self.reply(
            {
                "op": "recovered",
                "batches": report.batches,
                "runs": [str(p) for p in report.runs],
            }
        )
        return True

    def attach(self) -> None:
        """Start draining the ring the session has just created."""
        reader = RingReader(self.ring, durable_cursor=SINK_CURSOR, auto_commit=False)
        self.sink = HDF5Sink(
            reader,
            self.runs_dir,
            flush_seconds=self.config["flush_seconds"],
            block_rows=self.config["block_rows"],
            catalog=self.catalog,
            on_error=lambda exc: self.reply({"op": "error", "message": str(exc)}),
        ).start()
        self.reply({"op": "ready"})

    def sync(self, request: dict[str, Any]) -> None:
        """Answer once everything before `seq` is stored (and catalogued if asked)."""
        assert self.sink is not None
        reply: dict[str, Any] = {"op": "synced", "id": request["id"]}
        try:
            self.sink.drain(until=request["seq"], stall_seconds=self.stall_seconds)
        except RuntimeError as exc:
            reply["error"] = str(exc)
        if self.catalog is not None and "error" not in reply:
            status = (
                self.catalog.sync(request.get("catalog_stall_seconds"))
                if request.get("catalog")
                else self.catalog.status()
            )
            reply.update(runs_behind=status.runs_behind, catalog_errors=status.errors)
        self.reply(reply)

    def close(self, session_died: bool = False) -> None:
        """Store everything published, then stop.

        Args:
            session_died: Store what it published and leave its runs open for
                recovery; do not wait for the catalog (its embedded server
                died with the session; the next worker registers the rest);
                say nothing (nobody listens).
        """
        error = None
        if self.sink is not None:
            self.sink.close()
            error = self.sink.error
        behind = 0
        if self.catalog is not None:
            if not session_died:
                behind = self.catalog.sync(self.stall_seconds).runs_behind
            self.catalog.close(wait=not session_died)
        if not session_died:
            self.reply(
                {
                    "op": "closed",
                    "left_open": [
                        str(p) for p in (self.sink.left_open if self.sink else [])
                    ],
                    "error": str(error) if error else None,
                    "runs_behind": behind,
                }
            )


def _claim(runs_dir: Path, timeout: float = 120.0) -> Path:
    """Wait for a predecessor still draining `runs_dir`, then record our pid."""
    while (other := live_worker(runs_dir)) is not None:
        logger.info("waiting for storage worker %d to finish", other)
        if not wait_for_exit(other, timeout):
            raise RingInUseError(
                f"the storage worker pid {other} still uses {runs_dir} after "
                f"{timeout:g} s; stop it or give this session another data directory"
            )
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / WORKER_PID
    path.write_text(str(os.getpid()))
    return path


def serve(requests: TextIO, out: TextIO) -> int:
    """Run a worker: first line the configuration, then one request per line.

    Returns:
        The process's exit code.
    """
    config = json.loads(requests.readline())
    pid_file = _claim(Path(config["runs_dir"]))
    try:
        worker = Worker(config, out)
        if not worker.recover():
            if worker.catalog is not None:
                worker.catalog.close(wait=False)
            return 1
        for line in requests:
            request = json.loads(line)
            op = request["op"]
            if op == "attach":
                worker.attach()
            elif op == "sync":
                threading.Thread(
                    target=worker.sync, args=(request,), daemon=True
                ).start()
            elif op == "close":
                worker.close()
                return 0
        logger.warning("the session went away: storing what it published, then exiting")
        worker.close(session_died=True)
        return 0
    finally:
        pid_file.unlink(missing_ok=True)


def main() -> None:
    """Entry point of `python -m labsky.pipeline.worker`."""
    # Replies own the real standard output; anything a library prints goes to
    # standard error with the logs.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(serve(sys.stdin, replies))


if __name__ == "__main__":
    main()
