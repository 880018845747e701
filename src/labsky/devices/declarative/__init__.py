"""Instruments declared in YAML command tables: kinds `serial` and `scpi`.

A lab adds an instrument without Python: a command table in
`devices/instruments/` (see `InstrumentTable`) and a declaration naming it::

    chiller:
      kind: serial
      params: {port: /dev/ttyUSB3, table: instruments/chiller.yaml}

The table path is relative to the declaring file. It is loaded and checked
when the declarations are, so a mistake in it fails at `labsky check` with
the table's file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labsky.devices.declarative._device import (
    DeclarativeInstrument,
    DeclarativeMovable,
    build_instrument,
)
from labsky.devices.declarative._table import (
    InstrumentTable,
    SignalTable,
    format_command,
    load_table,
    parse_reply,
)
from labsky.kinds import DeviceKind
from labsky.transports import SerialLink, make_link


def _resolve(path: Path, info: ValidationInfo) -> Path:
    if path.is_absolute():
        return path
    base = (info.context or {}).get("base_dir")
    if base is None:
        raise ValueError(
            f"{path} is relative and there is no declaring file to resolve it"
        )
    return (Path(base) / path).resolve()


class _TableParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: Path = Field(
        description="The command table (YAML), relative to the declaring file."
    )
    timeout: float | None = Field(
        default=None, gt=0, description="Override the table's reply timeout."
    )
    _table: InstrumentTable | None = PrivateAttr(None)

    @field_validator("table")
    @classmethod
    def _absolute(cls, path: Path, info: ValidationInfo) -> Path:
        return _resolve(path, info)

    @model_validator(mode="after")
    def _load(self) -> Any:
        from labsky.config import ConfigError

        try:
            self._table = load_table(self.table)
        except FileNotFoundError:
            raise ValueError(f"no command table at {self.table}") from None
        except ConfigError as exc:
            raise ValueError(f"the command table is wrong:\n{exc}") from None
        return self

    @property
    def command_table(self) -> InstrumentTable:
        """The loaded table."""
        assert self._table is not None
        return self._table

    def line(self) -> Any:
        """The table's framing, with the timeout override."""
        line = self.command_table.line
        if self.timeout is not None:
            line = line.model_copy(update={"timeout": self.timeout})
        return line.settings()


class SerialInstrumentParams(_TableParams):
    """Parameters of an instrument on a serial port, from a command table."""

    port: str = Field(
        description="Serial port or pyserial URL (socket://host:port); ${sim.NAME} "
        "for a simulator."
    )


class ScpiInstrumentParams(_TableParams):
    """Parameters of a SCPI instrument reached through VISA or TCP."""

    resource: str = Field(
        description="VISA resource (TCPIP::host::5025::SOCKET, GPIB0::12::INSTR, "
        "ASRL1::INSTR) or tcp://host:port."
    )
    visa_library: str = Field(
        default="@py",
        description="pyvisa backend: @py, @ivi, or path/to/sim.yaml@sim for "
        "pyvisa-sim (path relative to the declaring file).",
    )

    @field_validator("visa_library")
    @classmethod
    def _sim_path(cls, library: str, info: ValidationInfo) -> str:
        path, _, backend = library.rpartition("@")
        if path and backend == "sim":
            return f"{_resolve(Path(path), info)}@sim"
        return library


def serial_instrument(params: SerialInstrumentParams) -> DeclarativeInstrument:
    """Build an instrument on a serial port from its command table."""
    table = params.command_table
    return build_instrument(
        table, SerialLink(params.port, table.serial.settings(), params.line())
    )


def scpi_instrument(params: ScpiInstrumentParams) -> DeclarativeInstrument:
    """Build a SCPI instrument (VISA or TCP) from its command table."""
    table = params.command_table
    link = make_link(
        params.resource, table.serial.settings(), params.line(), params.visa_library
    )
    return build_instrument(table, link)


KINDS = (
    DeviceKind(
        "serial",
        serial_instrument,
        SerialInstrumentParams,
        summary="Any serial instrument described by a YAML command table.",
    ),
    DeviceKind(
        "scpi",
        scpi_instrument,
        ScpiInstrumentParams,
        summary="Any SCPI instrument (VISA or TCP) described by a YAML command table.",
    ),
)

__all__ = [
    "KINDS",
    "DeclarativeInstrument",
    "DeclarativeMovable",
    "InstrumentTable",
    "ScpiInstrumentParams",
    "SerialInstrumentParams",
    "SignalTable",
    "build_instrument",
    "format_command",
    "load_table",
    "parse_reply",
]
