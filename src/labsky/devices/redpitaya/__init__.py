"""Red Pitaya STEMlab 125-14: scope, generators, lock-in, PID and slow I/O.

Declared with kind `redpitaya`, reached either over the board's stock SCPI
server (`address`: `tcp://host:5000`, `host`, or a VISA resource such as
`TCPIP::host::5000::SOCKET`) or through `labsky ioc redpitaya`, which owns
the board and serves it to several processes over Channel Access
(`ioc_prefix`).

Channel Access (aioca and the EPICS libraries, a second or more to import) is
loaded only when a board is reached through its IOC, or when `CaAccess`,
`pack_trace` or `unpack_trace` is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ophyd_async.core import PathProvider
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labsky.devices.redpitaya._access import BoardAccess, ScpiAccess
from labsky.devices.redpitaya._asg import AsgSweep, RedPitayaAsg, SettingMovable
from labsky.devices.redpitaya._board import RedPitaya
from labsky.devices.redpitaya._controller import RedPitayaController
from labsky.devices.redpitaya._io import RedPitayaSlowIO
from labsky.devices.redpitaya._lockin import RedPitayaLockIn, demodulate
from labsky.devices.redpitaya._pid import RedPitayaPid
from labsky.devices.redpitaya._scope import RedPitayaScope, decimation_for
from labsky.devices.redpitaya._scpi import RedPitayaScpi, Trace
from labsky.devices.redpitaya._settings import (
    COMMANDS,
    SETTINGS,
    BurstMode,
    GeneratorTrigger,
    InputGain,
    PidInput,
    PidOutput,
    ScopeMode,
    SweepDirection,
    SweepMode,
    TriggerSource,
    Units,
    Waveform,
)
from labsky.kinds import DeviceKind
from labsky.transports import LineSettings, Link, is_visa_resource, make_link

if TYPE_CHECKING:
    from labsky.devices.redpitaya._ca_access import (
        CaAccess,
        pack_trace,
        unpack_trace,
    )

#: Names served from `_ca_access` on first use, so importing this package
#: does not load Channel Access.
_CHANNEL_ACCESS = ("CaAccess", "pack_trace", "unpack_trace")


def __getattr__(name: str) -> Any:
    if name in _CHANNEL_ACCESS:
        return getattr(import_module("labsky.devices.redpitaya._ca_access"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SCPI_PORT = 5000


def board_address(address: str) -> str:
    """`host`, `host:port` -> `tcp://host:port` (port 5000 by default).

    VISA resources and `tcp://` URLs are returned as they are.
    """
    if is_visa_resource(address) or "://" in address:
        return address
    host, _, port = address.rpartition(":")
    if host and port.isdigit():
        return f"tcp://{host}:{port}"
    return f"tcp://{address}:{SCPI_PORT}"


def board_link(address: str, timeout: float = 2.0, visa_library: str = "@py") -> Link:
    """A link to a board's SCPI server (CR LF both ways)."""
    line = LineSettings(
        write_termination="\r\n", read_termination="\r\n", timeout=timeout
    )
    return make_link(board_address(address), line=line, visa_library=visa_library)


def check_setting(name: str, value: Any) -> Any:
    """Validate one `settings:` entry against the settings table.

    Raises:
        ValueError: Naming the setting and what it takes.
    """
    setting = SETTINGS.get(name)
    if setting is None or not setting.writable:
        writable = sorted(n for n, s in SETTINGS.items() if s.writable)
        raise ValueError(
            f"{name!r} is not a settable Red Pitaya setting; use one of: "
            f"{', '.join(writable)}"
        )
    datatype = setting.datatype
    try:
        if datatype is bool:
            if not isinstance(value, bool):
                raise ValueError
            return value
        if datatype in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError
            return datatype(value)
        return datatype(str(value).upper())
    except ValueError:
        expected = (
            "/".join(m.value for m in datatype)  # type: ignore[attr-defined]
            if isinstance(datatype, type) and hasattr(datatype, "__members__")
            else datatype.__name__
        )
        raise ValueError(f"{name}: {value!r} is not {expected}") from None


