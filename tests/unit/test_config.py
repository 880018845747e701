import json
import textwrap
from pathlib import Path

import pytest

from labsky.config import (
    ConfigError,
    RingConfig,
    devices_schema,
    load_devices,
    load_profile,
    profile_schema,
)
from labsky.kind_registry import device_kinds
from labsky.sim import SimulationConfig
from tests.conftest import REPO

KINDS = device_kinds()


def write(tmp_path, text, name="devices.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path):
    with pytest.raises(ConfigError) as info:
        load_devices(path, KINDS)
    return str(info.value), info.value.problems


def test_good_file_loads_with_defaults_and_sources(tmp_path):
    path = write(
        tmp_path,
        """\
        devices:
          world: {kind: sim_pattern}
          pdet:
            kind: sim_point_detector
            requires: {pattern_generator: world}
            params: {num_channels: 2}
            groups: [detectors]
            mock: true
    """,
    )
    decls = load_devices(path, KINDS)
    assert list(decls) == ["world", "pdet"]
    pdet = decls["pdet"]
    assert pdet.params.num_channels == 2  # type: ignore[attr-defined]
    assert pdet.params.acquire_time == 0.01  # default filled  # type: ignore[attr-defined]
    assert pdet.groups == ("detectors",)
    assert pdet.mock is True
    assert pdet.source == f"{path}:3"


def test_unknown_kind_names_line_and_suggests(tmp_path):
    path = write(
        tmp_path,
        """\
        devices:
          stage:
            kind: sim_stag
    """,
    )
    text, problems = errors_of(path)
    assert problems[0][0] == 3
    assert f"{path}:3: devices.stage.kind: unknown kind 'sim_stag'" in text
    assert "did you mean 'sim_stage'" in text


def test_every_param_problem_is_reported_with_its_line(tmp_path):
    path = write(
        tmp_path,
        """\
        devices:
          world: {kind: sim_pattern}
          pdet:
            kind: sim_point_detector
            requires: {pattern_generator: world}
            params:
              num_channels: 0
              colour: red
          m:
            kind: sim_motor
            params: {velocity: fast}
    """,
    )
    text, problems = errors_of(path)
    assert [line for line, _ in problems] == [7, 8, 11]
    assert (
        "params.num_channels: Input should be greater than or equal to 1 (got 0)"
        in text
    )
    assert "params.colour: unknown field 'colour'" in text
    assert "params.velocity: Input should be a valid number" in text


def test_dependency_problems(tmp_path):
    path = write(
        tmp_path,
        """\
        devices:
          pdet:
            kind: sim_point_detector
          stage:
            kind: sim_stage
            requires: {pattern_generator: wrld, speed: world}
    """,
    )
    text, problems = errors_of(path)
    assert (
        "devices.pdet: kind sim_point_detector needs 'pattern_generator'; add " in text
    )
    assert (
        f"{path}:6: devices.stage.requires.pattern_generator: no device named 'wrld'"
        in text
    )
    assert "has no dependency 'speed' (it takes: pattern_generator)" in text


def test_skipped_dependency_must_skip_dependents(tmp_path):
    path = write(
        tmp_path,
        """\
        devices:
          world: {kind: sim_pattern, skip: true}
          stage: {kind: sim_stage, requires: {pattern_generator: world}}
    """,
    )
    text, _ = errors_of(path)
    assert "'world' is skipped; skip 'stage' too" in text


def test_names_must_be_identifiers_and_not_reserved(tmp_path):
    path = write(
        tmp_path,
        """\
        devices:
          power-meter: {kind: sim_motor}
          RE: {kind: sim_motor}
    """,
    )
    text, problems = errors_of(path)
    assert (
        2,
        "devices.power-meter: device names must be Python identifiers "
        "(letters, digits, underscores), e.g. 'power_meter'",
    ) in problems
    assert "'RE' is reserved" in text


def test_missing_kind_and_not_a_mapping(tmp_path):
    text, _ = errors_of(write(tmp_path, "devices:\n  m: {params: {}}\n"))
    assert ":2: devices.m: missing `kind:`" in text
    text, _ = errors_of(write(tmp_path, "- just a list\n", "list.yaml"))
    assert "list.yaml:1: expected a mapping" in text


def test_profile_missing_files_are_reported_with_lines(tmp_path):
    (tmp_path / "p").mkdir()
    write(tmp_path, "devices:\n  - nowhere.yaml\nplans: [gone.py]\n", "p/profile.yaml")
    with pytest.raises(ConfigError) as info:
        load_profile(tmp_path / "p")
    text = str(info.value)
    assert "profile.yaml:2: devices.0: no such file" in text
    assert "profile.yaml:3: plans.0: no such file" in text


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("x" * 300 + ".yaml", "is not a usable file name: "),  # too long
        ('"a\\0b.yaml"', "is not a usable file name: "),  # a NUL
        ("~nobody-here-at-all/devices.yaml", "is not a usable file name: "),
        (".", "is a folder; name a file in it"),
    ],
    ids=["too long", "NUL", "unknown user", "folder"],
)
def test_profile_files_that_cannot_be_used_are_errors_at_their_line(
    tmp_path, entry, problem
):
    (tmp_path / "p").mkdir()
    write(tmp_path, f"description: x\ndevices:\n  - {entry}\n", "p/profile.yaml")
    with pytest.raises(ConfigError) as info:
        load_profile(tmp_path / "p")
    [(line, text)] = info.value.problems
    assert line == 3 and text.startswith("devices.0: ") and problem in text
    assert len(text) <= 300


