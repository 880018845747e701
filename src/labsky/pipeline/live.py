"""Live runs from another process: follow a session's ring and get pandas tables.

A plot in a second Jupyter kernel, a monitor on the lab PC or a quick script
attach to the ring of a running session by its profile and see every run's
documents and event rows within milliseconds of the RunEngine, without the
session knowing or waiting for them::

    live = LiveRuns.of_profile("sim")
    while not live.done():
        live.poll()
        table = live.table()          # the latest run's primary stream
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from labsky.config import find_profile, load_profile
from labsky.pipeline.control import ring_path
from labsky.pipeline.format import (
    DATA_PREFIX,
    DOCUMENT,
    EVENTS,
    SEQ_NUM,
    TIME,
    batch_kind,
    decode_document,
    events_header,
)
from labsky.pipeline.ring import RingCorruptError, RingReader
from labsky.processes import pid_alive


def profile_ring_path(profile: str | Path, data_dir: Path | None = None) -> Path:
    """The ring file a session of this profile writes.

    Args:
        profile: A profile name (under `profiles/`) or directory.
        data_dir: The session's data directory, if it was overridden.
    """
    loaded = load_profile(find_profile(str(profile)))
    return ring_path(loaded.ring, loaded.name, data_dir or loaded.data_path)


def wait_for_ring(path: Path, newer_than: float = 0.0, timeout: float = 60.0) -> Path:
    """Wait until a live writer has created the ring file.

    Args:
        path: The ring file.
        newer_than: Only a file created after this time (`time.time()`)
            counts, so an old ring left by the previous session is not taken.
        timeout: Seconds to wait.

    Raises:
        TimeoutError: Naming the file, if no session started writing it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.stat().st_mtime >= newer_than:
                reader = RingReader(path)
                pid = reader.writer_pid
                reader.close()
                if pid_alive(pid):
                    return path
        except (FileNotFoundError, RingCorruptError):
            pass  # not there yet, or being created
        time.sleep(0.05)  # noqa: TID251 - a reader's own process, no RunEngine
    raise TimeoutError(
        f"no session is writing {path} after {timeout:.0f} s; start one with the "
        "same profile and data directory (`labsky shell PROFILE`)"
    )


@dataclass
class LiveRun:
    """What has arrived of one run.

    Attributes:
        start: Its start document.
        stop: Its stop document, once the run has ended.
        batches: Event record batches by stream name.
    """

    start: dict[str, Any]
    stop: dict[str, Any] | None = None
    batches: dict[str, list[pa.RecordBatch]] = field(
        default_factory=lambda: defaultdict(list)
    )


class LiveRuns:
    """Follow the runs in a ring file.

    Args:
        path: The ring file (see `profile_ring_path`).
        start: `"latest"` sees runs from now on; None also replays what is
            still in the ring.
    """

    def __init__(self, path: str | Path, start: str | None = "latest"):
        self.reader = RingReader(path, start=start)
        self.runs: dict[str, LiveRun] = {}
        self.missed = 0
        self._streams: dict[str, tuple[str, str]] = {}  # descriptor -> run, name

    @classmethod
    def of_profile(
        cls, profile: str | Path, newer_than: float = 0.0, timeout: float = 60.0
    ) -> LiveRuns:
        """Attach to the ring of a running session of `profile`."""
        path = wait_for_ring(profile_ring_path(profile), newer_than, timeout)
        return cls(path, start=None)

    def poll(self) -> int:
        """Take in everything published since the last call.

        Returns:
            How many event rows arrived.
        """
        rows = 0
        for item in self.reader.read_available():
            self.missed += item.missed
            kind = batch_kind(item.batch)
            if kind == EVENTS:
                header = events_header(item.batch)
                known = self._streams.get(header.descriptor)
                run = self.runs.get(header.run)
                if run is not None:
                    stream = known[1] if known else header.stream
                    run.batches[stream].append(item.batch)
                    rows += item.batch.num_rows
            elif kind == DOCUMENT:
                self._document(*decode_document(item.batch))
        return rows

    def _document(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.runs[doc["uid"]] = LiveRun(doc)
        elif name == "descriptor":
            self._streams[doc["uid"]] = (doc["run_start"], doc.get("name", "primary"))
        elif name == "stop" and doc["run_start"] in self.runs:
            self.runs[doc["run_start"]].stop = doc

    @property
    def latest(self) -> LiveRun | None:
        """The most recently started run."""
        return next(reversed(self.runs.values()), None)

    def done(self) -> bool:
        """True once the latest run has its stop document."""
        latest = self.latest
        return latest is not None and latest.stop is not None

    def table(self, run: str | None = None, stream: str = "primary") -> pd.DataFrame:
        """The scalar columns of a stream as a DataFrame (`time` as the index).

        Args:
            run: The run's uid; default the latest run.
            stream: The stream's name.
        """
        chosen = self.runs.get(run) if run else self.latest
        if chosen is None or not chosen.batches.get(stream):
            return pd.DataFrame()
        frames = []
        for batch in chosen.batches[stream]:
            columns = {
                name.removeprefix(DATA_PREFIX): batch.column(name).to_numpy(
                    zero_copy_only=False
                )
                for name in batch.schema.names
                if name.startswith(DATA_PREFIX)
                and not pa.types.is_list(batch.schema.field(name).type)
                and not pa.types.is_fixed_size_list(batch.schema.field(name).type)
            }
            columns[SEQ_NUM] = batch.column(SEQ_NUM).to_numpy()
            index = pd.to_datetime(batch.column(TIME).to_numpy(), unit="s")
            frames.append(pd.DataFrame(columns, index=pd.Index(index, name="time")))
        return pd.concat(frames)

    def close(self) -> None:
        """Detach from the ring."""
        self.reader.close()
