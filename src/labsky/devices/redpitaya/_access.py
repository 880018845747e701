"""How the devices reach a board: directly over SCPI, or through the IOC.

A `BoardAccess` makes the signals, commands and the acquirer of the Red
Pitaya devices from the settings table:

- `ScpiAccess`: soft signals whose getters and setters call a
  `RedPitayaController` in this process (one process owns the board);
- `CaAccess` (`_ca_access.py`): ophyd-async Channel Access signals on the
  PVs of `labsky ioc redpitaya`, which owns the board for any clients.

The device classes are the same either way.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from ophyd_async.core import (
    Device,
    DeviceConnector,
    SignalR,
    SignalRW,
    SoftCommandBackend,
    SoftSignalBackend,
    TriggerableCommand,
    soft_signal_rw,
)

from labsky.devices.link_device import LinkConnector
from labsky.devices.redpitaya._controller import RedPitayaController
from labsky.devices.redpitaya._scpi import Trace
from labsky.devices.redpitaya._settings import SETTINGS


class Acquirer(Device):
    """Takes one trace of both inputs with the board's current settings."""

    async def acquire(self) -> Trace:
        """Acquire and return a trace."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Abandon an acquisition."""


class BoardAccess(Protocol):
    """What the Red Pitaya devices need to make their signals."""

    def rw(self, name: str) -> SignalRW[Any]:
        """A settable signal for a setting of the table."""
        ...

    def r(self, name: str) -> SignalR[Any]:
        """A read-only signal (a measurement)."""
        ...

    def command(self, name: str) -> TriggerableCommand:
        """A command (`asg1.start`, `pid.reset_integrator`)."""
        ...

    def acquirer(self) -> Acquirer:
        """The scope's acquisition."""
        ...

    def connector(self) -> DeviceConnector:
        """How the board's top device connects."""
        ...


class _ScpiAcquirer(Acquirer):
    def __init__(self, controller: RedPitayaController, name: str = ""):
        self._controller = controller
        super().__init__(name=name)

    async def acquire(self) -> Trace:
        return await self._controller.acquire()

    async def stop(self) -> None:
        await self._controller.stop_acquisition()


class ScpiAccess:
    """Signals that talk to the board through a controller in this process.

    Args:
        controller: The board's owner.
    """

    def __init__(self, controller: RedPitayaController):
        self.controller = controller

    def rw(self, name: str) -> SignalRW[Any]:
        """A settable signal for a setting of the table."""
        setting = SETTINGS[name]
        controller = self.controller

        async def getter() -> Any:
            return await controller.get(name)

        async def setter(value: Any) -> None:
            await controller.put(name, value)

        return soft_signal_rw(
            setting.datatype, units=setting.units, getter=getter, setter=setter
        )

    def r(self, name: str) -> SignalR[Any]:
        """A read-only signal (a measurement)."""
        setting = SETTINGS[name]
        controller = self.controller

        async def getter() -> Any:
            return await controller.get(name)

        return SignalR(
            SoftSignalBackend(setting.datatype, units=setting.units, getter=getter)
        )

    def command(self, name: str) -> TriggerableCommand:
        """A command (`asg1.start`, `pid.reset_integrator`)."""
        controller = self.controller

        async def run() -> None:
            await controller.execute(name)

        return TriggerableCommand(
            SoftCommandBackend(run, inspect.signature(run, eval_str=True))
        )

    def acquirer(self) -> Acquirer:
        """The scope's acquisition."""
        return _ScpiAcquirer(self.controller)

    def connector(self) -> DeviceConnector:
        """Open the link and greet the board."""
        controller = self.controller

        async def handshake() -> None:
            await controller.handshake()

        return _ControllerConnector(controller, handshake)


class _ControllerConnector(LinkConnector):
    def __init__(self, controller: RedPitayaController, handshake: Any):
        super().__init__(controller.link, handshake)
        self.controller = controller

    async def connect_real(
        self, device: Device, timeout: float, force_reconnect: bool
    ) -> None:
        if device.name:
            self.controller.label = device.name
        await super().connect_real(device, timeout, force_reconnect)
