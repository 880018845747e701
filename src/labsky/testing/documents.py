"""Collect the documents of a run and check them against event-model."""

from __future__ import annotations

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
