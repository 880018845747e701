import pytest

from labsky.yaml_source import YamlSyntaxError, load_yaml


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
