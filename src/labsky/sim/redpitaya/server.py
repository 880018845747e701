"""The SCPI server of a simulated Red Pitaya: asyncio TCP, port 5000 by default.

Like the board's `redpitaya_scpi` service: every connection has its own
SCPI context; commands from all connections run one at a time; a command
executes only when its CR LF arrives (a lone LF does nothing); the
replies of one message are joined with `;` and end with CR LF; set
commands and failing queries send nothing. Replies leave after a latency
and at a link bandwidth, in order, so clients see realistic transfer times.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from labsky.sim.pty_port import Fault
from labsky.sim.redpitaya.bench import BenchParams
from labsky.sim.redpitaya.board import Board, Session
from labsky.sim.redpitaya.deep_memory import REGION_SIZE
from labsky.sim.world import World

logger = logging.getLogger(__name__)
MAX_LINE = 1 << 20


class RedPitayaSimParams(BaseModel):
    """Settings of a simulated Red Pitaya (profile `simulation.instruments`)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(
        default=0, ge=0, le=65535, description="TCP port; 0 picks a free one."
    )
    latency: float = Field(
        default=3e-4, ge=0, description="Seconds before a reply starts (board CPU)."
    )
    bandwidth: float | None = Field(
        default=40e6,
        gt=0,
        description="Reply bytes per second (the board's network stack); null: "
        "unlimited.",
    )
    fill_time_scale: float = Field(
        default=1.0,
        ge=0,
        description="Real-time factor of acquisitions (0: buffers fill at once).",
    )
    bench: BenchParams = Field(
        default_factory=lambda: BenchParams(), description="What is cabled to it."
    )
    ext_trigger_line: str | None = Field(
        default="redpitaya",
        description="World trigger line wired to the external trigger (DIO0_P).",
    )
    seed: int = Field(default=1, description="Noise seed.")
    fault: Fault = Field(default=Fault.NONE, description="Fault active from the start.")
    split_trigger: bool = Field(
        default=True,
        description="The FPGA splits the trigger per input (ACQ:SPLIT:TRig). A "
        "STEMlab 125-14 does from OS 2.07-48; false: as on 2.05, where the "
        "split-trigger commands answer 'Command not supported'.",
    )
    deep_memory_size: int = Field(
        default=REGION_SIZE,
        ge=1024,
        le=256 * 1024 * 1024,
        description="Bytes of RAM reserved for deep-memory acquisition "
        "(ACQ:AXI:SIZE?; the stock device tree reserves 2 MiB).",
    )
    long_forms: bool = Field(
        default=True,
        description="Accept SCPI long forms of nodes the vendor registers "
        "abbreviated (SOURce1:FREQuency:FIXed); false: as strict as the board.",
    )


class _Connection(asyncio.Protocol):
    def __init__(self, server: RedPitayaSim):
        self.server = server
        self.session = Session()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.free_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n")) >= 0:
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            self.execute(line.decode("ascii", errors="replace"))
        if len(self.buffer) > MAX_LINE:  # never terminated: drop it
            self.buffer.clear()

    def execute(self, message: str) -> None:
        fault = self.server.fault
        replies = self.server.board.execute(self.session, message)
        if not replies or fault is Fault.SILENT:
            return
        data = b";".join(replies) + b"\r\n"
        if fault is Fault.GARBAGE:
            data = self.server.rng.bytes(max(len(data) // 4, 3))
        self.send(data)

    def send(self, data: bytes) -> None:
        params = self.server.params
        loop = asyncio.get_running_loop()
        duration = len(data) / params.bandwidth if params.bandwidth else 0.0
        at = max(loop.time() + params.latency, self.free_at) + duration
        self.free_at = at
        if at <= loop.time():
            self._write(data)
        else:
            loop.call_at(at, self._write, data)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class RedPitayaSim:
    """A simulated Red Pitaya STEMlab 125-14 serving SCPI over TCP.

    Args:
        world: The simulated table.
        name: The simulator's name (for messages).
        params: Its settings.
    """

    kind: ClassVar[str] = "redpitaya"
    Params = RedPitayaSimParams

    def __init__(self, world: World, name: str, params: RedPitayaSimParams):
        self.world = world
        self.name = name
        self.params = params
        self.board = Board(
            world,
            params.bench,
            params.ext_trigger_line,
            params.fill_time_scale,
            params.seed,
            split_trigger=params.split_trigger,
            deep_memory_size=params.deep_memory_size,
            long_forms=params.long_forms,
        )
        self.rng = np.random.default_rng(params.seed + 1)
        self.connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._fault = params.fault
        self.endpoint = ""
        self.port = 0

    async def start(self) -> str:
        """Listen; return `tcp://host:port`."""
        await self._listen(self.params.port)
        return self.endpoint

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.params.host, port
        )
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else port
        self.endpoint = f"tcp://{self.params.host}:{self.port}"
        logger.info("%s: SCPI server at %s", self.name, self.endpoint)

    @property
    def fault(self) -> Fault:
        """The fault now active."""
        return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        self._fault = Fault(fault)
        if fault is Fault.DISCONNECT:  # the board drops off the network
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            if self._server is not None:
                self._server.close()
                self._server = None
        elif self._server is None and self.port:
            asyncio.get_running_loop().create_task(self._listen(self.port))

    def kick(self, volts: float) -> None:
        """Knock the table: the cavity's resonance jumps by `volts` (piezo V)."""
        self.board.bench.cavity.kick(volts)

    def close(self) -> None:
        """Stop serving and drop every connection."""
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._server is not None:
            self._server.close()
            self._server = None
