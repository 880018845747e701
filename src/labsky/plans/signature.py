"""One model of a plan's arguments, built from its signature, for every front end.

The prompt, `labsky run`, `Session.plan` and the daemon all check plan
arguments here, before a run opens. Following blueapi, each plan gets a
pydantic model from its type hints, in which parameters typed with a bluesky
protocol (`Readable`, `Movable`, ...) or an ophyd-async device class, and
lists of them, are device references (`labsky.plans.device_refs`): a name
such as `"pdet"` or `"stage.x"` is looked up among the session's devices, a
device object is checked against the type. Nothing else is ever resolved: a
string anywhere else (in `md`, in a `str` parameter) stays a string. Scalars
are coerced and validated by pydantic (`"1.46e6"` to a float, `"NE"` to an
enum member). A wrong argument raises `PlanArgumentError`: one line naming
the plan, the argument, what was given and what it takes, with a
did-you-mean for device names. bluesky's multi-axis plans have their `*args`
checked by position (`labsky.plans.axes`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

from labsky.errors import LabskyError
from labsky.plans.argument_types import (
    convert,
    device_ref,
    hint_text,
    items_of,
    short_repr,
)
from labsky.plans.axes import AXES_LAYOUTS, AxesLayout
from labsky.plans.device_refs import CONTEXT_KEY, DeviceLookup, DeviceRef, either

__all__ = [
    "PlanArgumentError",
    "PlanDefinitionError",
    "PlanParameter",
    "PlanSignature",
    "UnknownPlanError",
    "checked_plan",
    "plan_signature",
    "unknown_plan",
]


class PlanArgumentError(LabskyError, ValueError):
    """A plan was called with arguments it cannot run with.

    IPython and Jupyter show it as its one line, without a traceback: the
    message says what to fix.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class UnknownPlanError(PlanArgumentError, KeyError):
    """No plan of that name (a `KeyError` too, for `plans[name]` habits)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PlanDefinitionError(LabskyError, TypeError):
    """A plan's signature cannot be turned into a model (a bug in the plan)."""


