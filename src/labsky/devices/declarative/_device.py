"""An ophyd-async device built from a command table."""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ophyd_async.core import (
    MovableLogic,
    SignalR,
    SoftSignalBackend,
    StandardMovable,
    StandardReadable,
    StrictEnum,
    TimeoutCalculator,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.declarative._table import (
    InstrumentTable,
    SignalTable,
    Step,
    format_command,
    parse_reply,
)
from labsky.devices.link_device import LinkConnector
from labsky.transports import (
    InstrumentRefusedError,
    InstrumentTimeoutError,
    Link,
    ReplyError,
)

_FORMATS = {
    "hinted": Format.HINTED_UNCACHED_SIGNAL,
    "normal": Format.UNCACHED_SIGNAL,
    "config": Format.CONFIG_SIGNAL,
}
_TYPES: dict[str, type] = {"float": float, "int": int, "bool": bool, "str": str}


def enum_type(name: str, choices: dict[str, str]) -> type[StrictEnum]:
    """A StrictEnum whose values are a signal's choices."""
    members = [(re.sub(r"\W", "_", value).upper() or "_", value) for value in choices]
    return StrictEnum(name, members)  # type: ignore[return-value]


class DeclarativeInstrument(StandardReadable):
    """An instrument whose signals come from a command table.

    Each signal of the table becomes a typed signal attribute: read-only
    when it has only a query, settable when it has a set command (limits,
    choices and read-back verification checked before the set completes).
    Readings query the instrument every time, so they are never stale.

    Args:
        table: The command table.
        link: The link to the instrument.
        name: The device name.
    """

    def __init__(self, table: InstrumentTable, link: Link, name: str = ""):
        self.table = table
        self.link = link
        self.specs = table.signals
        for signal_name, spec in table.signals.items():
            if spec.read == "none":
                setattr(self, signal_name, self._signal(signal_name, spec))
            else:
                with self.add_children_as_readables(self._format(signal_name, spec)):
                    setattr(self, signal_name, self._signal(signal_name, spec))
        super().__init__(name=name, connector=LinkConnector(link, self._handshake))

    def _format(self, signal_name: str, spec: SignalTable) -> Format:
        move = self.table.move
        if move is not None and signal_name == (move.readback or move.signal):
            return Format.HINTED_UNCACHED_SIGNAL  # the movable's readback
        return _FORMATS[spec.read]

    def _datatype(self, signal_name: str, spec: SignalTable) -> type:
        if spec.type == "enum":
            assert spec.choices is not None
            return enum_type(f"{signal_name.title()}Choice", spec.choices)
        return _TYPES[spec.type]

    def _signal(self, signal_name: str, spec: SignalTable) -> Any:
        datatype = self._datatype(signal_name, spec)

        async def getter() -> Any:
            return await self.query(signal_name)

        async def setter(value: Any) -> None:
            await self.put(signal_name, value)

        if spec.set is None:
            return SignalR(
                SoftSignalBackend(
                    datatype, units=spec.units, precision=spec.precision, getter=getter
                )
            )
        return soft_signal_rw(
            datatype,
            units=spec.units,
            precision=spec.precision,
            getter=getter if spec.query is not None else None,
            setter=setter,
        )

    async def _handshake(self) -> None:
        self.link.label = self.name
        for index, step in enumerate(self.table.init):
            await self._step(step, f"init[{index}]")
        if self.table.identify is not None:
            await self._step(self.table.identify, "identify")

    async def _step(self, step: Step, where: str) -> None:
        if step.send is not None:
            await self.link.send(step.send)
        else:
            assert step.query is not None
            reply = await self.link.query(step.query)
            if step.expect is not None and not re.search(step.expect, reply):
                raise ReplyError(
                    f"{self.name}: {where}: {step.query!r} answered {reply!r}, not "
                    f"{step.expect!r}; is {self.link.address} a "
                    f"{self.table.instrument}?"
                )
        if step.wait:
            await asyncio.sleep(step.wait)
        if step.discard:
            discard = getattr(self.link, "discard_input", None)
            if discard is not None:
                discard()

    async def query(self, signal_name: str) -> Any:
        """Ask the instrument for a signal's value."""
        spec = self.specs[signal_name]
        assert spec.query is not None
        reply = await self._ask(spec.query, spec.timeout, spec.retries)
        self._raise_for_error(spec.query, reply)
        try:
            return parse_reply(reply, spec)
        except ReplyError as exc:
            raise ReplyError(f"{self.name}.{signal_name}: {exc}") from None

    async def _ask(self, command: str, timeout: float | None, retries: int) -> str:
        for attempt in range(retries):
            try:
                return await self.link.query(command, timeout)
            except InstrumentTimeoutError:
                self.log.info(
                    "no reply to %r (attempt %d), asking again", command, attempt
                )
        return await self.link.query(command, timeout)

    def _raise_for_error(self, command: str, reply: str) -> None:
        for pattern in self.table.errors:
            if re.search(pattern, reply):
                raise InstrumentRefusedError(
                    f"{self.name}: {command!r} failed: the instrument answered "
                    f"{reply!r}"
                )

    def check_limits(self, signal_name: str, value: Any) -> None:
        """Refuse a value outside a signal's limits (before anything is sent)."""
        spec = self.specs[signal_name]
        if spec.limits is None:
            return
        low, high = spec.limits
        if not (isinstance(value, int | float) and low <= value <= high):
            raise ValueError(
                f"{self.name}.{signal_name}: {value!r} {spec.units or ''} is outside "
                f"the limits [{low:g}, {high:g}] of the {self.table.instrument}"
            )

    async def put(self, signal_name: str, value: Any) -> None:
        """Set a signal: check limits, send, and verify if the table says so."""
        spec = self.specs[signal_name]
        assert spec.set is not None
        self.check_limits(signal_name, value)
        await self.link.send(format_command(spec.set, value, spec))
        if spec.verify:
            got = await self.query(signal_name)
            same = (
                math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9)
                if spec.type in ("float", "int")
                else str(got) == str(getattr(value, "value", value))
            )
            if not same:
                raise InstrumentRefusedError(
                    f"{self.name}.{signal_name}: set to {value!r} but the instrument "
                    f"reports {got!r}"
                )

    async def disconnect(self) -> None:
        """Close the link."""
        await self.link.close()


