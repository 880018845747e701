"""Turn user input into plan arguments and check them before a run opens.

Front ends hand plans values typed by a person: device names as strings,
numbers and lists parsed from YAML. `bind_plan_arguments` resolves device
names (including children such as `stage.x`) to the session's devices, binds
the values to the plan's signature and checks each against its type hint, so a
wrong argument fails with a message naming the plan, the parameter and the
fix, before the RunEngine opens a run.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError


class PlanArgumentError(ValueError):
    """A plan was called with arguments it cannot run with."""


def resolve_device(name: str, devices: Mapping[str, Any]) -> Any:
    """Return the device called `name`; dotted names reach children (`stage.x`)."""
    head, *rest = name.split(".")
    obj = devices[head]
    for part in rest:
        obj = getattr(obj, part)
    return obj


def _is_device_name(value: str, devices: Mapping[str, Any]) -> bool:
    try:
        resolve_device(value, devices)
    except (KeyError, AttributeError):
        return False
    return True


def _resolve(value: Any, devices: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and _is_device_name(value, devices):
        return resolve_device(value, devices)
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v, devices) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, devices) for k, v in value.items()}
    return value


def _wants_str(hint: Any) -> bool:
    return hint is str or (
        typing.get_origin(hint) in (typing.Union, types.UnionType)
        and str in typing.get_args(hint)
        and all(a in (str, type(None)) for a in typing.get_args(hint))
    )


_LAX = ConfigDict(arbitrary_types_allowed=True)


def _hint_text(hint: Any) -> str:
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return re.sub(r"\b[a-z_][\w]*\.", "", text)


def _at(value: Any, loc: Sequence[Any]) -> Any:
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _check(
    plan_name: str, param: str, hint: Any, value: Any, devices: Mapping[str, Any]
) -> Any:
    """Validate one value; return it, or its coerced form if it is a scalar.

    Text and numbers are coerced to what the plan declares ("1.46e6" to a
    float, "CH1_NE" to an enum member), as they come from the CLI or a queue.
    Anything else is returned as given, once checked.
    """
    try:
        adapter = TypeAdapter(hint, config=_LAX)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
        return value  # a hint pydantic cannot express (a TypeVar, a protocol)
    try:
        checked = adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = [p for p in first["loc"] if isinstance(p, int)]
        where = "".join(f"[{p}]" for p in loc)
        bad = _at(value, loc)
        if isinstance(bad, str) and "instance of" in first["msg"]:
            known = ", ".join(sorted(devices)) or "none"
            reason = f"{bad!r} is not a device of this session (devices: {known})"
        else:
            reason = first["msg"]
        raise PlanArgumentError(
            f"{plan_name}: argument {param}{where}={bad if loc else value!r} does "
            f"not fit {_hint_text(hint)}: {reason}"
        ) from None
    scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
    return checked if scalar else value


def bind_plan_arguments(
    plan: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    devices: Mapping[str, Any] | None = None,
) -> inspect.BoundArguments:
    """Resolve device names, bind to the plan's signature and type-check.

    Args:
        plan: The plan function.
        args: Positional values.
        kwargs: Keyword values.
        devices: The session's devices by name.

    Returns:
        The bound arguments, ready for `plan(*bound.args, **bound.kwargs)`.

    Raises:
        PlanArgumentError: Naming the plan, the parameter and what is wrong.
    """
    devices = devices or {}
    kwargs = dict(kwargs or {})
    name = getattr(plan, "__name__", repr(plan))
    signature = inspect.signature(plan)
    try:
        hints = typing.get_type_hints(plan)
    except Exception:  # noqa: BLE001 - unresolvable hints are simply not checked
        hints = {}

    def convert(param: str, value: Any) -> Any:
        return value if _wants_str(hints.get(param)) else _resolve(value, devices)

    params = list(signature.parameters.values())
    positional = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    resolved_args = [
        convert(positional[i].name if i < len(positional) else "", v)
        for i, v in enumerate(args)
    ]
    resolved_kwargs = {k: convert(k, v) for k, v in kwargs.items()}
    try:
        bound = signature.bind(*resolved_args, **resolved_kwargs)
    except TypeError as exc:
        accepted = ", ".join(p.name for p in params)
        raise PlanArgumentError(f"{name}: {exc}; it takes: {accepted}") from None
    for param, value in bound.arguments.items():
        kind = signature.parameters[param].kind
        if param not in hints or kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        bound.arguments[param] = _check(name, param, hints[param], value, devices)
    return bound
