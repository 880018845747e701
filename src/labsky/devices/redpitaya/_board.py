"""The whole board as one device."""

from __future__ import annotations

from typing import Any

from ophyd_async.core import AsyncStatus, Device, PathProvider

from labsky.devices.redpitaya._access import BoardAccess, ScpiAccess
from labsky.devices.redpitaya._asg import RedPitayaAsg
from labsky.devices.redpitaya._io import RedPitayaSlowIO
from labsky.devices.redpitaya._lockin import RedPitayaLockIn
from labsky.devices.redpitaya._pid import RedPitayaPid
from labsky.devices.redpitaya._scope import RedPitayaScope


class RedPitaya(Device):
    """A Red Pitaya STEMlab 125-14: `scope`, `asg1`, `asg2`, `iq`, `pid`, `io`.

    `iq` is a lock-in built from the scope and the reference generator;
    `pid` a software PI loop (the stock SCPI image has neither in the FPGA).
    Whether the board is reached over SCPI from this process or through
    `labsky ioc redpitaya` is up to `access`; the devices are the same.
    `sweep_reset`, `sweep_pause` and `sweep_resume` act on the frequency
    sweeps of both generators (`asg1.sweep`, `asg2.sweep`).

    A plan stages the board, not its parts (bluesky stages the root of
    each device it uses): staging the board stages its scope, which picks
    the data logic of its mode for the run.

    Args:
        access: How the board is reached.
        lockin_reference: Generator the lock-in drives and demodulates at.
        pid_tolerance: How close the PID input must come to a new setpoint, V.
        pid_settle_timeout: Seconds a setpoint move may take.
        path_provider: Where the scope writes DEEP traces.
        name: The device name.
    """

    def __init__(
        self,
        access: BoardAccess,
        lockin_reference: int = 1,
        pid_tolerance: float = 0.02,
        pid_settle_timeout: float = 10.0,
        path_provider: PathProvider | None = None,
        name: str = "",
    ):
        self._access = (access,)
        self.scope = RedPitayaScope(access, path_provider)
        self.asg1 = RedPitayaAsg(access, 1)
        self.asg2 = RedPitayaAsg(access, 2)
        reference = self.asg1 if lockin_reference == 1 else self.asg2
        self.iq = RedPitayaLockIn(self.scope, reference)
        self.pid = RedPitayaPid(access, pid_tolerance, pid_settle_timeout)
        self.io = RedPitayaSlowIO(access)
        self.sweep_reset = access.command("asg.sweep_reset")
        self.sweep_pause = access.command("asg.sweep_pause")
        self.sweep_resume = access.command("asg.sweep_resume")
        super().__init__(name=name, connector=access.connector())

    @AsyncStatus.wrap
    async def stage(self) -> None:
        """Stage the scope (it picks the data logic of its mode)."""
        await self.scope.stage()

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Unstage the scope (a DEEP trace file is closed)."""
        await self.scope.unstage()

    @property
    def controller(self) -> Any:
        """The in-process owner of the board (None through the IOC)."""
        access = self._access[0]
        return access.controller if isinstance(access, ScpiAccess) else None

    async def disconnect(self) -> None:
        """Stop the PID loop and close the link (in-process owner only)."""
        controller = self.controller
        if controller is not None:
            await controller.close()
