"""Load YAML while remembering where every value came from.

Validation errors are only useful to a person if they name the file and the
line, so declarations are loaded through `load_yaml`, which returns the data
together with a map from each value's path (as in a pydantic error `loc`) to
its line in the file.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlSource:
    """The parsed content of one YAML file and the line of each value in it.

    Attributes:
        path: The file the data came from.
        data: The parsed content.
        lines: 1-based line numbers keyed by location (mapping keys and list
            indexes from the document root).
    """

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int:
        """Return the line of the deepest known location that contains `loc`."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1


class YamlSyntaxError(ValueError):
    """A YAML file could not be parsed; the message names the file and line.

    Attributes:
        path: The file.
        line: 1-based line of the problem.
        problem: What is wrong, without the location.
    """

    def __init__(self, path: Path, line: int, problem: str):
        super().__init__(f"{path}:{line}: invalid YAML: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[arg-type]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = loc + (str(key_node.value),)
            _record_lines(value_node, key, lines)
            # Point errors about a key (unknown field, bad kind) at the key itself.
            lines[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, loc + (index,), lines)


def load_yaml(path: str | Path) -> YamlSource:
    """Parse a YAML file and record the line of every value.

    Args:
        path: The file to read.

    Returns:
        The parsed data with its line map.

    Raises:
        FileNotFoundError: If the file does not exist.
        YamlSyntaxError: If the file is not valid YAML, naming file and line.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        # Parse once: the node tree gives the lines, the same tree the data.
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or str(exc)
        raise YamlSyntaxError(path, line, problem) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return YamlSource(path=path, data=data, lines=lines)
