"""`${name}` placeholders in device parameters, filled in by the session.

A simulated lab's serial ports are pseudo-terminals whose names change on
every start, and its TCP servers take free ports, so a declaration names a
simulator instead: `port: ${sim.meter}`. The session replaces the
placeholder with the endpoint of the simulator it started before it builds
the device; the device itself never knows it talks to a simulator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from labsky.errors import LabskyError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


class PlaceholderError(LabskyError, KeyError):
    """A placeholder names nothing the session defines."""

    def __str__(self) -> str:
        return str(self.args[0])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def placeholders(params: BaseModel) -> set[str]:
    """The names of the placeholders used in validated params."""
    return {
        match.group(1)
        for text in _strings(params.model_dump(mode="json"))
        for match in PLACEHOLDER.finditer(text)
    }


def _fill(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: _lookup(m.group(1), variables), value)
    if isinstance(value, Mapping):
        return {k: _fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, variables) for v in value]
    return value


def _lookup(name: str, variables: Mapping[str, str]) -> str:
    if name in variables:
        return variables[name]
    if name.startswith("sim."):
        known = sorted(
            v.removeprefix("sim.") for v in variables if v.startswith("sim.")
        )
        where = (
            f"the profile's simulation has no instrument {name[4:]!r} "
            f"(it has: {', '.join(known)})"
            if known
            else "the profile has no `simulation:` section with that instrument"
        )
        raise PlaceholderError(f"${{{name}}} is not defined: {where}")
    raise PlaceholderError(f"${{{name}}} is not defined")


def substitute(params: BaseModel, variables: Mapping[str, str]) -> BaseModel:
    """Return `params` with every placeholder replaced, validated again.

    Raises:
        PlaceholderError: If a placeholder names an unknown variable.
    """
    if not placeholders(params):
        return params
    data = _fill(params.model_dump(mode="json"), variables)
    return type(params).model_validate(data)
