"""The instrument end of a pseudo-terminal: a serial port drivers open for real.

A `PtyPort` opens a pty pair. The driver under test opens the *slave* side
(`/dev/pts/N`) with pyserial, exactly as it opens `/dev/ttyUSB0` in the lab;
the simulator reads and writes the *master* side. Linux shares one termios
between the two sides, so the simulator sees the baud rate, framing and flow
control the driver chose and behaves like the instrument would when they are
wrong: it hears noise and stays silent.

Replies leave after the instrument's latency plus the time the bytes take on
the wire at the configured baud rate. Faults can be injected at any time:
silence, garbage instead of replies, or a disconnect (the port disappears, as
when a USB adapter is pulled).

Hardware flow control is a property of the cable, not of the bytes: an
instrument with RTS/CTS handshake (the ESP300) only sees the RTS line, which
pyserial raises when it opens a port whether or not the host asked for
CRTSCTS. Such an instrument passes `check_rtscts=False` and answers either
way, as the real one does.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from labsky.transports.stream import SerialSettings

logger = logging.getLogger(__name__)


class Fault(enum.StrEnum):
    """What a simulated instrument does wrong on purpose."""

    NONE = "none"
    SILENT = "silent"  # hears commands, never answers
    GARBAGE = "garbage"  # answers with noise
    DISCONNECT = "disconnect"  # the port goes away


_PARITY = {"N": (False, False), "E": (True, False), "O": (True, True)}


def settings_mismatch(
    attributes: list, expected: SerialSettings, check_rtscts: bool = True
) -> str | None:
    """Compare a port's termios attributes with the instrument's settings.

    Args:
        attributes: `termios.tcgetattr` of the port.
        expected: The instrument's settings.
        check_rtscts: Whether the host's RTS/CTS setting matters (it does not
            for an instrument that only looks at the RTS line).

    Returns:
        What differs, or None when the driver configured the port right.
    """
    import termios  # POSIX only, like ptys: imported where needed

    sizes = {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}
    iflag, _, cflag, _, _, ospeed, _ = attributes
    problems = []
    baud = getattr(termios, f"B{expected.baudrate}", None)
    if baud is not None and ospeed != baud:
        problems.append(f"baud rate is not {expected.baudrate}")
    if cflag & termios.CSIZE != sizes.get(expected.bytesize, termios.CS8):
        problems.append(f"data bits are not {expected.bytesize}")
    enabled, odd = _PARITY.get(expected.parity, (False, False))
    if bool(cflag & termios.PARENB) != enabled or (
        enabled and bool(cflag & termios.PARODD) != odd
    ):
        problems.append(f"parity is not {expected.parity}")
    if bool(cflag & termios.CSTOPB) != (expected.stopbits == 2):
        problems.append(f"stop bits are not {expected.stopbits:g}")
    if check_rtscts and bool(cflag & termios.CRTSCTS) != expected.rtscts:
        problems.append(
            "RTS/CTS flow control is " + ("off" if expected.rtscts else "on")
        )
    if bool(iflag & termios.IXON) != expected.xonxoff:
        problems.append(
            "XON/XOFF flow control is " + ("off" if expected.xonxoff else "on")
        )
    return "; ".join(problems) or None


class PtyPort:
    """The master side of a pty, speaking for one simulated instrument.

    Args:
        expected: The serial settings the instrument uses.
        on_bytes: Called (on the simulator loop) with bytes the driver sent,
            when the driver's settings are right.
        name: For log messages.
        link: Optional stable path to symlink to the pty (`/dev/pts/N`
            numbers change from run to run).
        check_rtscts: Stay silent when the host's RTS/CTS setting differs
            from `expected` (False: the instrument does not care).
    """

    def __init__(
        self,
        expected: SerialSettings,
        on_bytes: Callable[[bytes], None],
        name: str = "",
        link: Path | None = None,
        check_rtscts: bool = True,
    ):
        self.expected = expected
        self.check_rtscts = check_rtscts
        self.on_bytes = on_bytes
        self.name = name
        self.link = link
        self.fault = Fault.NONE
        self.path = ""
        self.mismatch: str | None = None
        self._master = -1
        self._slave = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._noise = np.random.default_rng()
        self._line_free = 0.0  # loop time when the line is free to send again

    def open(self, loop: asyncio.AbstractEventLoop) -> str:
        """Create the pty and start listening; return the slave's path."""
        import tty

        self._loop = loop
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing until the driver sets it
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        loop.add_reader(self._master, self._readable)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.path)
        logger.debug("%s listening on %s", self.name, self.path)
        return self.path

    @property
    def endpoint(self) -> str:
        """What a driver opens: the stable link if there is one, else the pty."""
        return str(self.link) if self.link is not None else self.path

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not data or self.fault is Fault.DISCONNECT:
            return
        import termios

        self.mismatch = settings_mismatch(
            termios.tcgetattr(self._master), self.expected, self.check_rtscts
        )
        if self.mismatch:
            logger.info("%s hears noise (%s): %r", self.name, self.mismatch, data)
            return
        self.on_bytes(data)

    def wire_time(self, size: int) -> float:
        """Seconds `size` bytes take on the line at the instrument's baud rate."""
        bits = 1 + self.expected.bytesize + self.expected.stopbits
        bits += 0 if self.expected.parity == "N" else 1
        return size * bits / self.expected.baudrate

    def send(self, data: bytes, delay: float = 0.0) -> None:
        """Send bytes to the driver after `delay` plus their time on the wire.

        Replies leave in the order they were sent, one after the other, as
        on a real line: a short reply never overtakes a long one.
        """
        assert self._loop is not None
        now = self._loop.time()
        start = max(now + delay, self._line_free)
        self._line_free = start + self.wire_time(len(data))
        self._loop.call_at(self._line_free, self._write, data)

    def _write(self, data: bytes) -> None:
        if self._master < 0 or self.fault in (Fault.SILENT, Fault.DISCONNECT):
            return
        if self.fault is Fault.GARBAGE:
            data = self._noise.integers(128, 256, len(data), dtype=np.uint8).tobytes()
        try:
            os.write(self._master, data)
        except OSError as exc:  # nobody reading and the buffer is full
            logger.debug("%s dropped %d bytes: %s", self.name, len(data), exc)

    def disconnect(self) -> None:
        """Pull the plug: the driver's next read or write fails."""
        self.fault = Fault.DISCONNECT
        self.close()

    def close(self) -> None:
        """Close both sides of the pty and remove the link."""
        if self._master >= 0:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._master)
            os.close(self._master)
            self._master = -1
        if self._slave >= 0:
            os.close(self._slave)
            self._slave = -1
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
