"""How the `labsky` command parses its words and prints its help.

Typer's defaults get three things wrong for labsky: a negative number given
as a plan argument (`scan ... stage.x -2 2`) is taken for an option; help
text is read as Rich markup, so `"[pdet]"` in an example disappears; and the
usage line and option table print `{profile}` and `<bool>` where a user
expects `PROFILE` and nothing. The classes here fix that for every command.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup


def is_number(token: str) -> bool:
    """Whether a command-line word is a number (`-2`, `-1.5e-3`, `-inf`)."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def _escaped(text: str | None) -> str | None:
    return None if text is None else escape(text)


def _tidy_params(params: list[Any]) -> None:
    """Plain help for parameters: brackets kept, no type shown for flags."""
    for param in params:
        if getattr(param, "_labsky_tidy", False):
            continue
        param._labsky_tidy = True
        param.help = _escaped(param.help)
        if param.param_type_name == "option" and getattr(param, "is_flag", False):
            param.metavar = param.metavar or ""  # a flag takes no value: no type
        elif param.param_type_name == "argument" and param.metavar is None:
            param.metavar = param.name.upper()


class LabskyCommand(TyperCommand):
    """A command whose help shows `PROFILE PLAN [ARGS]...` and keeps `[pdet]`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.help = _escaped(self.help)
        self.short_help = _escaped(self.short_help)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _tidy_params(params)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = param.metavar or param.name.upper()
            piece = name if param.required else f"[{name}]"
            pieces.append(piece + ("..." if param.nargs != 1 else ""))
        return pieces


class PlanCommand(LabskyCommand):
    """A command taking plan arguments, where a negative number is a value.

    `labsky run sim scan "[pdet]" stage.x -2 2 --arg num=21` must read `-2`
    as the start of the scan. Before parsing, every word that is a number
    (and is not the value of an option such as `--arg`) moves behind a `--`
    with the other positional words, in order; the options (known or not:
    a misspelled one is still refused with a did-you-mean) stay in front.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args:
            return super().parse_args(ctx, args)
        takes_value = {
            name
            for param in self.get_params(ctx)
            if param.param_type_name == "option" and not getattr(param, "is_flag", 0)
            for name in (*param.opts, *param.secondary_opts)
        }
        options: list[str] = []
        positional: list[str] = []
        words: Iterator[str] = iter(args)
        for word in words:
            if word == "--":
                positional.extend(words)
                break
            if word.startswith("-") and word != "-" and not is_number(word):
                options.append(word)
                if word in takes_value:  # `--arg -2`: the value is the next word
                    value = next(words, None)
                    if value is not None:
                        options.append(value)
            else:
                positional.append(word)
        return super().parse_args(ctx, [*options, "--", *positional])


class LabskyGroup(TyperGroup):
    """A command group whose help keeps brackets and shows no type for `--help`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.help = _escaped(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _tidy_params(params)
        return params


class LabskyTyper(typer.Typer):
    """`typer.Typer` whose groups and commands use the classes above."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", LabskyGroup)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["cls"] = kwargs.get("cls") or LabskyCommand
        return super().command(*args, **kwargs)
