"""Newport instruments: ESP300 motion controller, 1830-C power meter."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from labsky.devices.newport._esp300 import Esp300, Esp300Axis
from labsky.devices.newport._power_meter import (
    MeterFilter,
    MeterState,
    Newport1830C,
    parse_reading,
)
from labsky.kinds import DeviceKind

AxisName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Esp300Params(BaseModel):
    """Parameters of an ESP300 controller."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(
        description="Serial port (19200 8N1, RTS/CTS); ${sim.NAME} for a simulator."
    )
    axes: dict[AxisName, Annotated[int, Field(ge=1, le=3)]] = Field(
        default_factory=lambda: {"x": 1, "y": 2, "z": 3},
        description="Child name -> axis number; `stage.x` in plans.",
    )
    units: str = Field(default="mm", description="Units of the stages.")
    timeout: float = Field(
        default=1.0, gt=0, description="Seconds to wait for a reply."
    )
    velocity: float | None = Field(
        default=None, gt=0, description="Velocity of every axis, set at connect."
    )


class Newport1830cParams(BaseModel):
    """Parameters of a 1830-C power meter."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(
        description="Serial port (9600 8N1, LF); ${sim.NAME} for a simulator."
    )
    timeout: float = Field(
        default=0.5, gt=0, description="Seconds to wait for a reply."
    )
    wavelength: int | None = Field(
        default=None,
        ge=400,
        le=1100,
        description="Detector wavelength (nm) set at connect.",
    )
    attenuator: bool | None = Field(
        default=True,
        description="Insert the OD3 attenuator at connect (needed above 2 mW); "
        "null leaves it.",
    )
    filter: MeterFilter | None = Field(
        default=None, description="Averaging filter set at connect."
    )


def esp300(params: Esp300Params) -> Esp300:
    """Build an ESP300 controller with its axes."""
    return Esp300(params.port, params.axes, params.units, params.timeout)


def newport1830c(params: Newport1830cParams) -> Newport1830C:
    """Build a 1830-C power meter."""
    return Newport1830C(params.port, params.timeout)


async def _configure_esp300(device: Esp300, params: Esp300Params) -> None:
    if params.velocity is not None:
        for axis in device.axes.values():
            await axis.velocity.set(params.velocity)


async def _configure_1830c(device: Newport1830C, params: Newport1830cParams) -> None:
    if params.wavelength is not None:
        await device.wavelength.set(params.wavelength)
    if params.attenuator is not None:
        await device.attenuator.set(params.attenuator)
    if params.filter is not None:
        await device.filter.set(params.filter)


KINDS = (
    DeviceKind(
        "esp300",
        esp300,
        Esp300Params,
        summary="Newport ESP300 motion controller; axes as children (stage.x).",
        after_connect=_configure_esp300,
    ),
    DeviceKind(
        "newport1830c",
        newport1830c,
        Newport1830cParams,
        summary="Newport 1830-C optical power meter (W), trigger then read.",
        after_connect=_configure_1830c,
    ),
)

__all__ = [
    "KINDS",
    "Esp300",
    "Esp300Axis",
    "MeterFilter",
    "MeterState",
    "Newport1830C",
    "parse_reading",
]
