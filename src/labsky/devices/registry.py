"""The closed registry of device kinds.

A *kind* is what a declaration's `kind:` names. Each kind has a pydantic model
for its `params`, a factory that builds the object, and an optional hook that
configures the device once it is connected. Factories follow dodal's
convention: the first argument is the validated params and every further
argument names a dependency (another declared device, or a session fixture such
as `path_provider`), so the dependency graph is read from the signatures.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


class NoParams(BaseModel):
    """Parameters of a kind that takes none."""

    model_config = ConfigDict(extra="forbid")


Factory = Callable[..., Any]
AfterConnect = Callable[[Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class DeviceKind:
    """One entry of the registry.

    Attributes:
        name: The value of `kind:` in a declaration.
        factory: Builds the object from params and named dependencies.
        params: The pydantic model that validates `params:`.
        summary: One line for `labsky check` and the docs.
        after_connect: Optional coroutine `(device, params)` run after a
            successful connect, for settings that need a live device.
    """

    name: str
    factory: Factory
    params: type[BaseModel] = NoParams
    summary: str = ""
    after_connect: AfterConnect | None = None
    dependency_types: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Names of the factory arguments after `params`: its dependencies."""
        parameters = list(inspect.signature(self.factory).parameters)
        return tuple(parameters[1:])


#: Modules whose `KINDS` make up the registry.
KIND_MODULES = (
    "labsky.devices.sim",
    "labsky.devices.elliptec",
    "labsky.devices.newport",
    "labsky.devices.spectra_physics",
    "labsky.devices.declarative",
    "labsky.devices.pvcam",
    "labsky.devices.pulse_generator",
    "labsky.devices.redpitaya",
)


def _all_kinds() -> list[DeviceKind]:
    from importlib import import_module

    return [kind for module in KIND_MODULES for kind in import_module(module).KINDS]


def device_kinds() -> dict[str, DeviceKind]:
    """Return the registry: every kind labsky can build, by name.

    The registry is closed on purpose: a declaration can only name a kind that
    labsky ships and tests, never an arbitrary import path.
    """
    kinds: dict[str, DeviceKind] = {}
    for kind in _all_kinds():
        if kind.name in kinds:  # pragma: no cover - guarded by tests
            raise RuntimeError(f"device kind {kind.name!r} registered twice")
        kinds[kind.name] = kind
    return kinds
