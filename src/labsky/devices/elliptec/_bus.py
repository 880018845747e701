r"""The Elliptec RS-485 bus: one serial port, several mounts by address.

Every mount answers `{ADDRESS}{CODE}{data}\r\n`, and a move's answer comes
only when the move ends, so a reader task dispatches reply lines to the
address they come from while other mounts are being talked to. A move is
never retried (the mount executes it even when its reply is lost), queries
are. The bus lets two mounts move at once, no more: that is what its power
supply can feed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from labsky.transports import (
    InstrumentRefusedError,
    InstrumentTimeoutError,
    LineSettings,
    LinkClosedError,
    ReplyError,
    SerialLink,
    SerialSettings,
)

logger = logging.getLogger(__name__)

#: Meanings of the status codes a mount reports (GS).
STATUS = {
    "00": "ok",
    "01": "communication time out",
    "02": "mechanical time out",
    "03": "command error or not supported",
    "04": "value out of range",
    "05": "module isolated",
    "06": "module out of isolation",
    "07": "initialising error",
    "08": "thermal error",
    "09": "busy",
    "0A": "sensor error",
    "0B": "motor error",
    "0C": "out of range",
    "0D": "over current error",
}

ADDRESSES = "0123456789ABCDEF"

#: A reply at the end of a line: address, code, data (bus noise may precede it).
_REPLY = re.compile(r"([0-9A-F])(IN|PO|GS|GV|GJ|HO|BO)([0-9A-F]*)$")


@dataclass(frozen=True)
class ElliptecInfo:
    """What a mount says about itself (`in`).

    Attributes:
        model: Device type in hex (`0E` is an ELL14).
        serial: Serial number.
        year: Year of manufacture.
        firmware: Firmware release.
        travel: Travel in the mount's units (360 for a rotation mount).
        pulses: Encoder pulses per full travel.
    """

    model: str
    serial: str
    year: str
    firmware: str
    travel: int
    pulses: int

    @property
    def pulses_per_unit(self) -> float:
        """Encoder pulses per degree (or per mm for linear stages)."""
        return self.pulses / self.travel


def parse_info(payload: str) -> ElliptecInfo:
    """Parse the data of an `IN` reply.

    Raises:
        ReplyError: If it is not an `IN` reply of 30 or 33 characters.
    """
    if len(payload) not in (30, 33) or not payload.isascii():
        raise ReplyError(f"an IN reply has 30 or 33 characters, got {payload!r}")
    try:
        travel = int(payload[18:22], 16)
        pulses = int(payload[-8:], 16)
    except ValueError:
        raise ReplyError(
            f"IN reply {payload!r}: travel and pulses are not hex"
        ) from None
    if travel <= 0 or not 100 <= pulses / travel <= 10000:
        raise ReplyError(
            f"IN reply {payload!r}: implausible {pulses} pulses per {travel}"
        )
    return ElliptecInfo(
        model=payload[0:2],
        serial=payload[2:10],
        year=payload[10:14],
        firmware=payload[14:16],
        travel=travel,
        pulses=pulses,
    )


def decode_pulses(payload: str) -> int:
    """Decode a position: 8 hex digits, two's complement.

    Raises:
        ReplyError: If `payload` is not 8 hex digits.
    """
    if len(payload) != 8 or not payload.isascii():
        raise ReplyError(f"a position is 8 hex digits, got {payload!r}")
    try:
        value = int(payload, 16)
    except ValueError:
        raise ReplyError(f"a position is 8 hex digits, got {payload!r}") from None
    return value - (1 << 32) if value & 0x80000000 else value


def encode_pulses(pulses: int) -> str:
    """Encode a position as 8 hex digits, two's complement."""
    return f"{pulses & 0xFFFFFFFF:08X}"


