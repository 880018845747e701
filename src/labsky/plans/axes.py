"""The `*args` of bluesky's multi-axis plans: groups that start with a motor.

`scan(detectors, *args, num=None)` takes `motor, start, stop` for each axis
(and, in its old form, `num` as the last value); `grid_scan` adds each axis'
`num` and, after the first axis, an optional `snake`; `list_scan` takes
`motor, positions`. bluesky types these `*args` as `Movable | Any`, so their
layouts are written down here and each value is checked by its role.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bluesky.plans as bp
from bluesky import protocols

from labsky.plans.argument_types import short_repr

_Role = tuple[str, Any]


@dataclass(frozen=True)
class AxesLayout:
    """How a multi-axis plan's `*args` go: groups starting with a motor.

    Attributes:
        group: The (role, type hint) of each value of a group.
        trailing_num: The last value may be `num` (`scan`'s old form), when
            `num` is not given by keyword.
        snake: Groups after the first may end with a `snake` bool (`grid_scan`).
        keywords: Type hints of named parameters that replace bluesky's,
            where those say less than the plan takes (`snake_axes` lists
            motors; `rel_scan`'s `num` has no hint).
    """

    group: tuple[_Role, ...]
    trailing_num: bool = False
    snake: bool = False
    keywords: Mapping[str, Any] = field(default_factory=dict)

    def roles(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[_Role]:
        """The role of each value.

        Raises:
            ValueError: If the values do not make whole groups, saying what
                to write.
        """
        n, size = len(args), len(self.group)
        if self.snake:
            snaking = n > size and (n - size) % (size + 1) == 0
            plain = n % size == 0
            if n and snaking and (not plain or isinstance(args[size], bool)):
                later = (*self.group, ("snake", bool))
                return list(self.group) + list(later) * ((n - size) // (size + 1))
            if n and plain:
                return list(self.group) * (n // size)
        elif n and n % size == 0:
            return list(self.group) * (n // size)
        elif n % size == 1 and n > 1 and self.trailing_num and "num" not in kwargs:
            return list(self.group) * (n // size) + [("num", int)]
        raise ValueError(f"{self.describe()}; got {n}: {_values(args)}")

    def describe(self) -> str:
        """What to write, e.g. `give motor, start, stop for each axis, then num`."""
        text = f"give {', '.join(r for r, _ in self.group)} for each axis"
        if self.snake:
            text += " (and snake after each axis but the first, or for none)"
        if self.trailing_num:
            text += ", then num (or num=)"
        return text


_MOTOR = ("motor", protocols.Movable)
_SNAKE_AXES = {"snake_axes": Sequence[protocols.Movable] | bool | None}
_SCAN = AxesLayout(
    (_MOTOR, ("start", float), ("stop", float)),
    trailing_num=True,
    keywords={"num": int | None},
)
_LIST = AxesLayout((_MOTOR, ("positions", Sequence[Any])))
_LIST_GRID = AxesLayout((_MOTOR, ("positions", Sequence[Any])), keywords=_SNAKE_AXES)
_GRID = AxesLayout(
    (_MOTOR, ("start", float), ("stop", float), ("num", int)),
    snake=True,
    keywords=_SNAKE_AXES,
)
_INNER = AxesLayout((_MOTOR, ("start", float), ("stop", float)))

#: The `*args` layouts of bluesky's multi-axis plans.
AXES_LAYOUTS: dict[Callable[..., Any], AxesLayout] = {
    bp.scan: _SCAN,
    bp.rel_scan: _SCAN,
    bp.list_scan: _LIST,
    bp.rel_list_scan: _LIST,
    bp.list_grid_scan: _LIST_GRID,
    bp.rel_list_grid_scan: _LIST_GRID,
    bp.grid_scan: _GRID,
    bp.rel_grid_scan: _GRID,
    bp.inner_product_scan: _INNER,
    bp.relative_inner_product_scan: _INNER,
}


def _values(args: Sequence[Any]) -> str:
    return ", ".join(short_repr(a) for a in args) or "nothing"
