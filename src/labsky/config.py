"""Declarations as validated data: `devices/*.yaml` and `profiles/*/profile.yaml`.

Two pydantic models describe the files. Per-kind `params` are checked by the
model each kind registers, so a typo in a parameter fails when the file is
loaded, with the file and the line, not in the middle of a scan.
`devices_schema()` and `profile_schema()` export JSON schemas for editors.

This module sits at the bottom of labsky and imports no device code: the
kinds a devices file may name are given to it (`load_devices(path, kinds)`,
with `labsky.kind_registry.device_kinds()`), and so is the model of a
profile's `simulation:` section (`load_profile(path, simulation)`, with
`labsky.sim.SimulationConfig`).
"""

from __future__ import annotations

import difflib
import inspect
import keyword
import os
import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, Self, TypeVar, overload

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    create_model,
)

from labsky.errors import LabskyError
from labsky.kinds import Kinds
from labsky.yaml_source import Loc, YamlSource, YamlSyntaxError, load_yaml

#: Objects the session provides to factories that ask for them by name.
FIXTURES = frozenset({"path_provider", "sim_world"})

#: Names a device may not take because the IPython namespace already uses them.
RESERVED_NAMES = frozenset(
    {"RE", "run_engine", "session", "devices", "plans", "bp", "bps", "bpp", "np"}
)

#: Groups with a meaning to labsky; other group names are free for plans to use.
KNOWN_GROUPS = {
    "detectors": "default detectors of plans that take detectors",
    "baseline": "read at the start and end of every run (stream 'baseline')",
    "motors": "shown by %wa",
}

GroupName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
ModelT = TypeVar("ModelT", bound=BaseModel)
SimulationT = TypeVar("SimulationT")


class ConfigError(LabskyError, ValueError):
    """A declaration file is wrong. The message lists each problem as `file:line`.

    Attributes:
        path: The file at fault.
        problems: `(line, message)` pairs.
    """

    def __init__(self, path: Path, problems: Sequence[tuple[int, str]]):
        self.path = path
        self.problems = list(problems)
        text = "\n".join(f"{path}:{line}: {msg}" for line, msg in self.problems)
        super().__init__(text)


class _Declaration(BaseModel):
    """Fields every device declaration has, whatever its kind."""

    model_config = ConfigDict(extra="forbid")

    requires: dict[str, str] = Field(
        default_factory=dict,
        description="Named dependencies: factory argument -> declared device name.",
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        description="Groups the device belongs to: "
        + "; ".join(f"{k} ({v})" for k, v in KNOWN_GROUPS.items()),
    )
    mock: bool | None = Field(
        default=None,
        description="Connect in mock mode; unset follows the profile's `mock`.",
    )
    skip: bool = Field(default=False, description="Declared but not built.")
    description: str = Field(
        default="", description="Free text shown by `labsky check`."
    )


#: What a kind's declaration model is made of: name, summary, params model.
_KindKey = tuple[str, str, type[BaseModel]]


def _declaration_model(
    name: str, summary: str, params: type[BaseModel]
) -> type[_Declaration]:
    model = create_model(
        f"Declaration_{name}",
        __base__=_Declaration,
        __doc__=summary or f"A device of kind {name}.",
        kind=(Literal[name], Field(description=summary)),  # type: ignore[valid-type]
        params=(params, Field(default_factory=params)),
    )
    return model


def _devices_file_model(kinds: Kinds) -> type[BaseModel]:
    """The model of a devices file whose devices may be of `kinds`."""
    return _file_model(tuple((k.name, k.summary, k.params) for k in kinds.values()))


@cache
def _file_model(kinds: tuple[_KindKey, ...]) -> type[BaseModel]:
    if not kinds:
        raise ValueError("no device kinds to validate declarations against")
    models = tuple(_declaration_model(*key) for key in kinds)
    union = Annotated[
        models[0] if len(models) == 1 else _union(models),  # type: ignore[valid-type]
        Field(discriminator="kind"),
    ]
    return create_model(
        "DevicesFile",
        __config__=ConfigDict(extra="forbid"),
        __doc__="A devices declaration file: device name -> declaration.",
        devices=(dict[str, union], Field(description="Devices by name.")),  # type: ignore[valid-type]
    )


def _union(models: Iterable[type]) -> Any:
    from typing import Union

    return Union[tuple(models)]  # noqa: UP007 - built dynamically


