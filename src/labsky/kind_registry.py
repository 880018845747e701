"""The closed registry of device kinds: the device packages' and the simulation's.

Device packages (`labsky.devices.registry`) and the simulation
(`labsky.sim.kinds`) each list their own kinds and know nothing of each
other; the registry a session declares devices from is assembled here, above
both. `labsky.config` validates declarations against the kinds it is given
(`load_devices(path, device_kinds())`), so it imports no device code.

The registry is closed on purpose: a declaration can only name a kind that
labsky ships and tests, never an arbitrary import path.
"""

from __future__ import annotations

from importlib import import_module

from labsky.devices.registry import package_kinds
from labsky.kinds import DeviceKind

#: Modules of the simulation whose `KINDS` join the registry (first, so
#: `labsky check --kinds` lists the kinds every profile can use first).
SIM_KIND_MODULES = ("labsky.sim.kinds",)


def _all_kinds() -> list[DeviceKind]:
    simulated = [k for m in SIM_KIND_MODULES for k in import_module(m).KINDS]
    return [*simulated, *package_kinds()]


def device_kinds() -> dict[str, DeviceKind]:
    """Return the registry: every kind labsky can build, by name.

    Raises:
        RuntimeError: If two modules register the same kind name.
    """
    kinds: dict[str, DeviceKind] = {}
    for kind in _all_kinds():
        if kind.name in kinds:
            raise RuntimeError(f"device kind {kind.name!r} registered twice")
        kinds[kind.name] = kind
    return kinds