class RedPitayaParams(BaseModel):
    """Parameters of a Red Pitaya."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="SCPI server: host, host:port, tcp://host:5000, or a VISA "
        "resource (TCPIP::host::5000::SOCKET); ${sim.NAME} for a simulator.",
    )
    ioc_prefix: str | None = Field(
        default=None,
        description="PV prefix of `labsky ioc redpitaya` (e.g. RP1:), instead of "
        "an address: the IOC owns the board and shares it.",
    )
    timeout: float = Field(
        default=2.0, gt=0, description="Seconds to wait for a reply."
    )
    visa_library: str = Field(default="@py", description="pyvisa backend for VISA.")
    lockin_reference: int = Field(
        default=1, ge=1, le=2, description="Generator the lock-in (iq) uses."
    )
    pid_tolerance: float = Field(
        default=0.02, gt=0, description="How close (V) a PID setpoint move must get."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings applied at connect, by name (asg1.frequency: 1e6, "
        "scope.decimation: 8, pid.p: -0.01, ...).",
    )

    @field_validator("settings")
    @classmethod
    def _check_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {name: check_setting(name, value) for name, value in settings.items()}

    @model_validator(mode="after")
    def _one_way(self) -> RedPitayaParams:
        if (self.address is None) == (self.ioc_prefix is None):
            raise ValueError(
                "give either `address` (this process talks SCPI to the board) or "
                "`ioc_prefix` (through labsky ioc redpitaya), not both or neither"
            )
        if self.ioc_prefix is not None and self.settings:
            raise ValueError(
                "`settings` belong to the board's owner: pass them to the IOC "
                "(labsky ioc redpitaya --set NAME=VALUE)"
            )
        return self


def redpitaya(
    params: RedPitayaParams, path_provider: PathProvider | None = None
) -> RedPitaya:
    """Build a Red Pitaya (SCPI in this process, or through its IOC).

    `path_provider` (the session's) is where the scope writes DEEP traces.
    """
    access: BoardAccess
    if params.ioc_prefix is not None:
        from labsky.devices.redpitaya._ca_access import CaAccess

        access = CaAccess(params.ioc_prefix)
    else:
        assert params.address is not None
        link = board_link(params.address, params.timeout, params.visa_library)
        access = ScpiAccess(RedPitayaController(link))
    return RedPitaya(
        access,
        params.lockin_reference,
        params.pid_tolerance,
        path_provider=path_provider,
    )


async def _configure(device: RedPitaya, params: RedPitayaParams) -> None:
    controller = device.controller
    if controller is not None:
        for name, value in params.settings.items():
            await controller.put(name, value)


KINDS = (
    DeviceKind(
        "redpitaya",
        redpitaya,
        RedPitayaParams,
        summary="Red Pitaya STEMlab 125-14 (SCPI or its IOC): scope, asg1/2, "
        "iq, pid, io.",
        after_connect=_configure,
    ),
)

__all__ = [
    "COMMANDS",
    "KINDS",
    "SETTINGS",
    "AsgSweep",
    "BurstMode",
    "CaAccess",
    "GeneratorTrigger",
    "InputGain",
    "PidInput",
    "PidOutput",
    "RedPitaya",
    "RedPitayaAsg",
    "RedPitayaController",
    "RedPitayaLockIn",
    "RedPitayaParams",
    "RedPitayaPid",
    "RedPitayaScope",
    "RedPitayaScpi",
    "RedPitayaSlowIO",
    "ScopeMode",
    "ScpiAccess",
    "SettingMovable",
    "SweepDirection",
    "SweepMode",
    "Trace",
    "TriggerSource",
    "Units",
    "Waveform",
    "board_address",
    "board_link",
    "check_setting",
    "decimation_for",
    "demodulate",
    "pack_trace",
    "unpack_trace",
]
