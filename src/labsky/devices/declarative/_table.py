"""The command table of a declarative instrument: YAML in `devices/instruments/`.

A table says how to talk to an instrument (serial settings, terminators,
identification, an init sequence) and which signals it has: for each, the
query that reads it, the command that sets it, how to parse the reply, its
type, units, limits or choices, and where it goes in a reading. One signal
may be the instrument's movable (a wavelength, a position): `set()` then
waits until the instrument reports it has arrived.

Reply parsing lives here too (`parse_reply`), as plain functions, so they are
tested with arbitrary input: they return a value or raise `ReplyError`.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labsky.transports import LineSettings, ReplyError, SerialSettings

SignalType = Literal["float", "int", "bool", "str", "enum"]
ReadAs = Literal["hinted", "normal", "config", "none"]


def _regex(pattern: str) -> str:
    """Check that a regular expression compiles (as a validation error).

    One that Python warns about (`[[` is a "possible nested set", whose
    meaning a future Python changes) is refused too: escape the bracket.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(pattern)
    except (re.error, Warning) as exc:
        raise ValueError(
            f"bad regular expression {pattern!r}: {exc} (a literal [ ] ( ) . * + "
            "? | ^ $ or \\ is written with a backslash before it)"
        ) from None
    return pattern


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TRUE = {"1", "on", "true", "yes"}
_FALSE = {"0", "off", "false", "no"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SerialTable(_Strict):
    """Serial line settings (for the `serial` kind)."""

    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = Field(default=1, description="1, 1.5 or 2.")
    xonxoff: bool = False
    rtscts: bool = False

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stop bits are 1, 1.5 or 2")
        return value

    def settings(self) -> SerialSettings:
        """As transport settings."""
        return SerialSettings(**self.model_dump())


class LineTable(_Strict):
    """Framing of commands and replies."""

    write_termination: str = "\r\n"
    read_termination: str = "\r\n"
    encoding: str = "ascii"
    timeout: float = Field(default=1.0, gt=0, description="Default reply timeout, s.")
    answers_every_query: bool = Field(
        default=False,
        description=(
            "The instrument answers every query, if late (ERR to what it does "
            "not know, as the 1830-C); a timed-out query's late reply is then "
            "waited for and dropped before the next command. Leave false for "
            "SCPI instruments, which refuse a query by not answering."
        ),
    )

    def settings(self) -> LineSettings:
        """As transport settings."""
        return LineSettings(**self.model_dump())


class Step(_Strict):
    """One step of the identification or init sequence."""

    send: str | None = Field(default=None, description="A command without a reply.")
    query: str | None = Field(
        default=None, description="A command whose reply is checked."
    )
    expect: str | None = Field(
        default=None,
        description="Regular expression the reply must match (with `query`).",
    )
    wait: float = Field(default=0.0, ge=0, description="Seconds to wait afterwards.")
    discard: bool = Field(
        default=False, description="Drop any reply bytes after the wait."
    )

    @model_validator(mode="after")
    def _one_command(self) -> Step:
        if (self.send is None) == (self.query is None):
            raise ValueError("give exactly one of `send` or `query`")
        if self.expect is not None:
            _regex(self.expect)
        return self


class Parse(_Strict):
    """How to turn a reply into a value."""

    regex: str | None = Field(
        default=None,
        description="Regular expression; the value is the group named `value` "
        "(else group 1, else the whole match). Default: the stripped reply.",
    )
    scale: float = Field(
        default=1.0, description="Multiply numbers by this (unit conversion)."
    )
    states: dict[str, float | None] = Field(
        default_factory=dict,
        description="Replies that are states, not values (`OVER: null` reads NaN).",
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _regex(value)


class SignalTable(_Strict):
    """One signal of the instrument."""

    type: SignalType = "float"
    query: str | None = Field(default=None, description="Command that reads it.")
    set: str | None = Field(
        default=None,
        description="Command that sets it; `{value}` is replaced (format specs "
        "allowed).",
    )
    parse: Parse = Field(default_factory=Parse)
    units: str | None = None
    precision: int | None = None
    limits: tuple[float, float] | None = Field(
        default=None, description="Allowed [low, high]."
    )
    choices: dict[str, str] | None = Field(
        default=None, description="enum: value -> the text the instrument uses."
    )
    read: ReadAs = Field(
        default="normal", description="hinted, normal, config or none."
    )
    verify: bool = Field(
        default=False, description="After a set, read back and compare."
    )
    timeout: float | None = Field(default=None, gt=0, description="Reply timeout, s.")
    retries: int = Field(
        default=1, ge=0, le=10, description="Queries asked again after a timeout."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SignalTable:
        if self.query is None and self.set is None:
            raise ValueError("a signal needs a `query`, a `set`, or both")
        if self.type == "enum" and not self.choices:
            raise ValueError("an enum signal needs `choices` (value: instrument text)")
        if self.type != "enum" and self.choices:
            raise ValueError("`choices` are for `type: enum`")
        if self.limits is not None and self.limits[0] > self.limits[1]:
            raise ValueError("limits are [low, high]")
        if self.verify and self.query is None:
            raise ValueError("`verify` needs a `query` to read the value back")
        if self.read != "none" and self.query is None:
            raise ValueError(
                "a signal in readings needs a `query`; or write `read: none`"
            )
        return self


class MoveTable(_Strict):
    """Which signal is the instrument's movable and how a move ends."""

    signal: str = Field(description="The settable signal that moves.")
    readback: str | None = Field(
        default=None, description="The signal reporting where it is."
    )
    tolerance: float = Field(
        default=0.0, ge=0, description="Arrived when |readback - target| <= this."
    )
    done: Step | None = Field(
        default=None,
        description="A query whose reply matches `expect` when the move ended.",
    )
    poll: float = Field(default=0.1, gt=0, description="Seconds between checks.")
    timeout: float = Field(
        default=60.0, gt=0, description="Longest a move may take, s."
    )


class InstrumentTable(_Strict):
    """A whole command table."""

    instrument: str = Field(description="What the instrument is (shown in messages).")
    serial: SerialTable = Field(default_factory=SerialTable)
    line: LineTable = Field(default_factory=LineTable)
    init: list[Step] = Field(
        default_factory=list, description="Run first at connect: a known state."
    )
    identify: Step | None = Field(
        default=None,
        description="Checked at connect, after `init`: is it the right instrument?",
    )
    errors: list[str] = Field(
        default_factory=list, description="Reply patterns that mean the command failed."
    )
    signals: dict[str, SignalTable]
    move: MoveTable | None = None

    @field_validator("errors")
    @classmethod
    def _patterns(cls, values: list[str]) -> list[str]:
        return [_regex(value) for value in values]

    @field_validator("signals")
    @classmethod
    def _names(cls, signals: dict[str, SignalTable]) -> dict[str, SignalTable]:
        for name in signals:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"signal name {name!r}: use a Python identifier")
        return signals

    @model_validator(mode="after")
    def _movable(self) -> InstrumentTable:
        move = self.move
        if move is None:
            return self
        for role, name in (("signal", move.signal), ("readback", move.readback)):
            if name is not None and name not in self.signals:
                raise ValueError(f"move.{role}: no signal {name!r}")
        if self.signals[move.signal].set is None:
            raise ValueError(f"move.signal: {move.signal!r} has no `set` command")
        if move.signal in ("setpoint",):
            raise ValueError("move.signal: 'setpoint' is reserved")
        return self


def load_table(path: Path) -> InstrumentTable:
    """Load and validate a command table.

    Raises:
        ConfigError: Every problem, with the table's file and line.
    """
    from labsky.config import load_model

    return load_model(path, InstrumentTable)


def parse_reply(reply: str, spec: SignalTable) -> Any:
    """Turn a reply into the signal's value.

    Raises:
        ReplyError: If the reply does not match the signal's format.
    """
    text = reply.strip()
    states = spec.parse.states
    if text in states:
        state = states[text]
        return math.nan if state is None else state
    if spec.parse.regex is not None:
        match = re.search(spec.parse.regex, text)
        if match is None:
            raise ReplyError(f"reply {reply!r} does not match {spec.parse.regex!r}")
        if "value" in match.groupdict():
            text = match.group("value") or ""
        elif match.groups():
            text = match.group(1) or ""
        else:
            text = match.group(0)
    return _convert(text.strip(), reply, spec)


def _convert(text: str, reply: str, spec: SignalTable) -> Any:
    if spec.type in ("float", "int"):
        if not _NUMBER.fullmatch(text):
            raise ReplyError(f"reply {reply!r}: {text!r} is not a number")
        value = float(text) * spec.parse.scale
        if not math.isfinite(value):
            raise ReplyError(f"reply {reply!r}: {text!r} is not a finite number")
        if spec.type == "int":
            if value != int(value):
                raise ReplyError(f"reply {reply!r}: {text!r} is not an integer")
            return int(value)
        return value
    if spec.type == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ReplyError(f"reply {reply!r}: {text!r} is not on/off (1/0)")
    if spec.type == "enum":
        assert spec.choices is not None
        for value, wire in spec.choices.items():
            if text == wire or text.lower() == wire.lower():
                return value
        raise ReplyError(
            f"reply {reply!r}: {text!r} is none of {sorted(spec.choices.values())}"
        )
    return text


def format_command(template: str, value: Any, spec: SignalTable) -> str:
    """Fill a set command with a value (an enum's instrument text, bools as 0/1)."""
    if spec.type == "enum":
        assert spec.choices is not None
        value = spec.choices[str(value.value if hasattr(value, "value") else value)]
    elif spec.type == "bool":
        value = int(bool(value))
    return template.format(value=value)
