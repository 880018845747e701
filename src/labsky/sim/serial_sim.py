"""Base class of simulated serial instruments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from labsky.sim.pty_port import Fault, PtyPort
from labsky.sim.world import World
from labsky.transports.stream import SerialSettings


class SerialSimParams(BaseModel):
    """Settings every simulated serial instrument has."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(
        default=0.005,
        ge=0,
        description="Seconds the instrument takes to start answering.",
    )
    link: Path | None = Field(
        default=None,
        description="Also make this path a symlink to the pty (a stable port name).",
    )
    fault: Fault = Field(default=Fault.NONE, description="Fault active from the start.")


P = TypeVar("P", bound=SerialSimParams)


class SerialSimulator(Generic[P]):
    """A simulated instrument speaking its protocol on a pseudo-terminal.

    Subclasses set `kind`, `Params` and `serial` and implement `handle`, which
    gets each command line and answers with `reply`.

    Args:
        world: The shared physics.
        name: The simulator's name (for messages).
        params: Its settings.
    """

    kind: ClassVar[str] = ""
    Params: ClassVar[type[SerialSimParams]] = SerialSimParams
    reply_termination: ClassVar[str] = "\r\n"
    #: Whether the host must set RTS/CTS exactly as `serial_settings` says.
    checks_rtscts: ClassVar[bool] = True

    def __init__(self, world: World, name: str, params: P):
        self.world = world
        self.name = name
        self.params = params
        self.port = PtyPort(
            self.serial_settings(),
            self.received,
            name,
            params.link,
            check_rtscts=self.checks_rtscts,
        )
        self.port.fault = params.fault
        self._pending = b""
        self.loop: asyncio.AbstractEventLoop | None = None

    def serial_settings(self) -> SerialSettings:
        """The serial settings the instrument expects."""
        return SerialSettings()

    async def start(self) -> str:
        """Open the port on the running loop; return the endpoint drivers open."""
        self.loop = asyncio.get_running_loop()
        self.port.open(self.loop)
        return self.port.endpoint

    @property
    def endpoint(self) -> str:
        """What a driver opens."""
        return self.port.endpoint

    @property
    def fault(self) -> Fault:
        """The fault now active."""
        return self.port.fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        """Set a fault; any other after `DISCONNECT` plugs the instrument back in.

        It comes back on a new pty; a declared `link` then points at it, as
        `/dev/serial/by-id/...` does when a USB adapter is plugged in again.
        """
        if fault is Fault.DISCONNECT:
            self.port.disconnect()
            return
        if self.port.fault is Fault.DISCONNECT and self.loop is not None:
            self.port.open(self.loop)
        self.port.fault = fault

    def close(self) -> None:
        """Close the port."""
        self.port.close()

    def received(self, data: bytes) -> None:
        """Split bytes into command lines (CR, LF or CR LF) and handle each."""
        self._pending += data
        *lines, self._pending = (
            self._pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        )
        for raw in lines:
            line = raw.decode("ascii", errors="replace").strip()
            if line:
                self.handle(line)

    def handle(self, line: str) -> None:
        """Act on one command line."""
        raise NotImplementedError

    def reply(self, text: str, delay: float = 0.0) -> None:
        """Answer after the instrument's latency (plus `delay`)."""
        data = (text + self.reply_termination).encode("ascii")
        self.port.send(data, self.params.latency + delay)
