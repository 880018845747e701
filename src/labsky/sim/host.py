"""Run a simulated lab: the world and its instruments, on their own thread.

`SimulatorHost` builds the world and the simulators a profile's
`simulation:` section names, and runs them on an asyncio loop in a daemon
thread, so the RunEngine's loop only ever sees real serial ports and sockets.
`labsky sim PROFILE` runs the same host in the foreground for other
processes; a session starts one itself when its profile has simulators.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from labsky.sim.pty_port import Fault
from labsky.sim.world import World, WorldParams

logger = logging.getLogger(__name__)


class Simulator(Protocol):
    """What the host needs of a simulator."""

    endpoint: str
    fault: Fault

    async def start(self) -> str:
        """Start serving on the running loop; return the endpoint drivers use."""
        ...

    def close(self) -> None:
        """Stop serving."""
        ...


def simulator_kinds() -> dict[str, Any]:
    """Simulator classes by kind; each has `kind` and a `Params` model."""
    from labsky.sim.ell14 import Ell14Sim
    from labsky.sim.esp300 import Esp300Sim
    from labsky.sim.maitai import MaiTaiSim
    from labsky.sim.newport1830c import Newport1830cSim
    from labsky.sim.redpitaya import RedPitayaSim

    classes = (Ell14Sim, Esp300Sim, Newport1830cSim, MaiTaiSim, RedPitayaSim)
    return {cls.kind: cls for cls in classes}


def _declaration_model(cls: Any) -> type[BaseModel]:
    return create_model(
        f"{cls.__name__}Declaration",
        __config__=ConfigDict(extra="forbid"),
        __doc__=(cls.__doc__ or "").split("\n")[0],
        kind=(Literal[cls.kind], Field(description=cls.kind)),  # type: ignore[valid-type]
        params=(cls.Params, Field(default_factory=cls.Params)),
    )


def _declarations() -> Any:
    models = tuple(_declaration_model(c) for c in simulator_kinds().values())
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007


class SimulationConfig(BaseModel):
    """A profile's `simulation:` section: the simulated table and instruments.

    Device declarations reach a simulator's port or address as
    `${sim.NAME}`.
    """

    model_config = ConfigDict(extra="forbid")

    world: WorldParams = Field(default_factory=lambda: WorldParams())
    instruments: dict[str, _declarations()] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Simulators by name: kind and params."
    )


def build_simulators(config: SimulationConfig, world: World) -> dict[str, Any]:
    """Make (not start) the simulators of a configuration."""
    kinds = simulator_kinds()
    return {
        name: kinds[declaration.kind](world, name, declaration.params)
        for name, declaration in config.instruments.items()
    }


class SimulatorHost:
    """The world and its simulators, served from a thread of their own.

    Args:
        config: What to simulate.
    """

    def __init__(self, config: SimulationConfig):
        self.config = config
        self.world = World(config.world)
        self.simulators: dict[str, Any] = build_simulators(config, self.world)
        self.endpoints: dict[str, str] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="labsky-simulators", daemon=True
        )

    def start(self, timeout: float = 10.0) -> SimulatorHost:
        """Start the thread and every simulator; return self."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start_all(), self.loop)
        self.endpoints = future.result(timeout)
        for name, endpoint in self.endpoints.items():
            logger.info("simulator %s at %s", name, endpoint)
        return self

    async def _start_all(self) -> dict[str, str]:
        return {name: await sim.start() for name, sim in self.simulators.items()}

    def __getitem__(self, name: str) -> Any:
        return self.simulators[name]

    def variables(self) -> Mapping[str, str]:
        """`sim.NAME` -> endpoint, for `${...}` in device declarations."""
        return {f"sim.{name}": endpoint for name, endpoint in self.endpoints.items()}

    def set_fault(self, name: str, fault: Fault | str, timeout: float = 5.0) -> None:
        """Inject a fault into a simulator, or clear it (`none`); thread-safe.

        Returns once the simulator acts on it: a cleared `disconnect` is
        listening again (its port or pty open, `endpoints` updated).
        """
        simulator = self.simulators[name]
        fault = Fault(fault)

        async def apply() -> None:
            before = asyncio.all_tasks()
            simulator.fault = fault
            started = asyncio.all_tasks() - before  # e.g. a server listening again
            if started:
                await asyncio.wait(started, timeout=timeout)
            self.endpoints[name] = simulator.endpoint

        if threading.current_thread() is self._thread:  # on the simulators' loop
            simulator.fault = fault
            return
        asyncio.run_coroutine_threadsafe(apply(), self.loop).result(timeout + 1)

    def close(self) -> None:
        """Stop every simulator and the thread."""
        if self.loop.is_closed():
            return

        def stop() -> None:
            for simulator in self.simulators.values():
                simulator.close()
            self.loop.stop()

        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(stop)
            self._thread.join(5)
        else:
            for simulator in self.simulators.values():
                simulator.close()
        self.loop.close()

    def __enter__(self) -> SimulatorHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
