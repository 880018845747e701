"""Spectra-Physics lasers: the MaiTai Ti:sapphire."""

from pydantic import BaseModel, ConfigDict, Field

from labsky.devices.spectra_physics._maitai import (
    MaiTai,
    Shutter,
    parse_quantity,
    parse_status,
)
from labsky.kinds import DeviceKind


class MaiTaiParams(BaseModel):
    """Parameters of a MaiTai laser."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(description="Serial port; ${sim.NAME} for a simulator.")
    baudrate: int = Field(
        default=115200, description="115200 over USB, 9600 over RS-232."
    )
    xonxoff: bool = Field(
        default=False, description="XON/XOFF flow control (RS-232 needs it)."
    )
    min_wavelength: float = Field(default=690.0, description="Shortest wavelength, nm.")
    max_wavelength: float = Field(default=1040.0, description="Longest wavelength, nm.")
    tolerance: float = Field(
        default=1.0, gt=0, description="How close a tuning must come, nm."
    )
    timeout: float = Field(
        default=1.0, gt=0, description="Seconds to wait for a reply."
    )


def maitai(params: MaiTaiParams) -> MaiTai:
    """Build a MaiTai laser."""
    return MaiTai(
        params.port,
        params.baudrate,
        params.xonxoff,
        (params.min_wavelength, params.max_wavelength),
        params.tolerance,
        params.timeout,
    )


KINDS = (
    DeviceKind(
        "maitai",
        maitai,
        MaiTaiParams,
        summary="Spectra-Physics MaiTai laser: wavelength movable, shutter, emission.",
    ),
)

__all__ = ["KINDS", "MaiTai", "Shutter", "parse_quantity", "parse_status"]
