"""SCPI parsing as the Red Pitaya's server does it (its fork of scpi-parser).

Headers are case-insensitive and match their long or short form (the
upper-case letters of the pattern: `ACQ:TRig` matches `acq:tr` and
`ACQ:TRIG`); `#` in a pattern takes a numeric suffix (`SOUR#` matches
`SOUR2`, default 1); `[:NODE]` is optional. A message is cut into commands
at `;`; parameters follow the header after a space, separated by commas.

The vendor registers many nodes in their short form only (`SOUR#:FREQ:FIX`),
so its parser refuses `SOURce1:FREQuency:FIXed`, which SCPI-1999 allows. With
`long_forms` (the default) those nodes also take the standard's long form
(`LONG_FORMS`); without it the simulator is as strict as the board.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labsky.errors import LabskyError

#: Numbers with an optional SI unit (`0.125 V`, `10mV`, `1.5 MHz`).
_NUMBER = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$"
)
_UNITS = {
    "": 1.0,
    "V": 1.0,
    "MV": 1e-3,
    "UV": 1e-6,
    "HZ": 1.0,
    "KHZ": 1e3,
    "MHZ": 1e6,  # SCPI: MHZ is mega
    "S": 1.0,
    "MS": 1e-3,
    "US": 1e-6,
    "NS": 1e-9,
}


class ScpiError(LabskyError):
    """A command failed: the code and text pushed on the error queue.

    `also` are further errors the same failure queues (the parser's own
    entry for a missing parameter beside the server's).
    """

    def __init__(self, code: int, text: str, also: tuple[ScpiError, ...] = ()):
        super().__init__(f"{code},{text}")
        self.code = code
        self.text = text
        self.also = also


def undefined_header() -> ScpiError:
    """Error -113."""
    return ScpiError(-113, "Undefined header")


def missing_parameter() -> ScpiError:
    """Error -109."""
    return ScpiError(-109, "Missing parameter")


def missing_value(header: str, text: str = "Missing first parameter.") -> ScpiError:
    """A mandatory parameter is absent: the server's 8891 and the parser's -109."""
    return ScpiError(9000 - 109, f"*{header} {text}", also=(missing_parameter(),))


def data_type_error() -> ScpiError:
    """Error -104 (a parameter is not a number)."""
    return ScpiError(-104, "Data type error")


def illegal_value() -> ScpiError:
    """Error -224 (a mnemonic that is not one of the choices)."""
    return ScpiError(-224, "Illegal parameter value")


def execution_error() -> ScpiError:
    """Error -200 (a command that failed without saying why)."""
    return ScpiError(-200, "Execution error")


#: `rp_GetError` texts of the Red Pitaya API codes the simulator uses.
RP_TEXTS = {
    6: "Value out of range.",
    11: "Wrong pin.",
    24: "Command not supported",
}
RP_EOOR = 6
RP_NOTS = 24


def rp_error(
    command: str, what: str, critical: bool = True, rp_code: int = RP_EOOR
) -> ScpiError:
    """A Red Pitaya API failure: `9500 + code` (critical) or `9000 + code`."""
    code = (9500 if critical else 9000) + rp_code
    return ScpiError(
        code, f"*{command} Failed to {what}: {RP_TEXTS.get(rp_code, 'Error.')}"
    )


def not_supported(command: str, what: str) -> ScpiError:
    """What the board's API answers for hardware this model lacks (RP_NOTS)."""
    return rp_error(command, what, rp_code=RP_NOTS)


def server_error(command: str, code: int, text: str) -> ScpiError:
    """An error the server logs itself (`SCPI_LOG_ERR`): code 9000 + `code`.

    The vendor's server adds its base code 9000 to the standard code it
    logs, so a missing parameter it reports itself reads 8891 (9000 - 109).
    """
    return ScpiError(9000 + code, f"*{command} {text}")


#: SCPI-1999 long forms of nodes the vendor registers abbreviated (its
#: pattern has no lower-case letters, so only the abbreviation matches).
LONG_FORMS: dict[str, tuple[str, ...]] = {
    "ACQ": ("ACQUIRE",),
    "BUF": ("BUFFER",),
    "BURS": ("BURST",),
    "COUP": ("COUPLING",),
    "DCYC": ("DCYCLE",),
    "DEC": ("DECIMATION",),
    "DIG": ("DIGITAL",),
    "DIR": ("DIRECTION",),
    "EXT": ("EXTERNAL",),
    "FIX": ("FIXED",),
    "FORMAT": ("FORM",),  # the standard's short form of FORMat
    "FREQ": ("FREQUENCY",),
    "FUNC": ("FUNCTION",),
    "HYST": ("HYSTERESIS",),
    "INT": ("INTERNAL",),
    "LEV": ("LEVEL",),
    "NCYC": ("NCYCLES",),
    "OFFS": ("OFFSET",),
    "OUTPUT": ("OUTP",),  # the standard's short form of OUTPut
    "PER": ("PERIOD",),
    "PHAS": ("PHASE",),
    "SOUR": ("SOURCE",),
    "STAT": ("STATE", "STATUS"),
    "TRAC": ("TRACE",),
    "VOLT": ("VOLTAGE",),
}


@dataclass(frozen=True)
class Node:
    """One level of a header pattern."""

    long: str
    short: str
    suffix: bool
    optional: bool
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every spelling of the node (upper case, without a suffix)."""
        return (self.long, self.short, *self.aliases)

    def suffix_of(self, token: str) -> int | None:
        """The numeric suffix if `token` (upper case) names this node, else None.

        Digits inside a name belong to it (`I2C`); only a node with `#`
        takes trailing digits as its suffix (default 1).
        """
        for name in self.names():
            if token == name:
                return 1
            if self.suffix and token.startswith(name):
                digits = token[len(name) :]
                if digits.isdigit() and digits.isascii():
                    return int(digits)
        return None


def compile_pattern(
    pattern: str, long_forms: bool = True
) -> tuple[tuple[Node, ...], bool]:
    """Compile `SYSTem:ERRor[:NEXT]?` into its nodes and whether it is a query."""
    query = pattern.endswith("?")
    body = pattern.rstrip("?")
    nodes = []
    for match in re.finditer(r"\[:?([A-Za-z0-9*#_]+)\]|([A-Za-z0-9*#_]+)", body):
        word = match.group(1) or match.group(2)
        suffix = word.endswith("#")
        word = word.rstrip("#")
        short = "".join(c for c in word if not c.islower()) or word.upper()
        aliases = LONG_FORMS.get(word, ()) if long_forms else ()
        nodes.append(
            Node(word.upper(), short, suffix, match.group(1) is not None, aliases)
        )
    return tuple(nodes), query


def _match(nodes: tuple[Node, ...], tokens: list[str], numbers: list[int]) -> bool:
    if not nodes:
        return not tokens
    node, rest = nodes[0], nodes[1:]
    if tokens:
        number = node.suffix_of(tokens[0])
        if number is not None:
            numbers.append(number)
            if _match(rest, tokens[1:], numbers):
                return True
            numbers.pop()
    return node.optional and _match(rest, tokens, numbers)


Handler = Callable[..., Any]


@dataclass(frozen=True)
class Command:
    """A pattern and what it does."""

    pattern: str
    nodes: tuple[Node, ...]
    query: bool
    handler: Handler

    def match(self, header: str) -> list[int] | None:
        """The numeric suffixes (one per node) if `header` is this command."""
        query = header.endswith("?")
        if query != self.query:
            return None
        tokens = header.rstrip("?").lstrip(":").upper().split(":")
        numbers: list[int] = []
        if _match(self.nodes, tokens, numbers):
            return numbers
        return None


class CommandSet:
    """The commands an instrument understands.

    Args:
        long_forms: Also accept the SCPI long forms of abbreviated nodes.
    """

    def __init__(self, long_forms: bool = True) -> None:
        self.commands: list[Command] = []
        self.long_forms = long_forms

    def add(self, pattern: str, handler: Handler) -> None:
        """Register a pattern."""
        nodes, query = compile_pattern(pattern, self.long_forms)
        self.commands.append(Command(pattern, nodes, query, handler))

    def find(self, header: str) -> tuple[Command, list[int]]:
        """The command matching `header` and its suffixes.

        Raises:
            ScpiError: -113 when nothing matches.
        """
        for command in self.commands:
            numbers = command.match(header)
            if numbers is not None:
                return command, numbers
        raise undefined_header()


def split_message(message: str) -> list[tuple[str, list[str]]]:
    """Cut a message into (header, parameters) pairs."""
    commands = []
    for part in message.split(";"):
        part = part.strip()
        if not part:
            continue
        header, _, rest = part.partition(" ")
        params = [p.strip() for p in rest.split(",")] if rest.strip() else []
        commands.append((header.strip(), params))
    return commands


def number(text: str) -> float:
    """A numeric parameter, with an optional unit.

    Raises:
        ScpiError: -104 if it is not a number.
    """
    match = _NUMBER.match(text)
    if match is None or match.group(2).upper() not in _UNITS:
        raise data_type_error()
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def integer(text: str) -> int:
    """An integer parameter.

    Raises:
        ScpiError: -104 if it is not an integer.
    """
    value = number(text)
    if value != int(value):
        raise data_type_error()
    return int(value)


def choice(text: str, choices: tuple[str, ...]) -> str:
    """A mnemonic parameter, upper-cased.

    Raises:
        ScpiError: -224 if it is not one of `choices`.
    """
    value = text.strip().upper()
    if value not in choices:
        raise illegal_value()
    return value


def on_off(text: str) -> bool:
    """`ON`/`OFF` (or 1/0)."""
    return choice(text, ("ON", "OFF", "1", "0")) in ("ON", "1")


def fmt(value: float) -> str:
    """A float as the server prints it (C `%g`)."""
    return f"{value:g}"
