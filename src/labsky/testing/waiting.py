"""Wait for a condition another process brings about (a ring filling, a file appearing).

Within one process, tests wait on events. Across processes some conditions
have no doorbell to wait on (a batch landing in a memory-mapped ring, rows in
a file another process writes): `wait_until` checks the condition itself, often,
until it holds, and fails naming it when it does not come.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.02
) -> T:
    """Return the condition's first true value, checking it every `every` seconds.

    Raises:
        TimeoutError: Naming `what`, when it did not hold within `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(every)  # noqa: TID251 - the named poll, for conditions without a bell