class ElliptecBus:
    """A serial port shared by Elliptec mounts (declared as kind `elliptec_bus`).

    Args:
        port: The serial port (`/dev/serial/by-id/usb-FTDI_...`).
        baudrate: 9600 unless the mounts were reconfigured.
        timeout: Seconds to wait for the reply to a query.
        max_moving: Mounts allowed to move at once.
    """

    def __init__(
        self, port: str, baudrate: int = 9600, timeout: float = 0.5, max_moving: int = 2
    ):
        self.link = SerialLink(
            port,
            SerialSettings(baudrate=baudrate),
            LineSettings(
                write_termination="", read_termination="\r\n", timeout=timeout
            ),
            label=f"Elliptec bus {port}",
        )
        self.max_moving = max_moving
        self._queues: dict[str, asyncio.Queue[str | BaseException]] = {}
        self._address_locks: dict[str, asyncio.Lock] = {}
        self._open_lock: asyncio.Lock | None = None
        self._moves: asyncio.Semaphore | None = None
        self._reader: asyncio.Task[None] | None = None
        self._noise: bytes | None = None
        self.moving: set[str] = set()

    @property
    def port(self) -> str:
        """The serial port."""
        return self.link.address

    @property
    def address(self) -> str:
        """The serial port (what a connector reports)."""
        return self.link.address

    @property
    def hint(self) -> str:
        """What to check when the bus does not answer."""
        return self.link.hint

    @property
    def is_open(self) -> bool:
        """Whether the port is open and replies are being dispatched."""
        return (
            self.link.is_open and self._reader is not None and not self._reader.done()
        )

    async def open(self) -> None:
        """Open the port and start dispatching replies (once for all mounts)."""
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
            self._moves = asyncio.Semaphore(self.max_moving)
        async with self._open_lock:
            if self.is_open:
                return
            await self.link.open()
            self._reader = asyncio.create_task(
                self._dispatch(), name=f"elliptec {self.port}"
            )

    async def disconnect(self) -> None:
        """Stop dispatching and close the port."""
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        await self.link.close()

    async def _dispatch(self) -> None:
        while True:
            try:
                raw = await self.link.read_until(b"\r\n", 3600.0, "(listening)")
            except InstrumentTimeoutError:
                continue
            except LinkClosedError as exc:
                for queue in self._queues.values():
                    queue.put_nowait(exc)
                return
            except ReplyError as exc:
                self._noise = str(exc).encode()
                continue
            match = _REPLY.search(raw.decode("ascii", "replace"))
            if match is not None and match.start() > 0:
                logger.info("%s: skipped bus noise %r", self.port, raw[: match.start()])
            if match is not None and match.group(1) in self._queues:
                address, code, data = match.groups()
                self._queues[address].put_nowait(code + data)
            else:
                self._noise = raw
                logger.info("%s: noise on the bus: %r", self.port, raw)

    def _queue(self, address: str) -> asyncio.Queue[str | BaseException]:
        if address not in self._queues:
            self._queues[address] = asyncio.Queue()
            self._address_locks[address] = asyncio.Lock()
        return self._queues[address]

    async def transaction(
        self,
        who: str,
        address: str,
        command: str,
        data: str = "",
        expect: tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> tuple[str, str]:
        """Send one command to a mount and wait for its reply.

        Args:
            who: The device's name, for messages.
            address: The mount's hex address.
            command: Two letters (`gp`, `ma`, ...).
            data: The command's data.
            expect: Reply codes that answer it (a `GS` status other than `00`
                is always an error, unless expected).
            timeout: Seconds to wait (the link's default if None).

        Returns:
            The reply's code and data.
        """
        queue = self._queue(address)
        text = f"{address}{command}{data}"
        wait = self.link.line.timeout if timeout is None else timeout
        async with self._address_locks[address]:
            while not queue.empty():  # late replies of an earlier command
                stale = queue.get_nowait()
                if isinstance(stale, BaseException):
                    raise self._lost(who, stale)
            async with self.link.lock:
                self._noise = None
                try:  # the bus may be known lost before the write: name the mount
                    await self.link.write_bytes(text.encode("ascii"), text)
                except LinkClosedError as exc:
                    raise self._lost(who, exc) from exc
            deadline = time.monotonic() + wait
            while True:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        item = await queue.get()
                except TimeoutError:
                    if queue.empty():
                        raise self._silent(who, text, wait) from None
                    # it came as the deadline passed (a loaded host reads it
                    # and fires the timeout in one turn of the loop)
                    item = queue.get_nowait()
                if isinstance(item, BaseException):
                    raise self._lost(who, item)
                code, payload = item[:2].upper(), item[2:]
                if code in expect:
                    return code, payload
                if code == "GS" and payload != "00":
                    meaning = STATUS.get(payload.upper(), "unknown status")
                    raise InstrumentRefusedError(
                        f"{who}: the mount at address {address} answered {text!r} "
                        f"with status {payload} ({meaning})"
                    )
                logger.debug("%s: ignoring %r while waiting for %s", who, item, expect)

    def _silent(self, who: str, text: str, wait: float) -> Exception:
        noise = self._noise or self.link.pending()
        if noise:
            return ReplyError(
                f"{who}: garbled reply {noise[:40]!r} to {text!r} on "
                f"{self.port}; check the baud rate ({self.link.serial.baudrate}), "
                "the cable and that one program only uses the bus"
            )
        return InstrumentTimeoutError(
            f"{who}: no reply to {text!r} within {wait:g} s on {self.port}; check the "
            "mount's address, its power and the bus cable "
            f"({self.link.serial.describe()})"
        )

    def _lost(self, who: str, cause: BaseException) -> Exception:
        return LinkClosedError(f"{who}: {cause}")

    async def query(
        self, who: str, address: str, command: str, expect: str, retries: int = 2
    ) -> str:
        """A query that may be asked again after a timeout; returns the data."""
        for attempt in range(retries + 1):
            try:
                return (await self.transaction(who, address, command, "", (expect,)))[1]
            except InstrumentTimeoutError:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")

    async def move(
        self, who: str, address: str, command: str, data: str, timeout: float
    ) -> int:
        """Run a move (never retried) and return where the mount stopped, in pulses."""
        assert self._moves is not None, "open the bus first"
        async with self._moves:
            self.moving.add(address)
            try:
                _, payload = await self.transaction(
                    who, address, command, data, ("PO",), timeout
                )
            finally:
                self.moving.discard(address)
        try:
            return decode_pulses(payload)
        except ReplyError as exc:
            raise ReplyError(f"{who}: {exc}") from None

    async def stop(self, address: str) -> None:
        """Ask a mount to stop (its move then answers at once)."""
        async with self.link.lock:
            await self.link.write_bytes(f"{address}st".encode("ascii"), "st")
