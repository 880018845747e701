"""Newport 1830-C optical power meter."""

from __future__ import annotations

import math

from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StrictEnum,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.link_device import LinkConnector, query_retrying
from labsky.transports import (
    InstrumentRefusedError,
    LineSettings,
    ReplyError,
    SerialLink,
    SerialSettings,
)

WAVELENGTH_RANGE = (400, 1100)


class MeterState(StrictEnum):
    """What the reading means."""

    OK = "OK"
    OVER = "OVER"  # above the full scale of the fixed range
    UNDER = "UNDER"  # below the resolution of the fixed range
    SATURATED = "SAT"  # too much light on the detector: insert the attenuator


class MeterFilter(StrictEnum):
    """Averaging filter of the meter."""

    SLOW = "slow"
    MEDIUM = "medium"
    FAST = "fast"


_FILTER_CODES = {MeterFilter.SLOW: "1", MeterFilter.MEDIUM: "2", MeterFilter.FAST: "3"}


def parse_reading(reply: str) -> tuple[float, MeterState]:
    """Parse the answer to `D?`: a power in W, or a state word.

    Returns:
        The power (NaN unless the state is OK) and the state.

    Raises:
        InstrumentRefusedError: For `ERR`.
        ReplyError: For anything else that is not a number.
    """
    text = reply.strip().upper()
    for state in (MeterState.OVER, MeterState.UNDER, MeterState.SATURATED):
        if text == state.value:
            return math.nan, state
    if text == "ERR":
        raise InstrumentRefusedError("the meter answered ERR to D?")
    try:
        value = float(text)
    except ValueError:
        raise ReplyError(
            f"D? answers a number, OVER, UNDER or SAT; got {reply!r}"
        ) from None
    if not math.isfinite(value):
        raise ReplyError(f"D? answered {reply!r}, not a finite number")
    return value, MeterState.OK


def parse_int(reply: str, allowed: range) -> int:
    """Parse a setting's reply (`W?`, `R?`, ...).

    Raises:
        ReplyError: If it is not an integer within `allowed`.
    """
    text = reply.strip()
    if not (text.isascii() and text.isdigit()) or int(text) not in allowed:
        raise ReplyError(
            f"expected an integer in {allowed.start}..{allowed.stop - 1}, got {reply!r}"
        )
    return int(text)


