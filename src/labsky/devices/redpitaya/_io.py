"""The Red Pitaya's slow analog and digital I/O and its LEDs."""

from __future__ import annotations

from ophyd_async.core import DeviceVector, SignalR, SignalRW, StandardReadable
from ophyd_async.core import StandardReadableFormat as Format

from labsky.devices.redpitaya._access import BoardAccess


class RedPitayaSlowIO(StandardReadable):
    """Slow analog and digital I/O: `ain`, `aout`, `dio_p`, `dio_n`, `led`.

    Analog inputs `ain[0..3]` read 0-3.3 V, outputs `aout[0..3]` set
    0-1.8 V; digital pins `dio_p[k]`, `dio_n[k]` have a `*_direction`; the
    LEDs are `led[0..7]`. A read gives the analog inputs and outputs.

    Args:
        access: How the board is reached.
        name: The device name.
    """

    def __init__(self, access: BoardAccess, name: str = ""):
        with self.add_children_as_readables(Format.UNCACHED_SIGNAL):
            self.ain = DeviceVector[SignalR[float]](
                {k: access.r(f"io.ain{k}") for k in range(4)}
            )
            self.aout = DeviceVector[SignalRW[float]](
                {k: access.rw(f"io.aout{k}") for k in range(4)}
            )
        self.led = DeviceVector({k: access.rw(f"io.led{k}") for k in range(8)})
        self.dio_p = DeviceVector({k: access.rw(f"io.dio{k}_p") for k in range(8)})
        self.dio_n = DeviceVector({k: access.rw(f"io.dio{k}_n") for k in range(8)})
        self.dio_p_direction = DeviceVector(
            {k: access.rw(f"io.dio{k}_p_direction") for k in range(8)}
        )
        self.dio_n_direction = DeviceVector(
            {k: access.rw(f"io.dio{k}_n_direction") for k in range(8)}
        )
        super().__init__(name=name)
