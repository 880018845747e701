"""Document callbacks subscribed by the session."""

from labsky.callbacks.progress import RunProgress
from labsky.callbacks.ring_writer import RingWriter

__all__ = ["RingWriter", "RunProgress"]
