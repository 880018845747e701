"""Text links to instruments over asyncio transports: serial ports and TCP.

A link is opened on the RunEngine's event loop and never blocks it: serial
ports are opened by pyserial (in an executor, with the baud rate, parity and
flow control the instrument needs) and then read and written through
pyserial-asyncio's transport; TCP uses the loop's own sockets. Replies are
gathered in a buffer of our own, so a link can throw away stale bytes before
a command, wait for a terminator with a deadline, and read binary blocks.

Every error names the device (`label`), the command and what to check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from labsky.transports.errors import (
    InstrumentError,
    InstrumentTimeoutError,
    LinkClosedError,
    ReplyError,
    reconnect_advice,
)

T = TypeVar("T")
Parity = Literal["N", "E", "O", "M", "S"]

#: Largest reply kept while waiting for a terminator (a Red Pitaya trace in
#: ASCII is about 200 kB).
MAX_REPLY = 4 * 1024 * 1024


@dataclass(frozen=True)
class LineSettings:
    """How an instrument frames its text.

    Attributes:
        write_termination: Appended to every command.
        read_termination: Ends every reply.
        encoding: Text encoding of commands and replies.
        timeout: Seconds to wait for a reply unless a command says otherwise.
        answers_every_query: The instrument answers every query, if late
            (it never refuses one by silence, as SCPI servers do): the reply
            of a query that timed out is then waited for (up to `timeout`)
            and dropped before the next command, so that the retry of a
            query never leaves its own reply for the next query to take.
    """

    write_termination: str = "\r\n"
    read_termination: str = "\r\n"
    encoding: str = "ascii"
    timeout: float = 1.0
    answers_every_query: bool = False


@dataclass(frozen=True)
class SerialSettings:
    """Serial line settings, as the instrument's manual gives them.

    Attributes:
        baudrate: Bits per second.
        bytesize: Data bits (5 to 8).
        parity: `N`, `E`, `O`, `M` or `S`.
        stopbits: 1, 1.5 or 2.
        xonxoff: Software flow control.
        rtscts: Hardware flow control.
    """

    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1
    xonxoff: bool = False
    rtscts: bool = False

    def describe(self) -> str:
        """`9600 8N1, no flow control` style summary for messages."""
        flow = ", ".join(
            name
            for name, on in (("XON/XOFF", self.xonxoff), ("RTS/CTS", self.rtscts))
            if on
        )
        stop = (
            int(self.stopbits) if self.stopbits == int(self.stopbits) else self.stopbits
        )
        return (
            f"{self.baudrate} {self.bytesize}{self.parity}{stop}, "
            f"{flow or 'no'} flow control"
        )


class _Buffered(asyncio.Protocol):
    """Collect received bytes and wake whoever waits for them."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.event = asyncio.Event()
        self.made = asyncio.Event()
        self.gone = asyncio.Event()
        self.transport: asyncio.BaseTransport | None = None
        self.lost: BaseException | None = None
        self.is_lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.made.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_lost = True
        self.lost = exc
        self.event.set()
        self.gone.set()


