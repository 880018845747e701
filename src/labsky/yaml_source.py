"""Load YAML while remembering where every value came from.

Validation errors are only useful to a person if they name the file and the
line, so declarations are loaded through `load_yaml`, which returns the data
together with a map from each value's path (as in a pydantic error `loc`) to
its line in the file.

Whatever the file holds, loading it either returns or raises a
`YamlSyntaxError` naming the file and the line, quickly: bytes that are not
UTF-8, control characters, values the YAML types refuse (`!!bool maybe`),
nesting deeper than `MAX_DEPTH` and aliases that expand to more than
`MAX_VALUES` values (an "alias bomb") or into themselves are refused before
anything walks the data.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.scanner import ScannerError

from labsky.errors import LabskyError

Loc = tuple[str | int, ...]

#: Deepest nesting of mappings and lists a declaration may have (the real
#: files need fewer than 10 levels; Python's recursion limit is near 500).
MAX_DEPTH = 50
#: Most values a file may hold once its aliases are expanded.
MAX_VALUES = 20_000


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


class YamlSyntaxError(LabskyError, ValueError):
    """A YAML file could not be parsed; the message names the file and line.

    Attributes:
        path: The file.
        line: 1-based line of the problem.
        problem: What is wrong, without the location.
    """

    def __init__(self, path: Path, line: int, problem: str, what: str = "invalid YAML"):
        super().__init__(f"{path}:{line}: {what}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem
        self.detail = f"{what}: {problem}"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, deep nesting and bad values."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803
        """Refuse `[`/`{` nested past `MAX_DEPTH` as soon as it is read.

        The scanner looks up to 1024 characters ahead for a possible key, so
        a line of brackets would cost it a second before the composer saw
        the first collection.
        """
        if self.flow_level >= MAX_DEPTH:
            raise ScannerError(None, None, _too_deep(), self.get_mark())
        super().fetch_flow_collection_start(TokenClass)  # type: ignore[misc]

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose a node, refusing collections nested deeper than `MAX_DEPTH`."""
        if not self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            return super().compose_node(parent, index)  # type: ignore[misc]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(
                    None, None, _too_deep(), self.peek_event().start_mark
                )
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct a value; a value its tag refuses is an error at its line."""
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[misc]
        except yaml.YAMLError:
            raise
        except Exception as exc:  # noqa: BLE001 - any refusal is the file's fault
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value as {tag}: {exc}", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[arg-type]
            try:
                hash(key)
            except TypeError:
                continue  # SafeConstructor refuses it, at its line
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _too_deep() -> str:
    return (
        f"nested more than {MAX_DEPTH} levels deep; a declaration needs far "
        "fewer (is a bracket left open?)"
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuse aliases that loop, nest too deep or expand past `MAX_VALUES`.

    An alias is the very node it names, so the node tree is a graph. Each
    collection's expanded size and height are counted once (memoised), so
    this is linear in the file however often its aliases multiply it; an
    alias always names an earlier node, so only a loop finds one unfinished.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height)
    unfinished: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        if not isinstance(node, yaml.CollectionNode):
            return 1, 0
        key = id(node)
        if key in done:
            return done[key]
        if key in unfinished:
            raise YamlSyntaxError(
                path,
                _line(node),
                "an alias inside this collection refers to the collection "
                "itself (a loop); a declaration cannot contain itself",
            )
        unfinished.add(key)
        values, height = 1, 0
        for child in _children(node):
            child_values, child_height = measure(child)
            values += child_values
            height = max(height, child_height)
            if values > MAX_VALUES:
                raise YamlSyntaxError(
                    path,
                    _line(node),
                    f"this collection expands to more than {MAX_VALUES:,} values "
                    "through its aliases (*name); declarations need far fewer",
                )
        height += 1
        if height > MAX_DEPTH:
            raise YamlSyntaxError(path, _line(node), _too_deep() + " through aliases")
        unfinished.discard(key)
        done[key] = values, height
        return values, height

    measure(root)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


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
        YamlSyntaxError: If the file cannot be read or is not valid YAML (see
            the module docstring), naming file and line.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        character = chr(exc.character) if isinstance(exc.character, int) else "?"
        raise YamlSyntaxError(
            path,
            text.count("\n", 0, exc.position) + 1,
            f"character {character!r} (U+{ord(character):04X}) is not allowed in "
            "YAML; remove it (control characters can be written as \\x.. "
            "escapes inside double quotes)",
        ) from None
    try:
        # Parse once: the node tree gives the lines, the same tree the data.
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or str(exc)
        raise YamlSyntaxError(path, line, problem) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(path, 1, str(exc)) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return YamlSource(path=path, data=data, lines=lines)


def _read_text(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 are an error at their line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise YamlSyntaxError(path, 1, str(reason), what="cannot read it") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(
            path,
            raw.count(b"\n", 0, exc.start) + 1,
            f"byte {raw[exc.start]:#04x} is not UTF-8 text; save the file as UTF-8",
        ) from None
