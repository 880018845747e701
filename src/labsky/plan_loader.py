"""Load lab plan modules from `plans/*.py` by path.

Files are imported under a synthetic package name, nothing is added to
`sys.path`. Each file is its own module, `labsky_plans.<stem>_<hash of its
path>`: two profiles' `common.py` do not replace each other, and a plan found
by its name (as pickle finds it) is the one of its own file. Only functions
listed in the module's `__all__` become plans, and only if they are typed
like blueapi requires: every parameter annotated, a `-> MsgGenerator` return,
and an `md` parameter so callers can add metadata to the run. Types are read
by the plan's argument model (`labsky.plans.signature`), the one the front
ends check arguments with.
"""

from __future__ import annotations

import collections.abc
import hashlib
import importlib.machinery
import importlib.util
import inspect
import sys
import traceback
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labsky.plans import BLUESKY_PLANS, LABSKY_PLANS
from labsky.plans.signature import PlanDefinitionError, plan_signature

PACKAGE = "labsky_plans"

Plan = Callable[..., Any]


@dataclass
class PlanModule:
    """The plans of one file and what is wrong with it.

    Attributes:
        path: The file.
        plans: Valid plans by name.
        problems: Readable descriptions, each starting with `file:line`.
    """

    path: Path
    plans: dict[str, Plan] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _is_msg_generator(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return origin in (collections.abc.Generator, collections.abc.Iterator)


def plan_problems(func: Any, where: str) -> list[str]:
    """Return what keeps `func` from being a well-formed plan (empty if none)."""
    if not inspect.isgeneratorfunction(func):
        return [
            f"{where}: {getattr(func, '__name__', func)!r} is not a generator "
            "function; plans `yield from` bluesky messages"
        ]
    name = func.__name__
    problems = []
    try:
        model = plan_signature(func)
    except PlanDefinitionError as exc:
        return [f"{where}: {exc}"]
    if not _is_msg_generator(model.return_hint):
        problems.append(f"{where}: {name}: annotate the return as `-> MsgGenerator`")
    for param in model.parameters.values():
        if param.variadic:
            problems.append(
                f"{where}: {name}: *{param.name} cannot be filled from a form or the "
                "command line; name each parameter"
            )
        elif not param.typed:
            problems.append(f"{where}: {name}: parameter {param.name!r} has no type")
    if "md" not in model.parameters:
        problems.append(
            f"{where}: {name}: add `md: dict[str, Any] | None = None` and pass it "
            "to the run so callers can record metadata"
        )
    if not (func.__doc__ or "").strip():
        problems.append(f"{where}: {name}: add a docstring; users see it as help")
    return problems


def module_name_of(path: Path) -> str:
    """The module name a plan file is imported as: its stem and a path hash.

    Args:
        path: The file, resolved.
    """
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{PACKAGE}.{stem}_{digest}"


def load_plan_module(path: str | Path) -> PlanModule:
    """Import a plan file by path and collect its typed plans.

    Args:
        path: A Python file.

    Returns:
        Its plans and problems; an import error is a problem, not an exception.
    """
    path = Path(path).resolve()
    result = PlanModule(path)
    module_name = module_name_of(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        result.problems.append(f"{path}:1: not a Python module")
        return result
    if PACKAGE not in sys.modules:
        package = importlib.util.module_from_spec(
            importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        )
        package.__path__ = []
        sys.modules[PACKAGE] = package
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - reported per file
        line = _line_of(exc, path)
        result.problems.append(
            f"{path}:{line}: import failed: {type(exc).__name__}: {exc}"
        )
        sys.modules.pop(module_name, None)
        return result
    exported = getattr(module, "__all__", None)
    if exported is None:
        result.problems.append(
            f"{path}:1: define `__all__` listing the plans to expose"
        )
        return result
    for name in exported:
        func = getattr(module, name, None)
        if func is None:
            result.problems.append(
                f"{path}:1: __all__ names {name!r}, which is not defined"
            )
            continue
        line = inspect.getsourcelines(func)[1] if inspect.isfunction(func) else 1
        problems = plan_problems(func, f"{path}:{line}")
        if problems:
            result.problems.extend(problems)
        else:
            result.plans[name] = func
    return result


def _line_of(exc: BaseException, path: Path) -> int:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename) == path and frame.lineno:
            return frame.lineno
    return 1


def load_plans(
    plan_files: Iterable[str | Path],
) -> tuple[dict[str, Plan], list[PlanModule]]:
    """Every plan a session of a profile offers, and the loaded plan modules.

    bluesky's and labsky's plans come first; a profile plan that would shadow
    one of them is left out, and its module says so.

    Args:
        plan_files: The profile's plan modules (`Profile.plan_files`).
    """
    plans: dict[str, Plan] = {**BLUESKY_PLANS, **LABSKY_PLANS}
    modules = []
    for path in plan_files:
        module = load_plan_module(path)
        for name in list(module.plans):
            if name in plans:
                module.problems.append(
                    f"{path}:1: plan {name!r} shadows a plan of that name; rename it"
                )
                del module.plans[name]
        plans.update(module.plans)
        modules.append(module)
    return plans, modules