class StreamLink:
    """A line-oriented text link; subclasses say how the transport is opened.

    Args:
        address: What the link connects to, as shown in messages.
        line: Framing and default timeout.
        label: Name used in messages (the device's name, set at connect).
    """

    #: What to check when opening fails; subclasses refine it.
    hint = "check the address"

    def __init__(self, address: str, line: LineSettings, label: str = ""):
        self.address = address
        self.line = line
        self.label = label or address
        self.lock = asyncio.Lock()
        self._protocol: _Buffered | None = None
        self._terminator = line.read_termination.encode(line.encoding)
        # readers of replies still owed to queries cancelled after their write
        self._owed: list[Callable[[float], Awaitable[Any]]] = []

    # -- opening ----------------------------------------------------------

    async def _create(self, protocol: _Buffered) -> None:
        raise NotImplementedError

    async def open(self) -> None:
        """Open the link (closing a previous connection first)."""
        await self.close()
        protocol = _Buffered()
        try:
            await self._create(protocol)
            await asyncio.wait_for(protocol.made.wait(), 5.0)
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            raise LinkClosedError(
                f"{self.label}: cannot open {self.address}: {exc}; "
                f"{self._open_hint(exc)}"
            ) from exc
        self._protocol = protocol

    def _open_hint(self, exc: BaseException) -> str:
        """What to check when opening failed with `exc`."""
        return self.hint

    @property
    def is_open(self) -> bool:
        """Whether the link is open and was not lost."""
        return self._protocol is not None and not self._protocol.is_lost

    async def close(self) -> None:
        """Close the link; later calls do nothing."""
        protocol, self._protocol = self._protocol, None
        self._owed.clear()
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            try:  # the port is released when the transport says it is gone
                await asyncio.wait_for(protocol.gone.wait(), 2.0)
            except TimeoutError:
                pass

    def _open_protocol(self, command: str) -> _Buffered:
        protocol = self._protocol
        if protocol is None:
            raise LinkClosedError(
                f"{self.label}: {command!r} sent while {self.address} is not "
                "connected; connect the device first"
            )
        if protocol.is_lost:
            reason = f" ({protocol.lost})" if protocol.lost else ""
            raise LinkClosedError(
                f"{self.label}: the connection to {self.address} was lost{reason}; "
                f"check the cable and power, {reconnect_advice(self.label)}"
            )
        return protocol

    # -- bytes ------------------------------------------------------------

    def discard_input(self) -> bytes:
        """Drop and return bytes received but not read (stale replies, noise)."""
        protocol = self._protocol
        if protocol is None:
            return b""
        stale = bytes(protocol.buffer)
        protocol.buffer.clear()
        return stale

    async def write_bytes(self, data: bytes, command: str = "") -> None:
        """Send raw bytes."""
        protocol = self._open_protocol(command or repr(data))
        transport = protocol.transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(data)

    def pending(self) -> bytes:
        """Bytes received and not read yet (left intact)."""
        return bytes(self._protocol.buffer) if self._protocol is not None else b""

    async def _wait(
        self, protocol: _Buffered, deadline: float, command: str, timeout: float
    ) -> None:
        """Wait for more bytes until `deadline`; raise if none came."""
        remaining = deadline - time.monotonic()
        protocol.event.clear()
        try:
            if remaining <= 0:
                raise TimeoutError
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow
            # a cancellation that lands as the reply arrives (gh-86296)
            async with asyncio.timeout(remaining):
                await protocol.event.wait()
        except TimeoutError:
            if protocol.event.is_set():
                # the bytes came as the deadline passed (on a loaded host
                # the loop reads them and fires the timeout in one turn):
                # the caller looks at them before giving up
                return
            raise self._silence(command, timeout, protocol) from None

    async def read_until(
        self, terminator: bytes, timeout: float | None = None, command: str = ""
    ) -> bytes:
        """Read up to `terminator` (dropped from the result)."""
        timeout = self.line.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        protocol = self._open_protocol(command)
        while (end := protocol.buffer.find(terminator)) < 0:
            if len(protocol.buffer) > MAX_REPLY:
                junk = bytes(protocol.buffer[:40])
                protocol.buffer.clear()
                raise ReplyError(
                    f"{self.label}: more than {MAX_REPLY} bytes without a "
                    f"{terminator!r} after {command!r} (starting {junk!r}); check "
                    "the baud rate and the terminator"
                )
            await self._wait(protocol, deadline, command, timeout)
            protocol = self._open_protocol(command)
        reply = bytes(protocol.buffer[:end])
        del protocol.buffer[: end + len(terminator)]
        return reply

    async def read_exactly(
        self, count: int, timeout: float | None = None, command: str = ""
    ) -> bytes:
        """Read exactly `count` bytes."""
        timeout = self.line.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        protocol = self._open_protocol(command)
        while len(protocol.buffer) < count:
            await self._wait(protocol, deadline, command, timeout)
            protocol = self._open_protocol(command)
        data = bytes(protocol.buffer[:count])
        del protocol.buffer[:count]
        return data

    def _silence(
        self, command: str, timeout: float, protocol: _Buffered
    ) -> InstrumentTimeoutError | ReplyError:
        got = bytes(protocol.buffer[:60])
        if got:
            return ReplyError(
                f"{self.label}: garbled or incomplete reply {got!r} to {command!r} "
                f"from {self.address} (no terminator within {timeout:g} s); "
                f"{self.hint}"
            )
        return InstrumentTimeoutError(
            f"{self.label}: no reply to {command!r} from {self.address} within "
            f"{timeout:g} s; {self.hint}"
        )

    # -- text -------------------------------------------------------------

    def _decode(self, raw: bytes, command: str) -> str:
        try:
            return raw.decode(self.line.encoding)
        except UnicodeDecodeError:
            raise ReplyError(
                f"{self.label}: the reply to {command!r} is not "
                f"{self.line.encoding} text: {raw[:60]!r}; {self.hint}"
            ) from None

    async def write(self, command: str) -> None:
        """Send one command with the write terminator."""
        data = (command + self.line.write_termination).encode(self.line.encoding)
        await self.write_bytes(data, command)

    async def read_line(self, timeout: float | None = None, command: str = "") -> str:
        """Read one reply line (without its terminator)."""
        raw = await self.read_until(self._terminator, timeout, command)
        return self._decode(raw, command)

    async def _collect_owed(self) -> None:
        """Read the replies of queries cancelled (or timed out) after their write.

        A task cancelled while it waits for a reply (a loop stopped, a plan
        aborted) leaves the reply in flight, as does a query that timed out
        on an instrument that `answers_every_query`; it is read (within the
        link's timeout) and dropped here so the next query does not take it
        for its own.
        """
        while self._owed:
            read = self._owed[0]
            try:
                await read(self.line.timeout)
            except InstrumentError:  # it never came, or garbled: start clean
                self.discard_input()
                self._owed.clear()
            else:
                self._owed.pop(0)

    async def _exchange(
        self,
        command: str,
        read: Callable[[float | None, str], Awaitable[T]],
        timeout: float | None,
    ) -> T:
        async with self.lock:
            await self._collect_owed()
            self.discard_input()
            await self.write(command)
            try:
                return await read(timeout, command)
            except (asyncio.CancelledError, InstrumentTimeoutError) as exc:
                timed_out = isinstance(exc, InstrumentTimeoutError)
                if not timed_out or self.line.answers_every_query:  # late, not never
                    self._owed.append(lambda t: read(t, f"(late reply to {command!r})"))
                raise

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send a command and return its one-line reply.

        Stale bytes left by an earlier timed-out command are dropped first, so
        a late reply is never taken for this command's; the reply of a query
        cancelled while waiting is read and dropped.
        """
        return await self._exchange(command, self.read_line, timeout)

    async def send(self, command: str) -> None:
        """Send a command that has no reply (taking the lock like `query`)."""
        async with self.lock:
            await self._collect_owed()
            await self.write(command)

    async def query_block(self, command: str, timeout: float | None = None) -> bytes:
        """Send a query answered by an IEEE 488.2 block (`#<d><len><bytes>`).

        Returns:
            The block's bytes (the read terminator after it is consumed).

        Raises:
            ReplyError: If the reply is not a definite-length block.
        """
        return await self._exchange(command, self._read_block, timeout)

    async def _read_block(self, timeout: float | None, command: str) -> bytes:
        head = await self.read_exactly(2, timeout, command)
        digits = head[1:2]
        if head[:1] != b"#" or not digits.isdigit() or digits == b"0":
            rest = self.discard_input()[:40]
            raise ReplyError(
                f"{self.label}: expected a binary block (#<digits><length>) in "
                f"reply to {command!r}, got {head + rest!r}; is the data "
                "format binary?"
            )
        length = await self.read_exactly(int(digits), timeout, command)
        if not length.isdigit():
            raise ReplyError(
                f"{self.label}: bad block length {length!r} in reply to {command!r}"
            )
        data = await self.read_exactly(int(length), timeout, command)
        await self.read_until(self._terminator, timeout, command)
        return data


class SerialLink(StreamLink):
    """A serial port (or a pyserial URL such as `socket://host:port`).

    The port is opened with `exclusive=True`, so a second program cannot talk
    to the same instrument behind our back.

    Args:
        port: Device path (`/dev/ttyUSB0`, `/dev/serial/by-id/...`) or a
            pyserial URL.
        serial: Baud rate, framing and flow control.
        line: Terminators, encoding and default timeout.
        label: Name used in messages.
    """

    def __init__(
        self,
        port: str,
        serial: SerialSettings | None = None,
        line: LineSettings | None = None,
        label: str = "",
    ):
        super().__init__(port, line or LineSettings(), label)
        self.serial = serial or SerialSettings()
        self.hint = (
            f"check that the instrument is on and cabled to {port}, at "
            f"{self.serial.describe()}"
        )

    def _open_hint(self, exc: BaseException) -> str:
        if "exclusively lock" in str(exc):
            return (
                f"another program (or another session) has {self.address} open; "
                f"close it (`fuser -v {self.address}` names it)"
            )
        return self.hint

    async def _create(self, protocol: _Buffered) -> None:
        from serial_asyncio_fast import create_serial_connection

        settings: dict[str, Any] = {
            "baudrate": self.serial.baudrate,
            "bytesize": self.serial.bytesize,
            "parity": self.serial.parity,
            "stopbits": self.serial.stopbits,
            "xonxoff": self.serial.xonxoff,
            "rtscts": self.serial.rtscts,
        }
        if "://" not in self.address:
            settings["exclusive"] = True
        await create_serial_connection(
            asyncio.get_running_loop(), lambda: protocol, self.address, **settings
        )


class TcpLink(StreamLink):
    """A raw TCP socket (SCPI servers such as the Red Pitaya's on port 5000).

    Args:
        host: Host name or IP address.
        port: TCP port.
        line: Terminators, encoding and default timeout.
        label: Name used in messages.
    """

    def __init__(
        self, host: str, port: int, line: LineSettings | None = None, label: str = ""
    ):
        super().__init__(f"{host}:{port}", line or LineSettings(), label)
        self.host = host
        self.port = port
        self.hint = f"check that {host} is reachable (ping) and serves port {port}"

    async def _create(self, protocol: _Buffered) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(
            loop.create_connection(lambda: protocol, self.host, self.port),
            self.line.timeout * 5,
        )


def with_timeout(line: LineSettings, timeout: float) -> LineSettings:
    """Return `line` with another default timeout."""
    return replace(line, timeout=timeout)
