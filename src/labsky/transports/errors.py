"""Errors of instrument links, each naming the device, the command and the fix."""

from __future__ import annotations

from labsky.errors import LabskyError

#: Longest message an instrument error carries; the middle of a longer one
#: (a long reply quoted whole) is cut, keeping the device's name at the start
#: and the advice at the end.
MAX_MESSAGE = 600


def excerpt(reply: str | bytes, limit: int = 60) -> str:
    """Quote a reply for a message: its repr, cut after `limit` characters."""
    if len(reply) <= limit:
        return repr(reply)
    unit = "bytes" if isinstance(reply, bytes) else "characters"
    return f"{reply[:limit]!r}... ({len(reply)} {unit})"


def reconnect_advice(label: str) -> str:
    """How to connect a device again once its instrument is back."""
    name = label if label.isidentifier() else "NAME"
    return (
        f"then reconnect it: session.reconnect({name!r}), or %reconnect {name} at "
        "the prompt"
    )


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """Cut the middle of a message longer than `limit` characters."""
    if len(message) <= limit:
        return message
    head, tail = limit * 2 // 3, limit // 4
    cut = len(message) - head - tail
    return f"{message[:head]} [... {cut} characters cut ...] {message[-tail:]}"


class InstrumentError(LabskyError, RuntimeError):
    """Something went wrong talking to an instrument.

    The message always starts with the device's name, so a failed scan says
    which instrument stopped it, and is at most `MAX_MESSAGE` characters
    long however long a reply it quotes.
    """

    def __init__(self, message: str = "", *args: object):
        super().__init__(shorten(str(message)), *args)


class InstrumentTimeoutError(InstrumentError, TimeoutError):
    """The instrument did not answer in time."""


class ReplyError(InstrumentError, ValueError):
    """The instrument answered something that does not parse."""


class InstrumentRefusedError(InstrumentError):
    """The instrument answered with an error (or an error status)."""


class LinkClosedError(InstrumentError, ConnectionError):
    """The link is closed or was lost (cable pulled, device powered off)."""
