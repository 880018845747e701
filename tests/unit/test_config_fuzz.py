"""Mutated declaration files: a `file:line` ConfigError or success, at once.

Copies of the repository's device files, command tables and profiles are
mutated (bytes inserted, deleted, duplicated or flipped, YAML tokens and
pathological snippets spliced in) and loaded the way `labsky check` loads
them. Any exception other than ConfigError is a traceback the user would
see; an example that runs for seconds is a hang (a timer interrupts it).
"""

import os
import shutil
import signal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labsky import config
from labsky.config import ConfigError, load_profile
from labsky.devices.declarative import load_table
from labsky.kind_registry import device_kinds
from labsky.sim import SimulationConfig
from tests.conftest import REPO

KINDS = device_kinds()


def load_devices(path):
    """What `labsky check` loads a devices file with: the whole registry."""
    return config.load_devices(path, KINDS)


DEVICE_FILES = sorted((REPO / "devices").glob("*.yaml"))
TABLES = sorted(  # command tables (*.visa.yaml are pyvisa-sim's files)
    p
    for p in (REPO / "devices" / "instruments").glob("*.yaml")
    if not p.name.endswith(".visa.yaml")
)
PROFILES = sorted((REPO / "profiles").glob("*/profile.yaml"))

#: Seconds after which an example counts as a hang.
HANG = 5.0

TOKENS = [
    b"&a ", b"*a", b"*b", b"<<: *a\n", b"[", b"]", b"{", b"}", b": ", b"- ",
    b"\t", b"\x00", b"\x07", b"\x1b", b"\xff", b"\xc3", b"\xef\xbb\xbf",
    b"!!binary ", b"!!python/object:os.system ", b"!!timestamp ", b"!!bool ",
    b"!!int ", b"!!float ", b"!!set ", b"!!omap ", b"!foo ", b"? ", b"'", b'"',
    b"\\", b"#", b"%YAML 1.1\n", b"---\n", b"...\n", b"~", b"null", b"1e400",
    b"-.inf", b".nan", b"0x", b"0o9", b"2001-13-45", b"\n  ", b"\n", b"${sim.x}",
    b'"\\0"', b"~nobody-here/x", b"..", b"/", b"x" * 300, b"9" * 5000,
]  # fmt: skip
SNIPPETS = [
    b"[" * 600,
    b"{a: " * 300,
    b"".join(b" " * i + b"k:\n" for i in range(200)),
    b"&a [&b [*a]]",
    b"x: &a [1, 2, 3, 4, 5, 6, 7, 8]\n"
    + b"".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 8)}]\n".encode()
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ),
]

position = st.floats(0, 1, exclude_max=True)
mutation = st.one_of(
    st.tuples(st.just("insert"), position, st.sampled_from(TOKENS + SNIPPETS)),
    st.tuples(st.just("bytes"), position, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), position, st.integers(1, 200)),
    st.tuples(st.just("duplicate"), position, st.integers(1, 200)),
    st.tuples(st.just("flip"), position, st.integers(0, 255)),
)


#: Values put in place of a value of a valid file (the result stays YAML).
ODD_VALUES = st.one_of(
    st.sampled_from(
        [
            None, True, 0, -1, 2**70, 1e308, float("nan"), float("inf"), "", "\x00",
            "..", "/", "/dev/null", "~nobody-here/x", "x" * 5000, "${sim.nope}",
            "${", "$${x}", "tcp://", "tcp://host:99999", "::", "@sim", "a@sim",
            "COM1", [], {}, [[]], {"kind": "ell14"}, {"devices": {}}, [None],
        ]
    ),
    st.text(max_size=20),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip


def replace_values(data: bytes, picks: list, values: list) -> bytes:
    """Put odd values at some places of a file's data (keys included)."""
    tree = yaml.safe_load(data)
    for pick, value in zip(picks, values, strict=False):
        node, parents = tree, []
        while isinstance(node, dict | list) and node:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = keys[int(pick * len(keys)) % len(keys)]
            parents.append((node, key))
            node = node[key]
            pick = (pick * 7.31) % 1
        if not parents:
            break
        # mostly a leaf (the params deep inside), sometimes a whole branch
        parent, key = parents[len(parents) - 1 - int(pick**4 * len(parents))]
        if isinstance(parent, dict) and isinstance(value, str) and pick < 0.2:
            parent[value] = parent.pop(key)  # rename a key
        else:
            parent[key] = value
    return yaml.safe_dump(tree, allow_unicode=True).encode()


def mutate(data: bytes, mutations: list) -> bytes:
    for op, where, arg in mutations:
        at = int(where * (len(data) + 1))
        if op in ("insert", "bytes"):
            data = data[:at] + arg + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + arg :]
        elif op == "duplicate":
            data = data[:at] + data[at : at + arg] + data[at:]
        elif op == "flip" and at < len(data):
            data = data[:at] + bytes([data[at] ^ arg]) + data[at + 1 :]
    return data


