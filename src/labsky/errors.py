"""The base of every error labsky raises (bottom layer: imports nothing of labsky).

Each labsky error also derives from the built-in error it refines
(`ConfigError` is a `ValueError`, `InstrumentTimeoutError` a `TimeoutError`),
so callers may catch either: `except LabskyError` catches what labsky raised,
`except ValueError` keeps working as before.
"""

from __future__ import annotations

__all__ = ["LabskyError"]


class LabskyError(Exception):
    """An error labsky raises; its message says what went wrong and the fix."""
