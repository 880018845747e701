"""What recovery did, or why it refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labsky.errors import LabskyError


class RecoveryError(LabskyError, RuntimeError):
    """Recovery refused to go on; nothing it could not read was changed or deleted."""


@dataclass
class RecoveryReport:
    """What `recover` did.

    Attributes:
        batches: Ring batches replayed into run files.
        runs: Files of the runs it closed.
    """

    batches: int = 0
    runs: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.runs and not self.batches:
            return "nothing to recover"
        files = "".join(f"\n  {p}" for p in self.runs)
        closed = f"closed {len(self.runs)} runs"
        return f"replayed {self.batches} ring batches; {closed}:{files}"