def unknown_plan(name: str, known: Iterable[str]) -> UnknownPlanError:
    """The error for a plan name that is not in `known`, with a did-you-mean."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {either(close)}?" if close else ""
    return UnknownPlanError(f"no plan named {name!r}{hint} (plans: {', '.join(known)})")


_CONFIG = ConfigDict(arbitrary_types_allowed=True, coerce_numbers_to_str=True)


@dataclass(frozen=True)
class PlanParameter:
    """One parameter of a plan, as the model sees it.

    Attributes:
        name: Its name.
        kind: positional, keyword, `*args` or `**kwargs`.
        hint: The plan's type hint (`Any` if it has none).
        annotation: The converted type pydantic validates with.
        default: Its default, or `inspect.Parameter.empty`.
        typed: Whether the plan gave it a type hint.
    """

    name: str
    kind: inspect._ParameterKind
    hint: Any
    annotation: Any
    default: Any
    typed: bool

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty and self.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )

    @property
    def variadic(self) -> bool:
        return self.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )

    @property
    def device(self) -> DeviceRef | None:
        """The device reference it is, or is a list of."""
        ref = device_ref(self.annotation)
        items = items_of(self.annotation)
        return ref or (device_ref(items.item) if items else None)


@dataclass
class PlanSignature:
    """The argument model of one plan; build it with `plan_signature(plan)`.

    Attributes:
        plan: The plan function.
        name: Its name.
        parameters: Its parameters by name, in order.
        model: The pydantic model of its named parameters (fields aliased by
            parameter name).
        return_hint: Its return type hint.
        axes: How its `*args` go, for bluesky's multi-axis plans.
    """

    plan: Callable[..., Any]
    name: str
    parameters: dict[str, PlanParameter]
    model: type[BaseModel]
    return_hint: Any = None
    axes: AxesLayout | None = None
    _signature: inspect.Signature = field(repr=False, default=inspect.Signature())
    _fields: dict[str, str] = field(repr=False, default_factory=dict)

    def bind(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        devices: Mapping[str, Any] | None = None,
        *,
        names: Iterable[str] | None = None,
        plan_name: str | None = None,
    ) -> inspect.BoundArguments:
        """Check the arguments and resolve the device references.

        Args:
            args: Positional values.
            kwargs: Keyword values.
            devices: The session's devices by name.
            names: Instead of `devices`, the declared device names: the
                arguments are checked before any device is built, device
                names only by their first part, and nothing is resolved.
            plan_name: The name to report (the session's name of the plan).

        Returns:
            The bound arguments, for `plan(*bound.args, **bound.kwargs)`.

        Raises:
            PlanArgumentError: One line: the plan, each bad argument, what was
                given and what it takes.
        """
        name = plan_name or self.name
        kwargs = dict(kwargs or {})
        lookup = (
            DeviceLookup(None, frozenset(names))
            if devices is None and names is not None
            else DeviceLookup(devices or {})
        )
        context = {CONTEXT_KEY: lookup}
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PlanArgumentError(f"{name}: {self._arity(exc)}") from None
        problems: list[str] = []
        named = {
            k: v for k, v in bound.arguments.items() if not self.parameters[k].variadic
        }
        checked: dict[str, Any] = {}
        try:
            model = self.model.model_validate(named, context=context)
        except ValidationError as exc:
            labels = {k: (k, p.hint) for k, p in self.parameters.items()}
            problems += _problems(exc, named, labels)
        else:
            checked = {k: getattr(model, self._fields[k]) for k in named}
        for param in self.parameters.values():
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                values = bound.arguments.get(param.name, ())
                result, found = self._check_args(param, values, kwargs, context)
                problems += found
                checked[param.name] = result
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                values = bound.arguments.get(param.name, {})
                checked[param.name] = dict(values)
                adapter = _adapter(param.annotation)
                for key, value in values.items():
                    try:
                        checked[param.name][key] = adapter.validate_python(
                            value, context=context
                        )
                    except ValidationError as exc:
                        labels = {key: (key, param.hint)}
                        problems += _problems(exc, {key: value}, labels)
        if problems:
            raise PlanArgumentError(f"{name}: " + "; ".join(problems))
        for key, value in checked.items():
            # `md` is the caller's: passed on as given (it was checked a mapping)
            bound.arguments[key] = named[key] if key == "md" else value
        return bound

    def _check_args(
        self,
        param: PlanParameter,
        values: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: dict[str, Any],
    ) -> tuple[tuple[Any, ...], list[str]]:
        if self.axes is None:
            roles = [(param.name, param.hint)] * len(values)
        else:
            try:
                roles = self.axes.roles(values, kwargs)
            except ValueError as exc:
                return tuple(values), [f"{param.name}: {exc}"]
        adapter = _adapter(tuple[tuple(convert(h) for _, h in roles)])  # type: ignore[misc]
        try:
            return adapter.validate_python(tuple(values), context=context), []
        except ValidationError as exc:
            labels = {
                i: (f"{param.name}[{i}]" + (f" ({role})" if self.axes else ""), hint)
                for i, (role, hint) in enumerate(roles)
            }
            return tuple(values), _problems(exc, dict(enumerate(values)), labels)

    def _arity(self, exc: TypeError) -> str:
        stars = {
            inspect.Parameter.VAR_POSITIONAL: "*",
            inspect.Parameter.VAR_KEYWORD: "**",
        }
        names = [stars.get(p.kind, "") + p.name for p in self.parameters.values()]
        text = str(exc)
        if "unexpected keyword argument" in text:
            wrong = text.rsplit(" ", 1)[-1].strip("'")
            text = f"it has no argument {wrong!r}"
            close = difflib.get_close_matches(wrong, self.parameters, n=1)
            if close:
                text += f"; did you mean {close[0]!r}?"
        return f"{text} (it takes: {', '.join(names)})"


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation, config=_CONFIG)


@functools.lru_cache(maxsize=512)
def plan_signature(plan: Callable[..., Any]) -> PlanSignature:
    """The argument model of a plan (built once per plan function).

    Raises:
        PlanDefinitionError: If its type hints cannot be evaluated, or a
            parameter's type cannot be validated.
    """
    name = getattr(plan, "__name__", repr(plan))
    try:
        hints = typing.get_type_hints(plan, include_extras=True)
        signature = inspect.signature(plan)
    except (NameError, TypeError, AttributeError, SyntaxError, ValueError) as exc:
        raise PlanDefinitionError(
            f"{name}: type hints cannot be evaluated: {exc}"
        ) from None
    parameters: dict[str, PlanParameter] = {}
    fields: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    axes = AXES_LAYOUTS.get(plan)
    for param in signature.parameters.values():
        hint = hints.get(param.name, Any)
        if axes is not None:
            hint = axes.keywords.get(param.name, hint)
        converted = convert(hint)
        entry = PlanParameter(
            param.name,
            param.kind,
            hint,
            converted,
            param.default,
            param.name in hints,
        )
        parameters[param.name] = entry
        if entry.variadic:
            _checked_type(name, param.name, hint, converted)
            continue
        field_name = f"p_{param.name}"
        aliases[param.name] = field_name
        default = (
            Field(alias=param.name)
            if entry.required
            else Field(alias=param.name, default_factory=_constant(param.default))
        )
        fields[field_name] = (converted, default)
    try:
        model = create_model(f"{name}_arguments", __config__=_CONFIG, **fields)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
        for param in parameters.values():
            _checked_type(name, param.name, param.hint, param.annotation)
        raise
    return PlanSignature(
        plan,
        name,
        parameters,
        model,
        hints.get("return"),
        axes,
        signature,
        aliases,
    )


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _checked_type(plan: str, param: str, hint: Any, converted: Any) -> None:
    try:
        _adapter(converted)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise PlanDefinitionError(
            f"{plan}: parameter {param!r}: its type {hint_text(hint)} cannot be "
            f"checked: {str(exc).splitlines()[0]}"
        ) from None


def _problems(
    exc: ValidationError,
    given: Mapping[Any, Any],
    labels: Mapping[Any, tuple[str, Any]],
) -> list[str]:
    """One phrase per bad value: `argument NAME=GIVEN does not fit TYPE: why`.

    Args:
        exc: pydantic's errors; their locations start with a key of `given`.
        given: The values validated, by key.
        labels: The name to show and the type hint of each key.
    """
    # every member of a union reports; keep the errors that got deepest into
    # the value (`delay[1]`, not `delay` as a float), as those say the most
    deepest: dict[Any, int] = {}
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for error in exc.errors(include_url=False):
        key, *rest = error["loc"]
        where = (key, *(p for p in rest if isinstance(p, int)))
        deepest[key] = max(deepest.get(key, 0), len(where))
        groups.setdefault(where, []).append(error)
    phrases = []
    for (key, *indices), errors in groups.items():
        if len(indices) + 1 < deepest[key]:
            continue
        label, hint = labels[key]
        value = _at(given.get(key), indices)
        shown = f"argument {label}{''.join(f'[{i}]' for i in indices)}"
        shown += f"={short_repr(value)}"
        device = [e for e in errors if e["type"] == "labsky_device"]
        if device and (isinstance(value, str) or len(errors) == 1):
            phrases.append(f"{shown} {device[0]['ctx']['reason']}")
        elif len(errors) > 1:
            phrases.append(f"{shown} does not fit {hint_text(hint)}")
        else:
            reason = _lower(errors[0]["msg"])
            phrases.append(f"{shown} does not fit {hint_text(hint)}: {reason}")
    return phrases


def _at(value: Any, indices: Sequence[int]) -> Any:
    for index in indices:
        try:
            value = list(value)[index]
        except (IndexError, TypeError):
            return value
    return value


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def checked_plan(
    plan: Callable[..., Any], devices: Mapping[str, Any], name: str | None = None
) -> Callable[..., Any]:
    """`plan` with its arguments checked when it is called, as at the prompt.

    `scan([pdet], stage.x, -1, 1, "five")` then raises `PlanArgumentError`
    before `RE(...)` opens a run; device names given as text are resolved.
    """
    signature = plan_signature(plan)

    @functools.wraps(plan)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(args, kwargs, devices, plan_name=name)
        return plan(*bound.args, **bound.kwargs)

    return checked
