"""Device references: plan parameters whose values are the session's devices.

A parameter typed with a bluesky protocol (`Readable`, `Movable`, ...) or an
ophyd-async device class takes a device. Given as text (`"pdet"`,
`"stage.x"`), the name is looked up in the `DeviceLookup` that validation
gets in its context; given as an object (at the prompt), the device is
checked against the type. A name that is not there fails with the names that
come closest.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bluesky import protocols
from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

#: Key of the `DeviceLookup` in pydantic's validation context.
CONTEXT_KEY = "labsky.devices"


def is_device_type(hint: Any) -> bool:
    """Whether values of `hint` are devices: a bluesky protocol or a device class."""
    if not isinstance(hint, type):
        return False
    if getattr(hint, "_is_protocol", False):
        return any(
            base.__module__ == protocols.__name__ and getattr(base, "_is_protocol", 0)
            for base in hint.__mro__
        )
    from ophyd_async.core import Device

    return issubclass(hint, Device)


@dataclass(frozen=True)
class DeviceLookup:
    """Where device names are looked up: the session's devices, or declared names.

    Attributes:
        devices: The session's devices by name; None before they are built.
        names: Without `devices`: the declared names, so a name can be checked
            before any device exists (the device itself is not looked up).
    """

    devices: Mapping[str, Any] | None = None
    names: frozenset[str] = frozenset()

    @functools.cached_property
    def catalogue(self) -> dict[str, Any]:
        """Every device and its parts (`rp.iq`, `stage.x`) by dotted name."""
        return device_catalogue(self.devices or {})

    def resolve(self, text: str, ref: DeviceRef) -> Any:
        """The device called `text` (dotted names reach parts), checked against `ref`.

        Raises:
            PydanticCustomError: Saying why, with the names that come closest.
        """
        if self.devices is None:
            head, dot, rest = text.partition(".")
            if head in self.names:
                return text  # checked for real once the devices are built
            candidates = [f"{name}{dot}{rest}" for name in self.names]
            raise _device_error(
                "is not a device of this session"
                + suggest(text, candidates, "declared devices")
            )
        device, missing = _find(self.devices, text)
        if missing is not None:
            raise _device_error(
                f"is not a device of this session{missing}"
                + suggest(text, self._suggestions(ref), f"devices that fit {ref}")
            )
        if not ref.accepts(device):
            raise _device_error(
                f"is a {type(device).__name__}, not {ref}"
                + suggest(text, self._suggestions(ref), f"devices that fit {ref}")
            )
        return device

    def fitting(self, ref: DeviceRef) -> list[str]:
        """Names of the devices and parts `ref` accepts (signals included)."""
        return sorted(n for n, d in self.catalogue.items() if ref.accepts(d))

    def _suggestions(self, ref: DeviceRef) -> list[str]:
        """The devices that fit, signals only if nothing else does."""
        from ophyd_async.core import Signal

        names = [
            n
            for n, d in self.catalogue.items()
            if ref.accepts(d) and not isinstance(d, Signal)
        ]
        return sorted(names) or self.fitting(ref)


def device_catalogue(devices: Mapping[str, Any], depth: int = 2) -> dict[str, Any]:
    """Every device and child (`rp.iq`) by dotted name, down to `depth` levels."""
    found: dict[str, Any] = {}

    def walk(name: str, device: Any, level: int) -> None:
        found[name] = device
        if level < depth:
            for child_name, child in _children(device).items():
                walk(f"{name}.{child_name}", child, level + 1)

    for name, device in devices.items():
        walk(name, device, 0)
    return found


def _children(device: Any) -> dict[str, Any]:
    from ophyd_async.core import Device

    if not isinstance(device, Device):
        return {}
    return {n: c for n, c in device.children() if not n.startswith("_")}


def _find(devices: Mapping[str, Any], text: str) -> tuple[Any, str | None]:
    """The device at a dotted name, or None and why it is not there."""
    head, *rest = text.split(".")
    if head not in devices:
        return None, ""
    device, path = devices[head], head
    for part in rest:
        children = _children(device)
        if part not in children:
            parts = ", ".join(sorted(children)) or "none"
            return None, f": {path} has no part {part!r} (its parts: {parts})"
        device, path = children[part], f"{path}.{part}"
    return device, None


def _device_error(reason: str) -> PydanticCustomError:
    return PydanticCustomError("labsky_device", "{reason}", {"reason": reason})


def suggest(text: str, names: Iterable[str], label: str) -> str:
    """`; did you mean 'x'?` if a name comes close, else ` (label: a, b, ...)`."""
    names = sorted(names)
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {either(close)}?"
    if not names:
        return f" ({label}: none)"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f" ({label}: {shown})"


def either(names: Sequence[str]) -> str:
    """`'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`."""
    quoted = [repr(n) for n in names]
    return (
        quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    )


@dataclass(frozen=True)
class DeviceRef:
    """Marks a parameter whose values are devices: given by name or as objects.

    Used as `Annotated[Readable, DeviceRef((Readable,))]`; names are looked
    up in the `DeviceLookup` of the validation context.

    Attributes:
        targets: The types a device must have (any of them).
        required: False for `Movable | Any` (bluesky's `*args`): a string
            that names no device, and any other value, pass as they are.
    """

    targets: tuple[type, ...]
    required: bool = True

    def __str__(self) -> str:
        return " | ".join(t.__name__ for t in self.targets)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.targets)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            self._validate,
            json_schema_input_schema=core_schema.str_schema(),
        )

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        lookup = (info.context or {}).get(CONTEXT_KEY) or DeviceLookup()
        if isinstance(value, str):
            if self.required:
                return lookup.resolve(value, self)
            try:
                return lookup.resolve(value, self)
            except PydanticCustomError:
                return value  # `Movable | Any`: not a device name, so a value
        if self.accepts(value) or not self.required:
            return value
        if isinstance(getattr(value, "name", None), str):
            raise _device_error(f"is a {type(value).__name__}, not {self}")
        raise _device_error(f"is not a device that fits {self}")