class DeviceDeclaration(BaseModel):
    """One validated device declaration, independent of its kind.

    Attributes:
        name: The device name: YAML key, ophyd name and IPython variable.
        kind: Name of the registry entry that builds it.
        params: Validated params (the kind's own model).
        requires: Dependency argument -> device name, after defaults.
        groups: Groups it belongs to.
        mock: Explicit mock flag, or None to follow the profile.
        skip: Declared but not built.
        description: Free text.
        source: `file:line` of the declaration.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    kind: str
    params: BaseModel
    requires: dict[str, str]
    groups: tuple[str, ...]
    mock: bool | None
    skip: bool
    description: str
    source: str


def _format_loc(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _fields_at(model: Any, loc: Sequence[Any]) -> list[str]:
    """The field names of the model at `loc` inside `model` (empty if unknown).

    Follows fields, dict values, list items and tagged unions (pydantic puts
    the tag, a device's kind, in the location).
    """
    import types
    import typing

    kind: Any = model
    for part in loc:
        while typing.get_origin(kind) is Annotated:
            kind = typing.get_args(kind)[0]
        origin = typing.get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            info = kind.model_fields.get(str(part))
            if info is None:
                return []
            kind = info.annotation
        elif origin is dict:
            kind = typing.get_args(kind)[1]
        elif origin in (list, tuple, Sequence):
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [
                m
                for m in typing.get_args(kind)
                if isinstance(m, type)
                and issubclass(m, BaseModel)
                and "kind" in m.model_fields
                and typing.get_args(m.model_fields["kind"].annotation) == (part,)
            ]
            if not members:
                return []
            kind = members[0]
        else:
            return []
    for _ in range(3):  # a model may sit in an Optional or an Annotated
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return list(kind.model_fields)
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) != 1:
            return []
        kind = args[0]
    return []


def _unknown_field(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    takes = f"it takes: {', '.join(known)}" if known else "check it against the schema"
    return f"unknown field {name!r}; {hint}({takes})"


def _pydantic_problems(
    source: YamlSource,
    exc: ValidationError,
    model: Any = None,
    kinds: Iterable[str] | None = None,
) -> list[tuple[int, str]]:
    """Each error of `exc` at its line; `kinds`: the device kinds a file may name."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        # A discriminated union puts the kind's tag in the location
        # (devices.<name>.<kind>.params...); the file has no such level.
        data_loc = (*loc[:2], *loc[3:]) if len(loc) > 2 and loc[0] == "devices" else loc
        msg = error["msg"]
        if error["type"] == "union_tag_invalid":
            data_loc = (*data_loc, "kind")
            kind = str(error["input"].get("kind"))
            if kinds is not None:
                msg = _unknown_kind(kind, kinds)
            else:  # another registry's kinds (simulators): the tags pydantic lists
                tags = str(error.get("ctx", {}).get("expected_tags", ""))
                msg = _unknown_tag(kind, sorted(re.findall(r"'([^']*)'", tags)))
        elif error["type"] == "union_tag_not_found":
            msg = "missing `kind:`; every device names the kind that builds it"
        elif error["type"] == "extra_forbidden":
            field_name = str(loc[-1]) if loc else "?"
            known = _fields_at(model, loc[:-1]) if model is not None else []
            msg = _unknown_field(field_name, known)
        elif "input" in error and error["type"] not in ("missing",):
            msg = f"{msg} (got {_quote(error['input'])})"
        problems.append((source.line_of(data_loc), f"{_format_loc(data_loc)}: {msg}"))
    return problems


def _quote(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters (a bad value may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _unknown_kind(kind: str, kinds: Iterable[str]) -> str:
    unknown = _unknown_tag(kind, sorted(kinds))
    return f"{unknown} (`labsky check --kinds` describes them)"


def _unknown_tag(kind: str, known: list[str]) -> str:
    close = difflib.get_close_matches(kind, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown kind {kind!r}; {hint}known kinds: {', '.join(known)}"


def _check_graph(
    source: YamlSource, decls: dict[str, DeviceDeclaration], kinds: Kinds
) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    for name, decl in decls.items():
        line = source.line_of(("devices", name))
        if not name.isidentifier() or keyword.iskeyword(name):
            problems.append(
                (
                    line,
                    f"devices.{name}: device names must be Python identifiers "
                    "(letters, digits, underscores), e.g. 'power_meter'",
                )
            )
        if name in RESERVED_NAMES:
            problems.append(
                (
                    line,
                    f"devices.{name}: {name!r} is reserved for the session "
                    "namespace; choose another name",
                )
            )
        kind = kinds[decl.kind]
        for slot, target in decl.requires.items():
            slot_line = source.line_of(("devices", name, "requires", slot))
            if slot not in kind.dependencies:
                expected = ", ".join(kind.dependencies) or "none"
                problems.append(
                    (
                        slot_line,
                        f"devices.{name}.requires.{slot}: kind {decl.kind} has "
                        f"no dependency {slot!r} (it takes: {expected})",
                    )
                )
            elif target not in decls:
                problems.append(
                    (
                        slot_line,
                        f"devices.{name}.requires.{slot}: no device named "
                        f"{target!r} is declared in this file",
                    )
                )
            elif decls[target].skip and not decl.skip:
                problems.append(
                    (
                        slot_line,
                        f"devices.{name}.requires.{slot}: {target!r} is "
                        f"skipped; skip {name!r} too or un-skip {target!r}",
                    )
                )
        for slot in kind.dependencies:
            if slot not in decl.requires and slot not in FIXTURES:
                problems.append(
                    (
                        line,
                        f"devices.{name}: kind {decl.kind} needs {slot!r}; add "
                        f"`requires: {{{slot}: <device name>}}`",
                    )
                )
    problems.extend(_cycles(source, decls))
    return problems


def _cycles(
    source: YamlSource, decls: dict[str, DeviceDeclaration]
) -> list[tuple[int, str]]:
    state: dict[str, int] = {}
    problems: list[tuple[int, str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in decls[name].requires.values():
            if target not in decls:
                continue
            if state.get(target) == 1:
                cycle = " -> ".join([*path[path.index(target) :], target])
                problems.append(
                    (
                        source.line_of(("devices", name, "requires")),
                        f"devices.{name}.requires: dependency cycle {cycle}",
                    )
                )
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in decls:
        if name not in state:
            visit(name, [name])
    return problems


def load_devices(path: str | Path, kinds: Kinds) -> dict[str, DeviceDeclaration]:
    """Load and validate a devices declaration file.

    Args:
        path: A `devices/*.yaml` file.
        kinds: The kinds its devices may name, by name: the registry,
            `labsky.kind_registry.device_kinds()`.

    Returns:
        Declarations by device name, in file order.

    Raises:
        ConfigError: Listing every problem found, each with file and line.
    """
    path = Path(path)
    source = _load_source(path)
    if not isinstance(source.data, dict):
        raise ConfigError(
            path, [(1, "expected a mapping with a top-level `devices:` key")]
        )
    model = _devices_file_model(kinds)
    try:
        parsed = model.model_validate(
            source.data, context={"base_dir": path.parent.resolve()}
        )
    except ValidationError as exc:
        problems = _pydantic_problems(source, exc, model, kinds)
        raise ConfigError(path, problems) from None
    decls: dict[str, DeviceDeclaration] = {}
    for name, decl in parsed.devices.items():  # type: ignore[attr-defined]
        decls[name] = DeviceDeclaration(
            name=name,
            kind=decl.kind,
            params=decl.params,
            requires=dict(decl.requires),
            groups=tuple(decl.groups),
            mock=decl.mock,
            skip=decl.skip,
            description=decl.description,
            source=f"{path}:{source.line_of(('devices', name))}",
        )
    problems = _check_graph(source, decls, kinds)
    if problems:
        raise ConfigError(path, problems)
    return decls


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """Load a YAML file and validate it with a pydantic model.

    Raises:
        ConfigError: Every problem, each with the file and line.
    """
    source = _load_source(path)
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        raise ConfigError(path, _pydantic_problems(source, exc, model)) from None


def _load_source(path: Path) -> YamlSource:
    """Parse a declaration file, turning YAML syntax errors into a ConfigError."""
    try:
        return load_yaml(path)
    except YamlSyntaxError as exc:
        raise ConfigError(path, [(exc.line, exc.detail)]) from None


class TiledConfig(BaseModel):
    """Where runs are catalogued.

    Attributes:
        uri: `embedded` runs a Tiled server inside the session on loopback with
            a SQLite catalog in the data directory; an `http(s)://` URI uses a
            running server; null disables Tiled.
        api_key_env: Environment variable holding the API key of a remote server.
        container: Container (a CatalogOfBlueskyRuns) that holds the runs.
        flush_seconds: Longest time a stored row of a running scan waits
            before it is written to the catalog (one append per stream).
        stall_seconds: A call that needs the catalog (reading runs back)
            waits while registration makes progress; it gives up, saying
            the runs are stored and will appear later, when nothing was
            registered for this long.
    """

    model_config = ConfigDict(extra="forbid")

    uri: str | None = "embedded"
    api_key_env: str = "TILED_API_KEY"
    container: str = Field(default="raw", pattern=r"^[A-Za-z0-9_-]+$")
    flush_seconds: float = Field(default=0.5, gt=0, le=60)
    stall_seconds: float = Field(default=120.0, gt=0)


class RingConfig(BaseModel):
    """The Arrow ring buffer documents travel through.

    Attributes:
        directory: Where the memory-mapped ring file lives; defaults to
            `$LABSKY_RING_DIR`, else `/dev/shm` (fastest; a disk path
            survives a power cut).
        size_mb: Size of the ring in MiB (pre-faulted at start).
        slot_kb: Size of one slot in KiB: every document, and one event
            row of the widest stream (a 16384-sample trace is 64 KiB as
            float32), must fit in it; event batches are cut to fit.
    """

    model_config = ConfigDict(extra="forbid")

    directory: Path | None = None
    size_mb: int = Field(default=256, ge=1, le=65536)
    slot_kb: int = Field(default=256, ge=4, le=1048576)

    @property
    def path(self) -> Path:
        """The ring's directory: `directory`, else `$LABSKY_RING_DIR`, else /dev/shm."""
        if self.directory is not None:
            return self.directory
        return Path(os.environ.get("LABSKY_RING_DIR") or "/dev/shm")


class StorageConfig(BaseModel):
    """How the HDF5 sink writes run files.

    Attributes:
        flush_seconds: Longest time written rows wait before the run file is
            flushed (then readers, Tiled among them, see them).
        block_rows: Rows gathered per stream before they are written as one
            block (a flush writes whatever is gathered).
        stall_seconds: The RunEngine waits for the HDF5 sink when the ring is
            full (back-pressure), and a run's end waits until its file is
            complete, for as long as the sink makes progress; when it has
            stored nothing for this long, the run ends with an error saying
            so (what was published stays safe in the ring).
    """

    model_config = ConfigDict(extra="forbid")

    flush_seconds: float = Field(default=0.1, gt=0, le=60)
    block_rows: int = Field(default=65536, ge=1)
    stall_seconds: float = Field(default=60.0, gt=0)


class Profile(BaseModel, Generic[SimulationT]):
    """A `profiles/<name>/profile.yaml`: everything a session is built from.

    Relative paths are relative to the profile's directory.

    Attributes:
        name: Profile name; defaults to the directory name.
        description: One line shown at startup.
        devices: Device declaration files.
        plans: Plan modules (Python files exporting typed plans in `__all__`).
        data_dir: Where run files, the Tiled catalog and RunEngine metadata
            live; defaults to `$LABSKY_DATA_DIR/<name>`, else the user data
            directory (`~/.local/share/labsky/<name>` on Linux).
        mock: Default mock flag for devices that do not set one.
        metadata: Metadata added to every run's start document.
        tiled: Where runs are catalogued.
        ring: The ring buffer settings.
        storage: The HDF5 sink settings.
        simulation: Simulated instruments the session starts before it
            builds the devices (their endpoints fill `${sim.NAME}` in
            device params); none by default.
        connect_timeout: Seconds to wait for each device to connect.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    devices: list[Path] = Field(default_factory=list)
    plans: list[Path] = Field(default_factory=list)
    data_dir: Path | None = None
    mock: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    tiled: TiledConfig = Field(default_factory=lambda: TiledConfig())
    ring: RingConfig = Field(default_factory=lambda: RingConfig())
    storage: StorageConfig = Field(default_factory=lambda: StorageConfig())
    # The simulation owns the model of its section: Profile[SimulationConfig]
    # (labsky.sim); load_profile without it keeps the section as a mapping.
    simulation: SimulationT | None = None
    connect_timeout: float = Field(default=10.0, gt=0)
    _directory: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def directory(self) -> Path:
        """The profile's directory; relative paths are resolved against it."""
        return self._directory

    def located(self, directory: Path) -> Self:
        """Return a copy whose relative paths resolve against `directory`."""
        profile = self.model_copy()
        profile._directory = directory.resolve()
        if not profile.name:
            profile.name = directory.resolve().name
        return profile

    def resolve(self, path: Path) -> Path:
        """Return `path` made absolute against the profile directory."""
        path = path.expanduser()
        return path if path.is_absolute() else (self.directory / path).resolve()

    @property
    def device_files(self) -> list[Path]:
        """The declaration files, absolute."""
        return [self.resolve(p) for p in self.devices]

    @property
    def plan_files(self) -> list[Path]:
        """The plan modules, absolute."""
        return [self.resolve(p) for p in self.plans]

    @property
    def data_path(self) -> Path:
        """The data directory, absolute."""
        if self.data_dir is None:
            root = os.environ.get("LABSKY_DATA_DIR") or platformdirs.user_data_dir(
                "labsky"
            )
            return Path(root).expanduser() / (self.name or "default")
        return self.resolve(self.data_dir)


def find_profile(name: str) -> Path:
    """Resolve a profile name or path to its directory.

    Looks at the path itself, then `./profiles/<name>`, then
    `$LABSKY_PROFILES/<name>`.

    Raises:
        FileNotFoundError: Naming every place it looked.
    """
    candidates = [Path(name), Path("profiles") / name]
    if "LABSKY_PROFILES" in os.environ:
        candidates.append(Path(os.environ["LABSKY_PROFILES"]) / name)
    for candidate in candidates:
        if candidate.is_file() and candidate.name == "profile.yaml":
            return candidate.parent.resolve()
        if (candidate / "profile.yaml").is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no profile {name!r} (looked in {tried})")


@overload
def load_profile(path: str | Path) -> Profile[dict[str, Any]]: ...


@overload
def load_profile(
    path: str | Path, simulation: type[SimulationT]
) -> Profile[SimulationT]: ...


def load_profile(path: str | Path, simulation: type | None = None) -> Profile[Any]:
    """Load a profile from a `profile.yaml` file or the directory holding one.

    Args:
        path: The file, or its directory.
        simulation: The model of the `simulation:` section
            (`labsky.sim.SimulationConfig`); without it the section is only
            checked to be a mapping (enough for what the data directory,
            ring and catalog settings are needed for).

    Returns:
        The validated profile, with `directory` set.

    Raises:
        ConfigError: With file and line for every problem.
        FileNotFoundError: If there is no such profile.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "profile.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no profile at {path}: expected a profile.yaml file")
    source = _load_source(path)
    data = source.data or {}
    if not isinstance(data, dict):
        raise ConfigError(path, [(1, "expected a mapping of profile settings")])
    model = Profile[simulation if simulation is not None else dict[str, Any]]
    try:
        profile = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _pydantic_problems(source, exc, model)) from None
    profile = profile.located(path.parent)
    problems = [
        (source.line_of((key, i)), f"{key}.{i}: {problem}")
        for key in ("devices", "plans")
        for i, given in enumerate(getattr(profile, key))
        if (problem := _file_problem(profile, given))
    ]
    if problems:
        raise ConfigError(path, problems)
    return profile


def _file_problem(profile: Profile[Any], given: Path) -> str | None:
    """Why a file a profile names cannot be used, or None if it can."""
    try:
        path = profile.resolve(given)
        if path.is_file():
            return None
        if path.is_dir():
            return f"{path} is a folder; name a file in it"
    except (OSError, ValueError, RuntimeError) as exc:  # too long, NUL, ~nobody
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return f"{_quote(str(given))} is not a usable file name: {reason}"
    return f"no such file {path}"


def devices_schema(kinds: Kinds) -> dict[str, Any]:
    """Return the JSON schema of devices declaration files naming `kinds`."""
    schema = _devices_file_model(kinds).model_json_schema()
    schema["title"] = "labsky devices declaration"
    return schema


def profile_schema(simulation: type | None = None) -> dict[str, Any]:
    """Return the JSON schema of `profile.yaml` files.

    Args:
        simulation: The model of the `simulation:` section
            (`labsky.sim.SimulationConfig`); without it, any mapping.
    """
    model = Profile[simulation if simulation is not None else dict[str, Any]]
    schema = TypeAdapter(model).json_schema()
    # A parametrised model has no docstring of its own; keys sorted as pydantic's
    schema["description"] = inspect.cleandoc(Profile.__doc__ or "")
    schema = dict(sorted(schema.items()))
    schema["title"] = "labsky profile"
    return schema
