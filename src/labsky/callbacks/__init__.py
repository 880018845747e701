"""Document callbacks subscribed by the session."""

from labsky.callbacks.progress import RunProgress

__all__ = ["RunProgress"]
