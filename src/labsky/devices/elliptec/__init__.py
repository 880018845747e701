"""Thorlabs Elliptec mounts (ELL14) on an RS-485 bus, and their kinds."""

from pydantic import BaseModel, ConfigDict, Field

from labsky.devices.elliptec._bus import ElliptecBus, ElliptecInfo, parse_info
from labsky.devices.elliptec._ell14 import Ell14
from labsky.kinds import DeviceKind


class ElliptecBusParams(BaseModel):
    """Parameters of an Elliptec bus."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(
        description="Serial port of the bus adapter, e.g. "
        "/dev/serial/by-id/usb-FTDI_...; "
        "${sim.NAME} for a simulator."
    )
    baudrate: int = Field(
        default=9600, description="Baud rate (9600 unless reconfigured)."
    )
    timeout: float = Field(
        default=0.5, gt=0, description="Seconds to wait for a reply."
    )
    max_moving: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Mounts moving at once (the bus supply feeds two).",
    )


class Ell14Params(BaseModel):
    """Parameters of an ELL14 rotation mount."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        pattern=r"^[0-9A-Fa-f]$", description="Address on the bus, one hex digit."
    )
    velocity: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Velocity in percent of full speed, set at connect.",
    )


def elliptec_bus(params: ElliptecBusParams) -> ElliptecBus:
    """Build the bus (opened by the first mount that connects)."""
    return ElliptecBus(
        params.port, params.baudrate, params.timeout, max_moving=params.max_moving
    )


def ell14(params: Ell14Params, bus: ElliptecBus) -> Ell14:
    """Build an ELL14 mount on a declared bus."""
    return Ell14(bus, params.address)


async def _configure_ell14(device: Ell14, params: Ell14Params) -> None:
    if params.velocity is not None:
        await device.velocity.set(params.velocity)


KINDS = (
    DeviceKind(
        "elliptec_bus",
        elliptec_bus,
        ElliptecBusParams,
        summary="RS-485 bus of Thorlabs Elliptec mounts (one serial port).",
    ),
    DeviceKind(
        "ell14",
        ell14,
        Ell14Params,
        summary="Thorlabs ELL14 rotation mount (degrees) on an elliptec_bus.",
        after_connect=_configure_ell14,
    ),
)

__all__ = ["KINDS", "Ell14", "ElliptecBus", "ElliptecInfo", "parse_info"]