class Newport1830C(StandardReadable):
    """A 1830-C power meter reading watts.

    `trigger()` takes one reading (`D?`); `read()` then gives `power` (W,
    NaN when the meter reports a state instead) and `state` (`OK`, `OVER`,
    `UNDER`, `SAT`), so a saturated point shows up in the data instead of
    stopping the scan. At connect the meter's echo is turned off and its
    units set to watts.

    Args:
        port: Serial port (9600 baud, 8N1, LF).
        timeout: Seconds to wait for a reply.
        name: The device name.
    """

    def __init__(self, port: str, timeout: float = 0.5, name: str = ""):
        self.link = SerialLink(
            port,
            SerialSettings(baudrate=9600),
            LineSettings(
                write_termination="\n",
                read_termination="\n",
                timeout=timeout,
                answers_every_query=True,  # `ERR` to what it does not know
            ),
        )
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.power, self._set_power = soft_signal_r_and_setter(
                float, math.nan, units="W"
            )
        with self.add_children_as_readables():
            self.state, self._set_state = soft_signal_r_and_setter(MeterState)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.wavelength = soft_signal_rw(
                int,
                units="nm",
                getter=self._get_wavelength,
                setter=self._set_wavelength,
            )
            self.attenuator = soft_signal_rw(
                bool, getter=self._get_attenuator, setter=self._put_attenuator
            )
            self.filter = soft_signal_rw(
                MeterFilter, getter=self._get_filter, setter=self._put_filter
            )
            self.range = soft_signal_rw(
                int, getter=self._get_range, setter=self._put_range
            )
        super().__init__(name=name, connector=LinkConnector(self.link, self._handshake))

    async def _handshake(self) -> None:
        self.link.label = self.name
        await self.link.send("E0")  # the meter echoes commands at power-up
        await self.link.send("U1")  # watts
        reply = await self._reply_past_echoes("W?", echoes={"E0", "U1", "W?"})
        try:
            wavelength = parse_int(reply, range(0, 10**6))
        except ReplyError as exc:
            raise ReplyError(f"{self.name}: W? {exc}") from None
        if not WAVELENGTH_RANGE[0] <= wavelength <= WAVELENGTH_RANGE[1]:
            raise ReplyError(f"{self.name}: W? = {wavelength}: not a 1830-C")

    async def _reply_past_echoes(self, command: str, echoes: set[str]) -> str:
        """Query, skipping the echoes of commands sent while echo was still on.

        The echo of `E0` comes whenever the meter gets to it (late on a busy
        computer), so it is read and skipped rather than waited out.
        """
        async with self.link.lock:
            await self.link.write(command)
            for _ in range(len(echoes) + 1):
                line = await self.link.read_line(command=command)
                if line.strip() not in echoes:
                    return line
        raise ReplyError(f"{self.name}: {command} got only echoes")

    async def _query_int(self, command: str, allowed: range) -> int:
        reply = await query_retrying(self.link, command)
        try:
            return parse_int(reply, allowed)
        except ReplyError as exc:
            raise ReplyError(f"{self.name}: {command} {exc}") from None

    async def _set_checked(
        self, command: str, query: str, allowed: range, value: int, what: str
    ) -> None:
        await self.link.send(command)
        got = await self._query_int(query, allowed)
        if got != value:
            raise InstrumentRefusedError(
                f"{self.name}: {what} {value} did not take (sent {command!r}, the "
                "meter "
                f"reports {got})"
            )

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Take one reading."""
        reply = await query_retrying(self.link, "D?")
        try:
            power, state = parse_reading(reply)
        except (ReplyError, InstrumentRefusedError) as exc:
            raise type(exc)(f"{self.name}: {exc}") from None
        self._set_power(power)
        self._set_state(state)
        if state is not MeterState.OK:
            self.log.warning("%s reads %s", self.name, state.value)

    async def _get_wavelength(self) -> int:
        return await self._query_int("W?", range(0, 10000))

    async def _set_wavelength(self, nm: int | None) -> None:
        nm = int(nm or 0)
        low, high = WAVELENGTH_RANGE
        if not low <= nm <= high:
            raise ValueError(
                f"{self.name}: wavelength {nm} nm is outside {low}-{high} nm, the "
                "range of the silicon detector"
            )
        await self._set_checked(f"W{nm:04d}", "W?", range(0, 10000), nm, "wavelength")

    async def _get_attenuator(self) -> bool:
        return bool(await self._query_int("A?", range(0, 2)))

    async def _put_attenuator(self, on: bool | None) -> None:
        value = int(bool(on))
        await self._set_checked(f"A{value}", "A?", range(0, 2), value, "attenuator")

    async def _get_filter(self) -> MeterFilter:
        code = str(await self._query_int("F?", range(1, 4)))
        return next(f for f, c in _FILTER_CODES.items() if c == code)

    async def _put_filter(self, value: MeterFilter | None) -> None:
        code = _FILTER_CODES[MeterFilter(value or MeterFilter.FAST)]
        await self._set_checked(f"F{code}", "F?", range(1, 4), int(code), "filter")

    async def _get_range(self) -> int:
        return await self._query_int("R?", range(0, 9))

    async def _put_range(self, value: int | None) -> None:
        value = int(value or 0)
        if not 0 <= value <= 8:
            raise ValueError(f"{self.name}: range {value}: use 0 (auto) to 8")
        await self._set_checked(f"R{value}", "R?", range(0, 9), value, "range")

    async def disconnect(self) -> None:
        """Close the port."""
        await self.link.close()
