"""Spectra-Physics MaiTai Ti:sapphire laser."""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from functools import cached_property

from ophyd_async.core import (
    MovableLogic,
    SignalR,
    SoftSignalBackend,
    StandardMovable,
    StandardReadable,
    StrictEnum,
    TimeoutCalculator,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.link_device import LinkConnector, query_retrying
from labsky.transports import (
    InstrumentRefusedError,
    InstrumentTimeoutError,
    LineSettings,
    ReplyError,
    SerialLink,
    SerialSettings,
)

EMISSION, MODELOCKED, SHUTTER_OPEN, WARMED_UP = 1, 2, 4, 8
POLL = 0.1
_QUANTITY = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(nm|mW|W|%)?\s*$"
)
_SCALE = {"nm": 1.0, "W": 1.0, "mW": 1e-3, "%": 1.0, None: 1.0}
_SUFFIXES = {"nm": ("nm",), "W": ("W", "mW"), "%": ("%",)}


class Shutter(StrictEnum):
    """The laser's output shutter."""

    OPEN = "open"
    CLOSED = "closed"


def parse_quantity(reply: str, unit: str) -> float:
    """Parse `820nm`, `2.482W`, `250mW`, `100.00%` into nm, W or percent.

    Raises:
        ReplyError: If the reply is not a number in the expected unit.
    """
    match = _QUANTITY.match(reply)
    suffix = match.group(2) if match else None
    if match is None or (suffix is not None and suffix not in _SUFFIXES[unit]):
        raise ReplyError(f"expected a value in {unit}, got {reply!r}")
    value = float(match.group(1)) * _SCALE[suffix]
    if not math.isfinite(value):
        raise ReplyError(f"expected a finite value in {unit}, got {reply!r}")
    return value


def parse_status(reply: str) -> int:
    """Parse `*STB?`, a status byte (0-255).

    Raises:
        ReplyError: If it is not an integer in 0-255.
    """
    text = reply.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > 255:
        raise ReplyError(f"*STB? answers a status byte 0-255, got {reply!r}")
    return int(text)


@dataclass
class MaiTaiTuning(MovableLogic[float]):
    """Tuning completes when the measured wavelength reaches the target."""

    laser: MaiTai

    async def check_move(self, new_position: float) -> None:
        """Refuse wavelengths outside the tuning range."""
        low, high = self.laser.tuning_range
        if not (math.isfinite(new_position) and low <= new_position <= high):
            raise ValueError(
                f"{self.laser.name}: {new_position} nm is outside the tuning range "
                f"{low:g}-{high:g} nm"
            )

    async def calculate_timeout(
        self, old_position: float, new_position: float
    ) -> float:
        """Allow tuning at the slowest rate the laser should have, plus 10 s."""
        return abs(new_position - old_position) / self.laser.min_tune_rate + 10.0

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:
        """Send the wavelength and wait until the laser reads it back."""
        laser = self.laser
        await self.setpoint.set(new_position)
        await laser.link.send(f"WAVelength {new_position:.1f}")
        deadline = time.monotonic() + (timeout() or 60.0)
        while abs(await laser.read_wavelength() - new_position) > laser.tolerance:
            if time.monotonic() > deadline:
                raise InstrumentTimeoutError(
                    f"{laser.name}: did not reach {new_position:g} nm in time "
                    f"(reads {laser.last_wavelength:g} nm); is the laser in remote "
                    "mode?"
                )
            await asyncio.sleep(POLL)

    async def stop(self) -> None:
        """Hold the wavelength where it is."""
        await self.laser.link.send(f"WAVelength {self.laser.last_wavelength:.1f}")


