"""What every device that talks to an instrument over a `Link` shares.

`LinkConnector` opens the device's endpoint (its own link, or a bus shared
with other devices) when the device connects in real mode (never in mock
mode), runs the device's handshake (identify the instrument, put it in a
known state) under the connect timeout, and turns a silent instrument into
an error that names the device, the address and what to check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ophyd_async.core import Device, DeviceConnector

from labsky.transports import InstrumentTimeoutError, Link

logger = logging.getLogger(__name__)

Handshake = Callable[[], Awaitable[None]]


class Endpoint(Protocol):
    """What a device connects through: a `Link`, or a bus holding one."""

    @property
    def address(self) -> str:
        """Where it connects to, for messages."""
        ...

    @property
    def hint(self) -> str:
        """What to check when it does not answer."""
        ...

    @property
    def is_open(self) -> bool:
        """Whether it is open."""
        ...

    async def open(self) -> None:
        """Open it (idempotent for shared buses)."""
        ...


@runtime_checkable
class Disconnectable(Protocol):
    """Something holding an instrument link that the session closes at exit."""

    async def disconnect(self) -> None:
        """Close the link."""
        ...


class LinkConnector(DeviceConnector):
    """Connect a device by opening its link and greeting the instrument.

    Args:
        endpoint: The instrument's link or bus (opened here).
        handshake: Coroutine run once it is open: identify the instrument
            and set it up; raise if it is not what was declared.
    """

    def __init__(self, endpoint: Endpoint, handshake: Handshake | None = None):
        self.endpoint = endpoint
        self.handshake = handshake

    async def connect_real(
        self, device: Device, timeout: float, force_reconnect: bool
    ) -> None:
        """Open the endpoint and run the handshake, then connect the signals."""
        if isinstance(self.endpoint, Link) and device.name:
            self.endpoint.label = device.name  # its own link: messages name it
        try:
            await asyncio.wait_for(self._greet(force_reconnect), timeout)
        except TimeoutError as exc:
            await self._let_go()
            if isinstance(exc, InstrumentTimeoutError):
                raise
            raise InstrumentTimeoutError(
                f"{device.name}: the instrument at {self.endpoint.address} did not "
                f"finish answering within the connect timeout of {timeout:g} s; "
                f"{self.endpoint.hint}"
            ) from None
        except BaseException:
            await self._let_go()
            raise
        await super().connect_real(device, timeout, force_reconnect)

    async def _let_go(self) -> None:
        """Close the device's own link after a failed greeting.

        A serial port left open stays locked (`exclusive=True`), so the next
        attempt, by this process or another, would find it busy. A bus shared
        with other devices stays open for them.
        """
        if isinstance(self.endpoint, Link):
            try:
                await self.endpoint.close()
            except Exception as exc:  # noqa: BLE001 - the greeting's error matters
                logger.warning(
                    "%s: closing after a failed connect: %s", self.endpoint.address, exc
                )

    async def _greet(self, force_reconnect: bool) -> None:
        if force_reconnect or not self.endpoint.is_open:
            await self.endpoint.open()
        if self.handshake is not None:
            await self.handshake()


async def query_retrying(
    link: Link, command: str, retries: int = 2, timeout: float | None = None
) -> str:
    """Query, asking again after a timeout (never use this for moves)."""
    for attempt in range(retries + 1):
        try:
            return await link.query(command, timeout)
        except InstrumentTimeoutError:
            if attempt == retries:
                raise
            logger.info("%s: no reply to %r, asking again", link.label, command)
    raise AssertionError("unreachable")
