"""Simulated instruments that speak their real wire protocols.

Each simulator serves a real transport (a pseudo-terminal for serial
instruments, a TCP port for network ones) on top of a shared physical world
(`labsky.sim.world`), so drivers cannot tell it from the instrument and the
instruments are coupled as on a real optical table.

The simulation also registers device kinds of its own (`labsky.sim.kinds`:
ophyd-async's simulated devices on the table's beam) and gives device
factories the table as the `sim_world` fixture (`labsky.sim.table`), so that
device code never imports it.
"""

from labsky.sim.host import SimulationConfig, SimulatorHost, simulator_kinds
from labsky.sim.pty_port import Fault
from labsky.sim.table import SimulatedTable
from labsky.sim.world import World, WorldParams

__all__ = [
    "Fault",
    "SimulatedTable",
    "SimulationConfig",
    "SimulatorHost",
    "World",
    "WorldParams",
    "simulator_kinds",
]