def test_a_huge_bad_value_is_quoted_in_part(tmp_path):
    path = write(
        tmp_path,
        f"devices:\n  m: {{kind: sim_motor, description: [{'1, ' * 5000}1]}}\n",
    )
    text, [(line, problem)] = errors_of(path)
    assert line == 2 and "description: Input should be a valid string" in problem
    assert "chars)" in problem and len(problem) < 300


def test_profile_unknown_setting(tmp_path):
    (tmp_path / "p").mkdir()
    write(tmp_path, "description: x\ntiled:\n  url: embedded\n", "p/profile.yaml")
    with pytest.raises(
        ConfigError, match=r"profile.yaml:3: tiled.url: unknown field 'url'"
    ):
        load_profile(tmp_path / "p")


def test_profile_paths_resolve_against_its_directory():
    profile = load_profile(REPO / "profiles" / "sim")
    assert profile.name == "sim"
    assert profile.device_files == [
        REPO / "devices" / "sim.yaml",
        REPO / "devices" / "sim-table.yaml",
    ]
    assert all(p.is_file() for p in profile.plan_files)


def test_ring_directory_is_the_profiles_else_labsky_ring_dir_else_dev_shm(
    monkeypatch, tmp_path
):
    from labsky.pipeline import ring_path

    monkeypatch.delenv("LABSKY_RING_DIR", raising=False)
    assert RingConfig().path == Path("/dev/shm")
    monkeypatch.setenv("LABSKY_RING_DIR", str(tmp_path))
    assert ring_path(RingConfig(), "sim", tmp_path).parent == tmp_path
    assert RingConfig(directory=Path("/srv/ring")).path == Path("/srv/ring")


def test_committed_schemas_are_current():
    for name, schema in (
        ("devices", devices_schema(KINDS)),
        ("profile", profile_schema(SimulationConfig)),
    ):
        committed = REPO / "src" / "labsky" / "schemas" / f"{name}.schema.json"
        assert json.loads(committed.read_text()) == schema, (
            f"{committed} is stale: run `labsky schema --out src/labsky/schemas`"
        )


def test_devices_schema_describes_each_kind():
    schema = devices_schema(KINDS)
    kinds = {
        d["properties"]["kind"]["const"]
        for d in schema["$defs"].values()
        if "kind" in d.get("properties", {})
    }
    assert {"sim_stage", "sim_point_detector", "sim_blob_detector"} <= kinds


def test_yaml_syntax_error_becomes_a_config_error_with_its_line(tmp_path):
    path = write(tmp_path, "devices:\n  m:\n    kind: [unclosed\n")
    text, problems = errors_of(path)
    assert problems[0][0] == 4
    assert text.startswith(f"{path}:4: invalid YAML: expected ','")


def test_declarations_are_checked_against_the_kinds_given(tmp_path):
    from labsky.kinds import DeviceKind

    only = {"lamp": DeviceKind("lamp", lambda params: None, summary="A lamp.")}
    path = write(tmp_path, "devices:\n  l: {kind: lamp}\n  m:\n    kind: sim_motor\n")
    with pytest.raises(ConfigError) as info:
        load_devices(path, only)
    assert info.value.problems == [
        (
            4,
            "devices.m.kind: unknown kind 'sim_motor'; known kinds: lamp "
            "(`labsky check --kinds` describes them)",
        )
    ]
    assert list(load_devices(write(tmp_path, "devices:\n  l: {kind: lamp}\n"), only))
    assert devices_schema(only)["$defs"]["Declaration_lamp"]["description"] == "A lamp."


def test_simulation_section_is_checked_by_the_model_given(tmp_path):
    (tmp_path / "p").mkdir()
    write(
        tmp_path,
        "simulation:\n  instruments:\n    meter: {kind: newport1830}\n",
        "p/profile.yaml",
    )
    with pytest.raises(ConfigError) as info:
        load_profile(tmp_path / "p", SimulationConfig)
    assert info.value.problems == [
        (
            3,
            "simulation.instruments.meter.kind: unknown kind 'newport1830'; did you "
            "mean 'newport1830c'? known kinds: ell14, esp300, maitai, newport1830c, "
            "redpitaya",
        )
    ]
    # Without the simulation's model (reading the data directory, say), the
    # section is only a mapping, kept as written.
    raw = load_profile(tmp_path / "p")
    assert raw.simulation == {"instruments": {"meter": {"kind": "newport1830"}}}
    write(tmp_path, "description: x\nsimulation: 5\n", "p/profile.yaml")
    with pytest.raises(ConfigError, match=r"profile.yaml:2: simulation: .*dictionary"):
        load_profile(tmp_path / "p")


def test_a_profile_loaded_with_the_simulation_model_has_it_typed():
    profile = load_profile(REPO / "profiles" / "sim", SimulationConfig)
    assert isinstance(profile.simulation, SimulationConfig)
    assert profile.simulation.instruments["meter"].kind == "newport1830c"
    assert profile.simulation.world.laser.emission is True
