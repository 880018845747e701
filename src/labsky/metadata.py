"""Run metadata that survives restarts (`RE.md`), stored as one JSON file.

bluesky increments `RE.md["scan_id"]` at every run; keeping `RE.md` on disk
makes scan ids keep counting across sessions so catalog look-ups by scan id
stay unique. Every change is written at once, atomically (write a temporary
file, then rename), so a crash never leaves a half-written file and another
process always reads a complete one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any


class PersistentMetadata(MutableMapping[str, Any]):
    """A dict kept in a JSON file.

    Args:
        path: The JSON file; created on the first write.
    """

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, Any] = {}
        if path.exists():
            try:
                self._data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}: run metadata is not valid JSON ({exc}); fix or delete it"
                ) from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".md-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._data, f, indent=1, default=str)
        os.replace(tmp, self.path)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._save()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._save()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Update several keys with a single write."""
        self._data.update(*args, **kwargs)
        self._save()

    def __repr__(self) -> str:
        return f"PersistentMetadata({self.path}, {self._data!r})"
