"""Errors of instrument links, each naming the device, the command and the fix."""

from __future__ import annotations


class InstrumentError(RuntimeError):
    """Something went wrong talking to an instrument.

    The message always starts with the device's name, so a failed scan says
    which instrument stopped it.
    """


class InstrumentTimeoutError(InstrumentError, TimeoutError):
    """The instrument did not answer in time."""


class ReplyError(InstrumentError, ValueError):
    """The instrument answered something that does not parse."""


class InstrumentRefusedError(InstrumentError):
    """The instrument answered with an error (or an error status)."""


class LinkClosedError(InstrumentError, ConnectionError):
    """The link is closed or was lost (cable pulled, device powered off)."""
