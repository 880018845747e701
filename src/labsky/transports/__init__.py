"""Links to instruments: serial ports, TCP sockets and VISA resources.

Devices talk to instruments through a `Link`: `query` a command and get its
reply, `send` a command that has none. `make_link` picks the implementation
from the address, so a declaration can move an instrument from a serial port
to a terminal server or a VISA resource without code:

- `/dev/ttyUSB0`, `/dev/serial/by-id/...`, `socket://host:port`: `SerialLink`
- `tcp://host:port`: `TcpLink`
- `TCPIP::host::5000::SOCKET`, `GPIB0::12::INSTR`, ...: `VisaLink`
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from labsky.transports.errors import (
    InstrumentError,
    InstrumentRefusedError,
    InstrumentTimeoutError,
    LinkClosedError,
    ReplyError,
    excerpt,
)
from labsky.transports.stream import (
    LineSettings,
    SerialLink,
    SerialSettings,
    StreamLink,
    TcpLink,
)
from labsky.transports.visa import VisaLink


@runtime_checkable
class Link(Protocol):
    """What devices need of a link to a text instrument."""

    label: str
    address: str
    hint: str
    lock: asyncio.Lock

    @property
    def is_open(self) -> bool:
        """Whether the link is open."""
        ...

    async def open(self) -> None:
        """Open (or reopen) the link."""
        ...

    async def close(self) -> None:
        """Close the link."""
        ...

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send a command and return its reply."""
        ...

    async def send(self, command: str) -> None:
        """Send a command that has no reply."""
        ...

    async def query_block(self, command: str, timeout: float | None = None) -> bytes:
        """Send a query answered by a binary block (`#<d><len><bytes>`)."""
        ...


def is_visa_resource(address: str) -> bool:
    """Whether `address` is a VISA resource name rather than a port or URL."""
    return "::" in address


def make_link(
    address: str,
    serial: SerialSettings | None = None,
    line: LineSettings | None = None,
    visa_library: str = "@py",
    label: str = "",
) -> Link:
    """Return the link for an address (see the module docstring).

    Args:
        address: Serial port, `tcp://host:port` or a VISA resource name.
        serial: Serial settings (serial ports only).
        line: Terminators, encoding and timeout.
        visa_library: pyvisa backend for VISA resources.
        label: Name used in messages.
    """
    if is_visa_resource(address):
        return VisaLink(address, line, visa_library, label)
    if address.startswith("tcp://"):
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"{address!r}: write tcp://HOST:PORT, e.g. tcp://rp-f0a1b2:5000"
            )
        return TcpLink(host, int(port), line, label)
    return SerialLink(address, serial, line, label)


__all__ = [
    "InstrumentError",
    "InstrumentRefusedError",
    "InstrumentTimeoutError",
    "LineSettings",
    "Link",
    "LinkClosedError",
    "ReplyError",
    "SerialLink",
    "SerialSettings",
    "StreamLink",
    "TcpLink",
    "VisaLink",
    "excerpt",
    "is_visa_resource",
    "make_link",
]
