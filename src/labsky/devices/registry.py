"""The device packages whose kinds labsky ships.

Each module named here has a `KINDS` tuple of `labsky.kinds.DeviceKind`. The
registry a session builds devices from, these kinds and the ones the
simulation registers (`labsky.sim.kinds`), is assembled above both, in
`labsky.kind_registry`: device code never imports the simulation.
"""

from __future__ import annotations

from importlib import import_module

from labsky.kinds import DeviceKind

#: Modules whose `KINDS` are the device packages' share of the registry.
KIND_MODULES = (
    "labsky.devices.elliptec",
    "labsky.devices.newport",
    "labsky.devices.spectra_physics",
    "labsky.devices.declarative",
    "labsky.devices.pvcam",
    "labsky.devices.pulse_generator",
    "labsky.devices.redpitaya",
)


def package_kinds() -> list[DeviceKind]:
    """The kinds of the device packages, in `KIND_MODULES` order."""
    return [kind for module in KIND_MODULES for kind in import_module(module).KINDS]
