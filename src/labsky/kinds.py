"""What a device kind is: the data types of the registry of device kinds.

A *kind* is what a declaration's `kind:` names. Each kind has a pydantic model
for its `params`, a factory that builds the object, and an optional hook that
configures the device once it is connected. Factories follow dodal's
convention: the first argument is the validated params and every further
argument names a dependency (another declared device, or a session fixture such
as `path_provider`), so the dependency graph is read from the signatures.

The types live at the bottom of labsky so that every layer can use them:
device packages (`labsky.devices`) and the simulation (`labsky.sim`) define
kinds, `labsky.config` validates declarations against the kinds it is given,
and the session layer assembles the registry (`labsky.kind_registry`).
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


#: Device kinds by name, as `labsky.kind_registry.device_kinds()` returns them.
Kinds = Mapping[str, DeviceKind]
