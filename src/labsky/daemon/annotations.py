"""Queue-server parameter annotations, written from each plan's argument model.

The queue server turns device names into devices, and validates arguments
before it queues an item, from each parameter's annotation. It understands
builtin types and its own markers (`__READABLE__`, `__MOVABLE__`,
`__FLYABLE__`, `__DEVICE__`) but not labsky's protocols and device classes,
and a parameter it does not understand gets its strings unconverted. So the
session's plans are exposed to the worker wrapped, with an annotation
written here from the plan's model (`labsky.plans.signature`): a device
reference lists the session's devices that fit, so the queue server refuses
other names when an item is added. The wrapper then binds the arguments with
the same model (`Session.plan`), exactly as the prompt and `labsky run` do.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from bluesky import protocols

from labsky.plans.argument_types import device_ref, items_of
from labsky.plans.device_refs import DeviceLookup, DeviceRef
from labsky.plans.signature import plan_signature

_PROTOCOL_MARKERS: dict[Any, str] = {
    protocols.Movable: "__MOVABLE__",
    protocols.Flyable: "__FLYABLE__",
    protocols.Readable: "__READABLE__",
}
_BUILTINS = {int: "int", float: "float", str: "str", bool: "bool", bytes: "bytes"}


class _Annotator:
    """Writes the queue server's annotation of a model's parameter types."""

    def __init__(self, lookup: DeviceLookup):
        self.lookup = lookup
        self.devices: dict[str, list[str]] = {}

    def text(self, annotation: Any) -> str:
        ref = device_ref(annotation)
        if ref is not None:
            return self._device(ref)
        items = items_of(annotation)
        if items is not None:
            return f"typing.List[{self.text(items.item)}]"
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Annotated:
            return self.text(args[0])
        if annotation is Any:
            return "typing.Any"
        if annotation is None or annotation is type(None):
            return "None"
        if annotation in _BUILTINS:
            return _BUILTINS[annotation]
        if origin in (typing.Union, types.UnionType):
            texts = list(dict.fromkeys(self.text(a) for a in args))
            if "typing.Any" in texts:
                return "typing.Any"
            return f"typing.Union[{', '.join(texts)}]"
        if origin is typing.Literal:
            return f"typing.Literal[{', '.join(repr(a) for a in args)}]"
        if origin is tuple:
            return f"typing.Tuple[{', '.join(self.text(a) for a in args)}]"
        if origin is dict or annotation is dict:
            return "dict"
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            values = ", ".join(repr(m.value) for m in annotation)
            return f"typing.Literal[{values}]"  # the model takes the values
        return "typing.Any"

    def _device(self, ref: DeviceRef) -> str:
        """A marker, replaced by a named list when the session has devices that fit."""
        if not ref.required:
            return "typing.Any"  # `Movable | Any`: names or values
        target = ref.targets[0] if len(ref.targets) == 1 else None
        marker = _PROTOCOL_MARKERS.get(target, "__DEVICE__")
        names = self.lookup.fitting(ref) if self.lookup.devices else []
        if not names:
            return marker
        kind = (
            marker.strip("_").capitalize()
            if target in _PROTOCOL_MARKERS
            else str(ref).replace(" | ", "Or")
        ) + "Devices"
        self.devices[kind] = names
        return kind


def queue_annotation(
    plan: Callable[..., Any], devices: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `parameter_annotation_decorator` description of a plan.

    Args:
        plan: The plan function.
        devices: The session's devices; device parameters then list the names
            that fit, so the queue server refuses others when an item is added.
    """
    signature = plan_signature(plan)
    lookup = DeviceLookup(devices or {})
    parameters = {}
    for name, param in signature.parameters.items():
        if param.variadic:
            continue
        annotator = _Annotator(lookup)
        spec: dict[str, Any] = {"annotation": annotator.text(param.annotation)}
        if annotator.devices:
            spec["devices"] = annotator.devices
        parameters[name] = spec
    doc = inspect.getdoc(plan) or ""
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