class HangError(Exception):
    """The example ran longer than HANG seconds."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A scratch copy of the repository's layout (relative paths still resolve)."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "devices").mkdir()
    (root / "devices" / "instruments").symlink_to(REPO / "devices" / "instruments")
    for name in ("plans", "src"):
        (root / name).symlink_to(REPO / name)
    (root / "profiles" / "fuzzed").mkdir(parents=True)
    for path in DEVICE_FILES:
        shutil.copy(path, root / "devices" / path.name)
    (root / "tables").mkdir()
    for path in TABLES:
        shutil.copy(path, root / "tables" / path.name)
    for path in TABLES + DEVICE_FILES:  # warm the models and kinds
        (load_table if path in TABLES else load_devices)(path)
    return root


@pytest.fixture
def hang_alarm():
    def expire(signum, frame):
        raise HangError(f"no answer within {HANG} s")

    previous = signal.signal(signal.SIGALRM, expire)
    yield lambda: signal.setitimer(signal.ITIMER_REAL, HANG)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def only_config_errors(load, path, *, arm) -> None:
    arm()
    try:
        load(path)
    except ConfigError as exc:
        assert exc.problems and all(line >= 1 for line, _ in exc.problems)
        assert str(exc).startswith(f"{exc.path}:")
    except FileNotFoundError as exc:  # a profile's own file gone: not mutated
        raise AssertionError(f"unexpected {exc!r}") from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


FUZZ = settings(  # LABSKY_FUZZ_EXAMPLES=5000 for a longer campaign
    max_examples=int(os.environ.get("LABSKY_FUZZ_EXAMPLES", "120")),
    deadline=None,  # the timer is the deadline, so a hang is caught mid-way
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(st.sampled_from(DEVICE_FILES), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_device_files_give_config_errors_only(
    lab, hang_alarm, original, mutations
):
    path = lab / "devices" / f"fuzzed-{original.name}"
    path.write_bytes(mutate(original.read_bytes(), mutations))
    only_config_errors(load_devices, path, arm=hang_alarm)


@FUZZ
@given(st.sampled_from(TABLES), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_command_tables_give_config_errors_only(
    lab, hang_alarm, original, mutations
):
    path = lab / "tables" / f"fuzzed-{original.name}"
    path.write_bytes(mutate(original.read_bytes(), mutations))
    only_config_errors(load_table, path, arm=hang_alarm)


def check_profile(path):
    """What `labsky check` loads: the profile, then its declaration files."""
    for devices in load_profile(path, SimulationConfig).device_files:
        load_devices(devices)


@FUZZ
@given(st.sampled_from(PROFILES), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_profiles_give_config_errors_only(lab, hang_alarm, original, mutations):
    path = lab / "profiles" / "fuzzed" / "profile.yaml"
    path.write_bytes(mutate(original.read_bytes(), mutations))
    only_config_errors(check_profile, path, arm=hang_alarm)


@FUZZ
@given(
    st.sampled_from(DEVICE_FILES + TABLES + PROFILES),
    st.lists(position, min_size=1, max_size=3),
    st.lists(ODD_VALUES, min_size=1, max_size=3),
)
def test_odd_values_in_valid_yaml_give_config_errors_only(
    lab, hang_alarm, original, picks, values
):
    if original in PROFILES:
        path, load = lab / "profiles" / "fuzzed" / "profile.yaml", check_profile
    elif original in TABLES:
        path, load = lab / "tables" / f"odd-{original.name}", load_table
    else:
        path, load = lab / "devices" / f"odd-{original.name}", load_devices
    path.write_bytes(replace_values(original.read_bytes(), picks, values))
    only_config_errors(load, path, arm=hang_alarm)
