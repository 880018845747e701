"""Plan type hints turned into the types pydantic validates plan arguments with.

`convert` keeps a hint's shape and replaces what pydantic cannot check as a
plan means it: device types become device references, list-like types
`Items` (numpy arrays and ranges accepted, text refused, generators passed on
for an `Iterable`), callables a bare `Callable`.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from labsky.plans.device_refs import DeviceRef, is_device_type


@dataclass(frozen=True)
class Items:
    """Marks a list-like parameter: `Sequence[X]`, `list[X]`, `Iterable[X]`.

    Lists and tuples are validated item by item (a tuple stays a tuple); other
    sized iterables (numpy arrays, ranges) become lists first. Text and
    mappings are refused. For `Iterable[X]`, an iterator (a generator) is
    passed on unread, as reading it would consume it.

    Attributes:
        item: The converted item type.
        lazy: Whether an iterator is acceptable (an `Iterable` hint).
    """

    item: Any
    lazy: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        inner = handler.generate_schema(list[self.item])

        def validate(value: Any, validate_list: Callable[[Any], Any]) -> Any:
            if isinstance(value, str | bytes | Mapping) or not isinstance(
                value, Iterable
            ):
                raise PydanticCustomError(
                    "labsky_items", "expected a list, got {kind}",
                    {"kind": type(value).__name__},
                )  # fmt: skip
            if isinstance(value, Iterator):
                if self.lazy:
                    return value
                value = list(value)
            checked = validate_list(list(value))
            return tuple(checked) if isinstance(value, tuple) else checked

        return core_schema.no_info_wrap_validator_function(validate, inner)


_ITEM_ORIGINS = {
    list,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Collection,
    collections.abc.Iterable,
    collections.abc.Iterator,
    set,
    frozenset,
    collections.abc.Set,
}
_LAZY_ORIGINS = {collections.abc.Iterable, collections.abc.Iterator}
_MAPPING_ORIGINS = {dict, collections.abc.Mapping, collections.abc.MutableMapping}


def convert(hint: Any) -> Any:
    """The pydantic type that validates values of a plan's type hint.

    Device types become device references (`DeviceRef`), list-like types
    `Items`, callables bare `Callable`; everything else is kept for pydantic.
    """
    if hint is Any or hint is inspect.Parameter.empty:
        return Any
    if isinstance(hint, typing.TypeVar):
        return convert(hint.__bound__) if hint.__bound__ is not None else Any
    if is_device_type(hint):
        return Annotated[hint, DeviceRef((hint,))]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return Annotated[(convert(args[0]), *hint.__metadata__)]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        devices = tuple(a for a in args if is_device_type(a))
        if devices and Any in args:  # `Movable | Any`: devices by name, or values
            return Annotated[Any, DeviceRef(devices, required=False)]
        return typing.Union[tuple(convert(a) for a in args)]  # type: ignore[return-value]  # noqa: UP007
    if origin is typing.Literal:
        return hint
    if origin in _ITEM_ORIGINS or hint in _ITEM_ORIGINS:
        item = convert(args[0]) if args else Any
        return Annotated[Any, Items(item, lazy=(origin or hint) in _LAZY_ORIGINS)]
    if origin is tuple or hint is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return Annotated[Any, Items(convert(args[0]) if args else Any)]
        return tuple[tuple(convert(a) for a in args)]  # type: ignore[misc]
    if origin in _MAPPING_ORIGINS or hint in _MAPPING_ORIGINS:
        key, value = args if len(args) == 2 else (Any, Any)
        return dict[convert(key), convert(value)]  # type: ignore[misc]
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return Callable
    return hint


def device_ref(annotation: Any) -> DeviceRef | None:
    """The device reference a converted annotation is, if it is one."""
    if typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, DeviceRef):
                return meta
    return None


def items_of(annotation: Any) -> Items | None:
    """The `Items` marker of a converted annotation, if it is list-like."""
    if typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, Items):
                return meta
    return None


def hint_text(hint: Any) -> str:
    """A type hint as a reader writes it: `Sequence[Readable]`, `int | None`."""
    if hint is Any or hint is inspect.Parameter.empty:
        return "Any"
    if hint is type(None):
        return "None"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(hint_text(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else hint_text(a) for a in args)
        return f"{name}[{inner}]"
    return str(hint).replace("typing.", "")


def short_repr(value: Any) -> str:
    """A value as an error message shows it: a device by name, text cut at 60."""
    name = getattr(value, "name", None)
    if not isinstance(value, str | int | float) and isinstance(name, str):
        return name
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
