import re

import pytest

from labsky.yaml_source import YamlSyntaxError, load_yaml
from tests.conftest import REPO


def test_lines_point_at_keys_and_values(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(
        "devices:\n  m:\n    kind: x\n    params:\n      a: 1\n  n: [1, 2]\n"
    )
    source = load_yaml(path)
    assert source.data == {
        "devices": {"m": {"kind": "x", "params": {"a": 1}}, "n": [1, 2]}
    }
    assert source.line_of(("devices", "m", "kind")) == 3
    assert source.line_of(("devices", "m", "params", "a")) == 5
    assert source.line_of(("devices", "n", 1)) == 6
    # unknown locations fall back to the nearest known parent
    assert source.line_of(("devices", "m", "params", "zz")) == 4


def test_duplicate_key_is_an_error_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("devices:\n  m: {kind: a}\n  m: {kind: b}\n")
    with pytest.raises(
        YamlSyntaxError, match=r"dup.yaml:3: .*duplicate key 'm'.*line 2"
    ):
        load_yaml(path)


def test_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("devices:\n  m:\n    kind: [unclosed\n")
    with pytest.raises(YamlSyntaxError, match=r"bad.yaml:\d+: invalid YAML"):
        load_yaml(path)


# -- files that once gave tracebacks or hung `labsky check` (issue 16) --------

ALIAS_BOMB = "".join(
    [
        "x-lol:\n",
        '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n',
        *(
            f"  {b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
            for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "devices:\n  m: {kind: sim_motor, description: *i}\n",
    ]
)

BAD_FILES = {
    # name: (file content, line the error must name, what it must say)
    "control character": (
        "devices:\n  m:\n    kind: sim_\x07motor\n",
        3,
        r"character '\\x07' \(U\+0007\) is not allowed",
    ),
    "invalid UTF-8": (
        b"devices:\n  m: {kind: sim_motor}\n  n: {kind: \xff\xfe}\n",
        3,
        "byte 0xff is not UTF-8",
    ),
    "nesting 1000 deep": (
        "devices:\n  m:\n    kind: sim_motor\n    params: "
        + "[" * 1000
        + "]" * 1000
        + "\n",
        4,
        "nested more than 50 levels deep",
    ),
    "block nesting 1000 deep": (
        "devices:\n" + "".join(f"{' ' * i}k{i}:\n" for i in range(1, 1000)),
        51,
        "nested more than 50 levels deep",
    ),
    "alias bomb": (ALIAS_BOMB, 6, "expands to more than 20,000 values"),
    "alias loop": ("devices: &d\n  m: *d\n", 1, "refers to the collection itself"),
    "bad timestamp": ("devices:\n  m: {kind: sim_motor, x: 2001-13-45}\n", 2, "month"),
    "bad explicit tag": ("devices:\n  m: !!bool maybe\n", 2, "cannot read"),
    "unhashable key": ("devices:\n  ? [a, b]\n  : 1\n", 2, "unhashable"),
}


@pytest.fixture
def time_limit():
    """Fail (instead of hanging) when the code under test runs over `seconds`."""
    import signal

    def expire(signum, frame):
        raise TimeoutError("took too long: a hang")

    previous = signal.signal(signal.SIGALRM, expire)

    def arm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_an_error_at_its_line_within_a_second(case, tmp_path, time_limit):
    import time

    from labsky.config import ConfigError, load_devices
    from labsky.kind_registry import device_kinds

    content, line, message = BAD_FILES[case]
    path = tmp_path / "devices.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    kinds = device_kinds()
    load_devices(REPO / "devices" / "sim.yaml", kinds)  # build the models first
    time_limit(10)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_devices(path, kinds)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    [(got_line, problem)] = info.value.problems
    assert got_line == line, problem
    assert re.search(message, problem), problem
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert len(str(info.value)) < 400


def test_labsky_check_reports_an_alias_bomb_at_once(tmp_path):
    import subprocess
    import sys

    (tmp_path / "devices.yaml").write_text(ALIAS_BOMB)
    (tmp_path / "profile.yaml").write_text("devices: [devices.yaml]\n")
    done = subprocess.run(
        [sys.executable, "-m", "labsky", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{tmp_path / 'devices.yaml'}:6: " in done.stderr
    assert "Traceback" not in done.stderr
