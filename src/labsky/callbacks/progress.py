"""A tqdm progress bar per run, driven by the documents."""

from __future__ import annotations

import sys
from typing import TextIO

from event_model import DocumentRouter
from event_model.documents import Event, EventDescriptor, EventPage, RunStart, RunStop
from tqdm import tqdm


class RunProgress(DocumentRouter):
    """Show one progress bar per run: events of the primary stream so far.

    The total comes from the start document's `num_points` when the plan
    declares it (bluesky's `count` and `scan` families do).

    Args:
        file: Where to draw; standard error by default.
        disable: Turn the bar off (e.g. when not on a terminal).
    """

    def __init__(self, file: TextIO | None = None, disable: bool | None = None):
        super().__init__()
        self._file = file or sys.stderr
        self._disable = disable
        self._bar: tqdm | None = None
        self._primary: set[str] = set()

    def start(self, doc: RunStart) -> None:
        self._primary.clear()
        self._bar = tqdm(
            total=doc.get("num_points"),
            desc=f"scan {doc.get('scan_id', '?')} {doc.get('plan_name', '')}".strip(),
            unit="ev",
            file=self._file,
            disable=self._disable,
            leave=True,
        )

    def descriptor(self, doc: EventDescriptor) -> None:
        if doc.get("name") == "primary":
            self._primary.add(doc["uid"])

    def event(self, doc: Event) -> Event:
        if self._bar is not None and doc["descriptor"] in self._primary:
            self._bar.update(1)
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        if self._bar is not None and doc["descriptor"] in self._primary:
            self._bar.update(len(doc["seq_num"]))
        return doc

    def stop(self, doc: RunStop) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(doc.get("exit_status", ""))
            self._bar.close()
            self._bar = None
