"""Plan forms: one per plan, generated from its argument model.

Each field takes a YAML value, as `labsky run`'s `--arg NAME=VALUE` does, and
the arguments are checked with the same model (`labsky.plans.signature`,
against the declared device names) before the item goes to the queue, so the
page refuses a bad value with the CLI's message. Device parameters list the
devices that fit, as the daemon's worker computed them for the queue server
(its `plans_allowed`).
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from labsky.plans.argument_types import hint_text, items_of
from labsky.plans.signature import PlanArgumentError, plan_signature, unknown_plan

_NOT_NUMBERS = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}


def parse_value(text: str) -> Any:
    """A field's YAML value, numbers like `1.46e6` as numbers (as `labsky run`)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in _NOT_NUMBERS else value
        except ValueError:
            return value
    return value


def _is_callable_hint(hint: Any) -> bool:
    for part in typing.get_args(hint) or (hint,):
        origin = typing.get_origin(part) or part
        if origin in (collections.abc.Callable, Callable):
            return True
    return False


def _default_text(default: Any) -> str:
    if default is inspect.Parameter.empty or default is None:
        return ""
    value = getattr(default, "value", default)  # an enum's value
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


class PlanForms:
    """The forms of a profile's plans and the check of a filled-in form.

    Args:
        plans: The plans by name (`labsky.plan_loader.load_plans`).
        device_names: The declared device names (not skipped).
    """

    def __init__(self, plans: Mapping[str, Callable[..., Any]], device_names: set[str]):
        self.plans = dict(plans)
        self.device_names = set(device_names)
        self.allowed: dict[str, dict[str, list[str]]] = {}  # plan -> param -> devices
        self.offered: set[str] | None = None  # what device fields offer, if limited
        self._forms: list[dict[str, Any]] | None = None

    def set_allowed(self, plans_allowed: Mapping[str, Any]) -> None:
        """Take the fitting devices of each parameter from the queue server."""
        allowed: dict[str, dict[str, list[str]]] = {}
        for name, plan in plans_allowed.items():
            for param in plan.get("parameters", []):
                devices = (param.get("annotation") or {}).get("devices") or {}
                names = sorted({n for group in devices.values() for n in group})
                if names:
                    allowed.setdefault(name, {})[param["name"]] = names
        self.allowed = allowed
        self.plans = {n: p for n, p in self.plans.items() if n in plans_allowed}
        self._forms = None

    def limit_options(self, names: set[str]) -> None:
        """Offer only these devices in device fields (devices and their movables).

        The queue server lists every signal that fits a protocol (a signal is
        Readable); a form offers the devices and the parts that move.
        """
        self.offered = set(names)
        self._forms = None

    def forms(self) -> list[dict[str, Any]]:
        """Every plan's form, by name."""
        if self._forms is None:
            self._forms = [self._form(n) for n in sorted(self.plans)]
        return self._forms

    def _form(self, name: str) -> dict[str, Any]:
        plan = self.plans[name]
        signature = plan_signature(plan)
        doc = inspect.getdoc(plan) or ""
        fields = []
        for param in signature.parameters.values():
            if _is_callable_hint(param.hint) and not param.required:
                continue  # per_step and the like: not for a form
            ref = param.device
            kind = {
                inspect.Parameter.VAR_POSITIONAL: "args",
                inspect.Parameter.VAR_KEYWORD: "kwargs",
                inspect.Parameter.KEYWORD_ONLY: "keyword",
            }.get(param.kind, "positional")
            options = self.allowed.get(name, {}).get(param.name, [])
            if self.offered is not None:
                options = [n for n in options if n in self.offered]
            fields.append(
                {
                    "name": param.name,
                    "kind": kind,
                    "hint": hint_text(param.hint),
                    "required": param.required,
                    "default": _default_text(param.default),
                    "device": ref is not None and kind != "args",
                    "many": items_of(param.annotation) is not None,
                    "options": options,
                }
            )
        return {
            "name": name,
            "summary": doc.split("\n\n")[0],
            "doc": doc,
            "fields": fields,
            "axes": signature.axes is not None,
        }

    def check(
        self, name: str, values: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments of a filled-in form.

        Args:
            name: The plan.
            values: Field name -> YAML text (empty: left out) or a value
                (a list of device names from a multiple choice).

        Raises:
            PlanArgumentError: The CLI's message: the plan, each bad
                argument, what was given and what it takes.
        """
        if name not in self.plans:
            raise unknown_plan(name, self.plans)
        signature = plan_signature(self.plans[name])
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        unknown = set(values) - set(signature.parameters)
        if unknown:
            raise PlanArgumentError(
                f"{name}: no parameter {', '.join(sorted(unknown))}; it takes "
                f"{', '.join(signature.parameters)}"
            )
        has_args = any(
            p.kind is inspect.Parameter.VAR_POSITIONAL
            for p in signature.parameters.values()
        )
        for param in signature.parameters.values():
            raw = values.get(param.name)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if has_args and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
                    if param.required:
                        raise PlanArgumentError(f"{name}: {param.name} is required")
                    break
                continue
            value = parse_value(raw) if isinstance(raw, str) else raw
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                if not isinstance(value, list):
                    raise PlanArgumentError(
                        f"{name}: {param.name}: write a list, e.g. [stage.x, -1, 1]"
                    )
                args.extend(value)
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                if not isinstance(value, dict):
                    raise PlanArgumentError(
                        f"{name}: {param.name}: write a mapping, e.g. {{key: value}}"
                    )
                kwargs.update(value)
            elif has_args and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
                args.append(value)
            else:
                kwargs[param.name] = value
        signature.bind(args, kwargs, names=self.device_names, plan_name=name)
        return args, kwargs
