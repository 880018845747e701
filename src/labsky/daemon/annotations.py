"""Queue-server parameter annotations generated from a plan's type hints.

The queue server turns device names into devices, and validates arguments
before it queues an item, from each parameter's annotation. It understands
builtin types and its own markers (`__READABLE__`, `__MOVABLE__`,
`__FLYABLE__`, `__DEVICE__`) but not labsky's protocols and device classes,
and a parameter it does not understand gets its strings unconverted. So the
session's plans are exposed to the worker wrapped, with an annotation built
here for every parameter; the wrapper then binds the arguments with labsky's
own checks (`Session.plan`), exactly as the prompt and `labsky run` do.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bluesky import protocols
from ophyd_async.core import Device

_PROTOCOL_MARKERS: list[tuple[Any, str]] = [
    (protocols.Movable, "__MOVABLE__"),
    (protocols.Flyable, "__FLYABLE__"),
    (protocols.Readable, "__READABLE__"),
]
_BUILTINS = {int: "int", float: "float", str: "str", bool: "bool", bytes: "bytes"}


def annotation_text(hint: Any) -> str:
    """The queue server's annotation for a type hint.

    Devices and protocols become the queue server's markers (so names are
    converted), containers and unions keep their shape, enums and literals
    become the text or values they accept, anything else `typing.Any`.
    """
    if hint is Any or hint is inspect.Parameter.empty:
        return "typing.Any"
    if hint is None or hint is type(None):
        return "None"
    if hint in _BUILTINS:
        return _BUILTINS[hint]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        texts = list(dict.fromkeys(annotation_text(a) for a in args))
        if "typing.Any" in texts:
            return "typing.Any"
        return f"typing.Union[{', '.join(texts)}]"
    if origin is typing.Literal:
        return f"typing.Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (list, Sequence, Iterable, set, frozenset) or (
        isinstance(origin, type)
        and issubclass(origin, Sequence)
        and origin is not tuple
    ):
        inner = annotation_text(args[0]) if args else "typing.Any"
        return f"typing.List[{inner}]"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"typing.List[{annotation_text(args[0])}]"
        return f"typing.Tuple[{', '.join(annotation_text(a) for a in args)}]"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "dict"
    if hint in (list, Sequence, tuple):
        return "list"
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return "str"
        for protocol, marker in _PROTOCOL_MARKERS:
            if hint is protocol:
                return marker
        if issubclass(hint, Device) or getattr(hint, "_is_protocol", False):
            return f"__DEVICE__{hint.__name__}"
    return "typing.Any"


def device_catalogue(devices: Mapping[str, Any], depth: int = 2) -> dict[str, Any]:
    """Every device and child (`rp.iq`) by dotted name, down to `depth` levels."""
    found: dict[str, Any] = {}

    def walk(name: str, device: Any, level: int) -> None:
        found[name] = device
        if level < depth and hasattr(device, "children"):
            for child_name, child in device.children():
                if isinstance(child, Device) and not child_name.startswith("_"):
                    walk(f"{name}.{child_name}", child, level + 1)

    for name, device in devices.items():
        walk(name, device, 0)
    return found


def _device_types(text: str, catalogue: Mapping[str, Any], hint: Any) -> dict[str, Any]:
    """Replace device markers by named lists of the session's fitting devices.

    The queue server then converts exactly those names and refuses any other
    when an item is added, not when it runs.
    """
    kinds: dict[str, list[str]] = {}
    classes = {c.__name__: c for c in _classes(hint)}
    for protocol, marker in _PROTOCOL_MARKERS:
        if marker in text:
            names = [n for n, d in catalogue.items() if isinstance(d, protocol)]
            kind = marker.strip("_").capitalize() + "Devices"
            if names:
                text = text.replace(marker, kind)
                kinds[kind] = sorted(names)
    for class_name, cls in classes.items():
        marker = f"__DEVICE__{class_name}"
        if marker in text:
            names = [n for n, d in catalogue.items() if isinstance(d, cls)]
            text = text.replace(
                marker, f"{class_name}Devices" if names else "__DEVICE__"
            )
            if names:
                kinds[f"{class_name}Devices"] = sorted(names)
    spec: dict[str, Any] = {"annotation": text}
    if kinds:
        spec["devices"] = kinds
    return spec


def _classes(hint: Any) -> list[type]:
    if isinstance(hint, type):
        return [hint]
    return [c for a in typing.get_args(hint) for c in _classes(a)]


def _hints(plan: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(plan)
    except Exception:  # noqa: BLE001 - unresolvable hints: everything is Any
        return {}


def queue_annotation(
    plan: Callable[..., Any], devices: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `parameter_annotation_decorator` description of a plan.

    Args:
        plan: The plan function.
        devices: The session's devices; device parameters then list the names
            that fit, so the queue server refuses others when an item is added.
    """
    hints = _hints(plan)
    doc = inspect.getdoc(plan) or ""
    catalogue = device_catalogue(devices or {})
    parameters = {
        name: _device_types(
            annotation_text(hints.get(name, Any)), catalogue, hints.get(name, Any)
        )
        for name, param in inspect.signature(plan).parameters.items()
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    }
    return {"description": doc.split("\n\n")[0], "parameters": parameters}


def queue_plan(name: str, plan: Callable[..., Any], session: Any) -> Callable[..., Any]:
    """Wrap a session plan for the queue server.

    The wrapper has the plan's name, signature and docstring, carries the
    generated annotation, and calls `session.plan(name, ...)` so arguments get
    labsky's checks before the run opens.
    """
    from bluesky_queueserver import parameter_annotation_decorator

    @functools.wraps(plan)
    def queued(*args: Any, **kwargs: Any) -> Any:
        return (yield from session.plan(name, *args, **kwargs))

    signature = inspect.signature(plan)
    queued.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(default=p.default.value)
            if isinstance(p.default, enum.Enum)  # the queue server shows defaults
            else p  # as literals; an enum default is given as its value
            for p in signature.parameters.values()
        ]
    )
    queued.__annotations__ = {}  # the decorator's description replaces them
    annotation = queue_annotation(plan, session.devices)
    return parameter_annotation_decorator(annotation)(queued)
