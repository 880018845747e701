"""The storage worker: a process of its own that drains the ring into HDF5 and Tiled.

The session process runs the RunEngine and publishes documents into the ring;
this process reads the ring as its durable reader, writes the run files and
keeps the Tiled catalog in step. Being another process, its work never takes
the RunEngine's interpreter lock, and it outlives a session that is killed:
when its standard input closes without a `close` request, it drains every
batch already published into the run files before it exits (the runs stay
open for `labsky recover` to finish).

It speaks JSON lines: its standard input takes the configuration, then
requests (`attach`, `sync`, `close`); its standard output carries replies
(`recovered`, `ready`, `synced`, `closed`) and `error` reports. Logs go to
standard error. Run by `DataPipeline`; `python -m labsky.storage.worker`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from labsky.ring import RingReader
from labsky.storage.recover import (
    SINK_CURSOR,
    WORKER_PID,
    recover,
    wait_for_worker,
)
from labsky.storage.sink import HDF5Sink

logger = logging.getLogger("labsky.storage.worker")


class Worker:
    """One storage worker, driven by JSON requests.

    Args:
        config: `ring`, `runs_dir`, `flush_seconds`, `block_rows` and
            `catalog` (`url`, `api_key`, `container`, or null).
        out: Where replies go.
    """

    def __init__(self, config: dict[str, Any], out: TextIO):
        self.config = config
        self.out = out
        self._lock = threading.Lock()
        self.ring = Path(config["ring"])
        self.runs_dir = Path(config["runs_dir"])
        self.registrar = self._registrar(config.get("catalog"))
        self.sink: HDF5Sink | None = None

    def _registrar(self, catalog: dict[str, Any] | None) -> Any:
        if not catalog:
            return None
        from labsky.tiled_registrar import TiledRegistrar

        def connect() -> Any:
            import bluesky_tiled_plugins  # noqa: F401 - the run client's specs
            from tiled.client import from_uri

            from labsky.tiled_service import runs_container

            deadline = time.monotonic() + 120
            while True:  # the server may still be starting, as the session is
                try:
                    client = from_uri(catalog["url"], api_key=catalog.get("api_key"))
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)  # noqa: TID251 - own process, no RunEngine here
            return runs_container(client, catalog["container"])

        # Connect in the registrar's thread: the sink starts draining at once
        # and reports wait in the registrar's queue until the server answers.
        return TiledRegistrar(connect=connect)

    def reply(self, message: dict[str, Any]) -> None:
        """Send one JSON line to the session."""
        with self._lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    def recover(self) -> None:
        """Finish what a dead session left in this ring and data directory."""
        report = recover(self.ring, self.runs_dir, notify=self.registrar)
        if self.registrar is not None and (report.runs or report.batches):
            self.registrar.wait(120)  # recovered runs are in the catalog first
        self.reply(
            {
                "op": "recovered",
                "batches": report.batches,
                "runs": [str(p) for p in report.runs],
            }
        )

    def attach(self) -> None:
        """Start draining the ring the session has just created."""
        reader = RingReader(self.ring, durable_cursor=SINK_CURSOR, auto_commit=False)
        self.sink = HDF5Sink(
            reader,
            self.runs_dir,
            flush_seconds=self.config["flush_seconds"],
            block_rows=self.config["block_rows"],
            notify=self.registrar,
            on_error=lambda exc: self.reply({"op": "error", "message": repr(exc)}),
        ).start()
        self.reply({"op": "ready"})

    def sync(self, request: dict[str, Any]) -> None:
        """Answer once everything before `seq` is stored and catalogued."""
        assert self.sink is not None
        try:
            self.sink.drain(request.get("timeout", 30.0), until=request["seq"])
            if self.registrar is not None:
                self.registrar.wait(request.get("timeout", 30.0))
                errors, self.registrar.errors = self.registrar.errors, []
                if errors:
                    raise RuntimeError("; ".join(errors))
            self.reply({"op": "synced", "id": request["id"]})
        except Exception as exc:  # noqa: BLE001 - reported to the session
            self.reply({"op": "synced", "id": request["id"], "error": str(exc)})

    def close(self, drain_only: bool = False) -> None:
        """Store everything published, then stop.

        Args:
            drain_only: The session died: store what it published and leave
                its runs open for recovery; say nothing (nobody listens).
        """
        error = None
        if self.sink is not None:
            self.sink.close()
            error = self.sink.error
        if self.registrar is not None:
            self.registrar.close()
        if not drain_only:
            self.reply(
                {
                    "op": "closed",
                    "left_open": [
                        str(p) for p in (self.sink.left_open if self.sink else [])
                    ],
                    "error": repr(error) if error else None,
                }
            )


def _claim(runs_dir: Path) -> Path:
    """Wait for a predecessor still draining `runs_dir`, then record our pid."""
    wait_for_worker(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / WORKER_PID
    path.write_text(str(os.getpid()))
    return path


def serve(requests: TextIO, out: TextIO) -> None:
    """Run a worker: first line the configuration, then one request per line."""
    config = json.loads(requests.readline())
    pid_file = _claim(Path(config["runs_dir"]))
    try:
        worker = Worker(config, out)
        worker.recover()
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
                return
        logger.warning("the session went away: storing what it published, then exiting")
        worker.close(drain_only=True)
    finally:
        pid_file.unlink(missing_ok=True)


def main() -> None:
    """Entry point of `python -m labsky.storage.worker`."""
    # Replies own the real standard output; anything a library prints goes to
    # standard error with the logs.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
