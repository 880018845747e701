"""What device factories get as the `sim_world` fixture: the simulated table.

Devices that plug into the simulation (a `pvcam` with `backend: sim`, a
`sim_pulse_generator`, the beam the `sim_*` detectors sample) ask for it by
naming a `sim_world` argument. They type it by what they need of it (protocols
in their own packages: `labsky.devices.pvcam.CameraSimulation`,
`labsky.devices.pulse_generator.TriggerLines`), so device code never imports
the simulation; this class is the implementation the session provides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labsky.sim.world import TriggerLine, World

if TYPE_CHECKING:
    from labsky.sim.camera import SimCamera


class SimulatedTable:
    """The simulated table a session's devices share.

    Args:
        world: The world its simulators run (the profile's `simulation:`
            section), or None when no simulator runs: simulated cameras then
            see a fixed spot, and there are no trigger lines.
    """

    def __init__(self, world: World | None = None):
        self.world = world

    def trigger_line(self, name: str) -> TriggerLine:
        """The world's trigger line `name`, created on first use.

        Raises:
            ValueError: If no world runs.
        """
        if self.world is None:
            raise ValueError(
                f"trigger line {name!r} is on the simulated table, and none runs: "
                "give the profile a `simulation:` section with its instruments"
            )
        return self.world.trigger_line(name)

    def camera_backend(
        self, model: str, *, trigger_line: str, pixels_per_mm: float
    ) -> SimCamera:
        """A simulated camera of `model` looking at the table's beam."""
        from labsky.sim.camera import SimCamera  # ophyd-async: only when asked

        return SimCamera(
            model,
            world=self.world,
            trigger_line=trigger_line,
            pixels_per_mm=pixels_per_mm,
        )