class MaiTai(StandardReadable, StandardMovable[float]):
    """A MaiTai: the wavelength is the movable (waits until reached).

    `shutter` (`open`/`closed`) and `emission` (bool) are settable signals;
    emission only starts with the shutter closed and the laser warmed up,
    and each change is checked against the laser's status before the set
    completes.

    Args:
        port: Serial port.
        baudrate: 115200 over USB, 9600 over RS-232 (then `xonxoff`).
        xonxoff: XON/XOFF flow control (RS-232).
        tuning_range: Shortest and longest wavelength, nm.
        tolerance: How close (nm) the measured wavelength must come.
        timeout: Seconds to wait for a reply.
        name: The device name.
    """

    min_tune_rate = 5.0  # nm/s: used for timeouts only

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        xonxoff: bool = False,
        tuning_range: tuple[float, float] = (690.0, 1040.0),
        tolerance: float = 1.0,
        timeout: float = 1.0,
        name: str = "",
    ):
        self.link = SerialLink(
            port,
            SerialSettings(baudrate=baudrate, xonxoff=xonxoff),
            LineSettings(
                write_termination="\n", read_termination="\n", timeout=timeout
            ),
        )
        self.tuning_range = tuning_range
        self.tolerance = tolerance
        self.last_wavelength = math.nan
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.wavelength = SignalR(
                SoftSignalBackend(
                    float,
                    units="nm",
                    precision=1,
                    getter=self.read_wavelength,
                    poll_period=0.2,
                )
            )
        with self.add_children_as_readables(Format.UNCACHED_SIGNAL):
            self.power = SignalR(
                SoftSignalBackend(
                    float, units="W", precision=4, getter=self._read_power
                )
            )
            self.shutter = soft_signal_rw(
                Shutter, getter=self._get_shutter, setter=self._put_shutter
            )
            self.emission = soft_signal_rw(
                bool, getter=self._get_emission, setter=self._put_emission
            )
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.warmup = SignalR(
                SoftSignalBackend(float, units="%", getter=self._read_warmup)
            )
            self.pump_power = SignalR(
                SoftSignalBackend(
                    float,
                    units="W",
                    precision=2,
                    getter=lambda: self._quantity("READ:PLASer:POWer?", "W"),
                )
            )
            self.identity, self._set_identity = soft_signal_r_and_setter(str)
        self.wavelength_setpoint = soft_signal_rw(float, units="nm", precision=1)
        super().__init__(name=name, connector=LinkConnector(self.link, self._handshake))

    @cached_property
    def movable_logic(self) -> MaiTaiTuning:
        """How the wavelength moves."""
        return MaiTaiTuning(
            setpoint=self.wavelength_setpoint, readback=self.wavelength, laser=self
        )

    async def _handshake(self) -> None:
        self.link.label = self.name
        self.link.discard_input()
        identity = await query_retrying(self.link, "*IDN?")
        if "MAITAI" not in identity.upper().replace(" ", ""):
            raise ReplyError(
                f"{self.name}: {self.link.address} answered *IDN? with {identity!r}, "
                "not a MaiTai; check the port and baud rate"
            )
        self._set_identity(identity.strip())
        # The laser keeps its target: start from it, so `locate()` (and `%wa`)
        # agree with the readback before the first move.
        await self.wavelength_setpoint.set(await self._quantity("WAVelength?", "nm"))

    async def _quantity(self, command: str, unit: str) -> float:
        reply = await query_retrying(self.link, command)
        try:
            return parse_quantity(reply, unit)
        except ReplyError as exc:
            raise ReplyError(f"{self.name}: {command} {exc}") from None

    async def read_wavelength(self) -> float:
        """The measured wavelength (nm)."""
        self.last_wavelength = await self._quantity("READ:WAVelength?", "nm")
        return self.last_wavelength

    async def _read_power(self) -> float:
        return await self._quantity("READ:POWer?", "W")

    async def _read_warmup(self) -> float:
        return await self._quantity("READ:PCTWarmedup?", "%")

    async def status(self) -> int:
        """The status byte: 1 emission, 2 modelocked, 4 shutter open, 8 warmed up."""
        reply = await query_retrying(self.link, "*STB?")
        try:
            return parse_status(reply)
        except ReplyError as exc:
            raise ReplyError(f"{self.name}: {exc}") from None

    async def _get_shutter(self) -> Shutter:
        reply = (await query_retrying(self.link, "SHUTter?")).strip()
        if reply not in ("0", "1"):
            raise ReplyError(f"{self.name}: SHUTter? answers 0 or 1, got {reply!r}")
        return Shutter.OPEN if reply == "1" else Shutter.CLOSED

    async def _put_shutter(self, value: Shutter | None) -> None:
        wanted = Shutter(value or Shutter.CLOSED)
        for _ in range(3):  # the head sometimes ignores a shutter command
            await self.link.send(f"SHUTter {1 if wanted is Shutter.OPEN else 0}")
            if await self._get_shutter() is wanted:
                return
        wanted_verb = "open" if wanted is Shutter.OPEN else "close"
        raise InstrumentRefusedError(
            f"{self.name}: the shutter did not {wanted_verb}; "
            "check that the laser is in remote mode and its key is on"
        )

    async def _get_emission(self) -> bool:
        return bool(await self.status() & EMISSION)

    async def _put_emission(self, on: bool | None) -> None:
        if on:
            if await self._get_shutter() is Shutter.OPEN:
                raise InstrumentRefusedError(
                    f"{self.name}: will not start emission with the shutter open; "
                    f"close it first: bps.mv({self.name}.shutter, 'closed')"
                )
            warm = await self._read_warmup()
            if warm < 100:
                raise InstrumentRefusedError(
                    f"{self.name}: still warming up ({warm:.0f}%); wait until "
                    f"{self.name}.warmup reads 100"
                )
        await self.link.send("ON" if on else "OFF")
        deadline = time.monotonic() + 5.0
        while bool(await self.status() & EMISSION) != bool(on):
            if time.monotonic() > deadline:
                raise InstrumentRefusedError(
                    f"{self.name}: emission did not turn "
                    f"{'on' if on else 'off'} within 5 s"
                )
            await asyncio.sleep(POLL)

    async def disconnect(self) -> None:
        """Close the port."""
        await self.link.close()
