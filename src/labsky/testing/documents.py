"""Collect the documents of a run and check them against event-model; act on them."""

from __future__ import annotations

import threading
from typing import Any

import event_model


def validate_document(name: str, doc: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` if `doc` breaks its event-model schema."""
    event_model.schema_validators[event_model.DocumentNames(name)].validate(doc)


class DocumentCollector:
    """A RunEngine callback that keeps every document and validates it.

    Attributes:
        documents: `(name, doc)` pairs in emission order.
    """

    def __init__(self, validate: bool = True):
        self.documents: list[tuple[str, dict[str, Any]]] = []
        self._validate = validate

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if self._validate:
            validate_document(name, doc)
        self.documents.append((name, doc))

    def of(self, name: str) -> list[dict[str, Any]]:
        """Return the documents of one type (`start`, `event`, ...)."""
        return [doc for n, doc in self.documents if n == name]

    def names(self) -> list[str]:
        """Return the document types in order."""
        return [n for n, _ in self.documents]


class AfterEvents:
    """A RunEngine callback that does something once a stream has `count` events.

    For faults injected mid-run (an instrument unplugged, a knock on the
    table): tied to the run's progress, not to a timer that a loaded machine
    may fire before the first event. `action` runs in a thread of its own,
    so the RunEngine's thread is never blocked by it.

    Args:
        count: Events of `stream` to wait for.
        action: What to do then (called once, without arguments).
        stream: The stream's name.

    Attributes:
        fired: Set once `action` has returned (the run may notice what it did
            a moment before: wait on it).
    """

    def __init__(self, count: int, action: Any, stream: str = "primary"):
        self.count = count
        self.action = action
        self.stream = stream
        self.seen = 0
        self.fired = threading.Event()
        self._descriptors: set[str] = set()
        self._started = False

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor" and doc.get("name") == self.stream:
            self._descriptors.add(doc["uid"])
        elif name in ("event", "event_page") and doc["descriptor"] in self._descriptors:
            self.seen += len(doc["seq_num"]) if name == "event_page" else 1
            if self.seen >= self.count and not self._started:
                self._started = True
                threading.Thread(target=self._fire, daemon=True).start()

    def _fire(self) -> None:
        try:
            self.action()
        finally:
            self.fired.set()
