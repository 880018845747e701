"""What `labsky run` and `labsky demo` say when they end: one line.

Whatever happened, the last line says what went wrong, whether the runs are
stored and where, and what to do next: a user who reads only that line knows
whether the data is safe.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Frames of these packages are the machinery, not where a plan went wrong.
_MACHINERY = ("/bluesky/", "/asyncio/", "/ophyd_async/core/", "/event_model/")


@dataclass(eq=False)  # hashable: the RunEngine keeps callbacks in a registry
class RunWatch:
    """A document callback that remembers the runs a plan opened and how each ended.

    Attributes:
        uids: Start document uids, in order.
        exit_status: Exit status by uid, once the stop document came.
        events: Primary-stream events seen, by uid.
    """

    uids: list[str] = field(default_factory=list)
    exit_status: dict[str, str] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    _descriptors: dict[str, str] = field(default_factory=dict)

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        if name == "start":
            self.uids.append(doc["uid"])
            self.events[doc["uid"]] = 0
        elif name == "descriptor" and doc.get("name") == "primary":
            self._descriptors[doc["uid"]] = doc["run_start"]
        elif name in ("event", "event_page"):
            run = self._descriptors.get(doc["descriptor"])
            if run is not None:
                rows = doc["seq_num"] if name == "event_page" else [doc["seq_num"]]
                self.events[run] += len(rows)
        elif name == "stop":
            self.exit_status[doc["run_start"]] = doc.get("exit_status", "?")


def where_stored(
    uids: Iterable[str],
    run_file: Any,
    watch: RunWatch | None = None,
    lag: Any = None,
) -> str:
    """Say which runs are stored, in which files, and how they ended.

    Args:
        uids: The runs.
        run_file: `uid -> Path | None` (`Session.run_file`).
        watch: What was seen of the runs (exit status, events).
        lag: The catalog's lag (`CatalogLag`), if known.
    """
    uids = list(uids)
    if not uids:
        return "no run was opened, nothing was stored"
    parts = []
    for uid in uids:
        path: Path | None = run_file(uid)
        status = watch.exit_status.get(uid, "no stop document") if watch else None
        events = watch.events.get(uid) if watch else None
        detail = ", ".join(
            x
            for x in (
                f"exit_status {status}" if status else "",
                f"{events} events" if events is not None else "",
            )
            if x
        )
        where = str(path) if path is not None else f"run {uid[:8]} (no file found)"
        parts.append(f"{where} ({detail})" if detail else where)
    stored = "stored in " + ", ".join(parts)
    if lag is not None and getattr(lag, "runs_behind", 0):
        stored += (
            f"; not in the catalog yet ({lag.runs_behind} behind): registered from "
            "the file once the catalog answers, by this or the next session "
            "(`labsky catalog rebuild PROFILE` does it at once)"
        )
    return stored


def plan_error(error: BaseException) -> str:
    """`RuntimeError: the holder slipped (plans.py:20)`: the error and where."""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not any(m in f.filename.replace("\\", "/") for m in _MACHINERY)
    ]
    message = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {message[0] if message else ''}".rstrip(": ")
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def device_names(value: Any) -> set[str]:
    """Every word of a plan call that may name a device (`stage.x` -> `stage`)."""
    if isinstance(value, str):
        return {value.split(".", 1)[0]}
    if isinstance(value, Mapping):
        return set().union(*(device_names(v) for v in value.values()), set())
    if isinstance(value, list | tuple):
        return set().union(*(device_names(v) for v in value), set())
    return set()


def find_run_file(runs_dir: Path, uid: str) -> Path | None:
    """The HDF5 file of a run under a runs directory (`scan7-1a2b3c4d.h5`)."""
    return next(runs_dir.rglob(f"scan*-{uid[:8]}.h5"), None)