@dataclass
class DeclarativeMove(MovableLogic[float]):
    """A move ends when the readback is within tolerance, or a done query says so."""

    instrument: DeclarativeMovable

    async def check_move(self, new_position: float) -> None:
        """Refuse targets outside the signal's limits."""
        move = self.instrument.table.move
        assert move is not None
        self.instrument.check_limits(move.signal, new_position)

    async def calculate_timeout(
        self, old_position: float, new_position: float
    ) -> float:
        """The table's move timeout."""
        move = self.instrument.table.move
        assert move is not None
        return move.timeout

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:
        """Set the signal, then poll until arrived."""
        instrument = self.instrument
        move = instrument.table.move
        assert move is not None
        await self.setpoint.set(new_position)
        deadline = time.monotonic() + (timeout() or move.timeout)
        while not await self._arrived(new_position):
            if time.monotonic() > deadline:
                raise InstrumentTimeoutError(
                    f"{instrument.name}: did not reach {new_position:g} within "
                    f"{move.timeout:g} s"
                )
            await asyncio.sleep(move.poll)

    async def _arrived(self, target: float) -> bool:
        instrument = self.instrument
        move = instrument.table.move
        assert move is not None
        if move.done is not None:
            assert move.done.query is not None
            reply = await instrument.link.query(move.done.query)
            return re.search(move.done.expect or ".", reply) is not None
        position = await instrument.query(move.readback or move.signal)
        return abs(position - target) <= move.tolerance


class DeclarativeMovable(DeclarativeInstrument, StandardMovable[float]):
    """A declarative instrument with a movable (`set()` waits for arrival)."""

    @cached_property
    def movable_logic(self) -> DeclarativeMove:
        """How it moves."""
        move = self.table.move
        assert move is not None
        readback = getattr(self, move.readback or move.signal)
        return DeclarativeMove(
            setpoint=getattr(self, move.signal), readback=readback, instrument=self
        )


def build_instrument(table: InstrumentTable, link: Link) -> DeclarativeInstrument:
    """The device for a table: movable if the table has a `move` section."""
    cls = DeclarativeMovable if table.move is not None else DeclarativeInstrument
    return cls(table, link)
