import textwrap

from labsky.plan_loader import load_plan_module


def module(tmp_path, text, name="lab.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_plan_module(path)


HEADER = """\
from typing import Any
from collections.abc import Sequence
import bluesky.plans as bp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator
"""


def test_typed_plans_in_all_are_loaded(tmp_path):
    loaded = module(
        tmp_path,
        HEADER
        + '''
__all__ = ["series"]

def series(detectors: Sequence[Readable], n: int = 3,
           md: dict[str, Any] | None = None) -> MsgGenerator[str]:
    """Count n times."""
    return (yield from bp.count(list(detectors), n, md=md))

def helper(x):
    yield x
''',
    )
    assert loaded.problems == []
    assert list(loaded.plans) == ["series"]


def test_each_rule_is_reported_with_file_and_line(tmp_path):
    loaded = module(
        tmp_path,
        HEADER
        + '''
__all__ = ["untyped", "no_md", "not_plan", "missing", "varargs"]

def untyped(detectors, md: dict | None = None) -> MsgGenerator:
    """Doc."""
    yield from bp.count(detectors, md=md)

def no_md(detectors: Sequence[Readable]) -> MsgGenerator:
    """Doc."""
    yield from bp.count(detectors)

def not_plan(x: int) -> int:
    return x

def varargs(*dets: Readable, md: dict | None = None) -> MsgGenerator:
    """Doc."""
    yield from bp.count(dets, md=md)
''',
    )
    path = tmp_path / "lab.py"
    text = "\n".join(loaded.problems)
    assert loaded.plans == {}
    assert f"{path}:9: untyped: parameter 'detectors' has no type" in text
    assert f"{path}:13: no_md: add `md: dict[str, Any] | None = None`" in text
    assert "'not_plan' is not a generator function" in text
    assert "__all__ names 'missing', which is not defined" in text
    assert "*dets cannot be filled from a form or the command line" in text


def test_import_error_and_missing_all(tmp_path):
    broken = module(tmp_path, "import os\n\nraise RuntimeError('boom')\n", "broken.py")
    assert broken.problems == [
        f"{tmp_path / 'broken.py'}:3: import failed: RuntimeError: boom"
    ]
    no_all = module(tmp_path, "x = 1\n", "noall.py")
    assert "define `__all__`" in no_all.problems[0]


def test_two_profiles_plan_files_of_one_name_stay_apart(tmp_path):
    import pickle
    import sys

    plan = (
        HEADER
        + '''
__all__ = ["{name}"]

def {name}(detectors: Sequence[Readable], md: dict[str, Any] | None = None) -> MsgGenerator:
    """Count once."""
    return (yield from bp.count(list(detectors), md=md))
'''
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = module(tmp_path, plan.format(name="series"), "a/common.py")
    second = module(tmp_path, plan.format(name="series"), "b/common.py")
    mine, theirs = first.plans["series"], second.plans["series"]
    assert mine.__module__ != theirs.__module__
    assert sys.modules[mine.__module__].__file__ == str(tmp_path / "a" / "common.py")
    assert sys.modules[theirs.__module__].__file__ == str(tmp_path / "b" / "common.py")
    # by name (pickle, the queue server, tracebacks) each finds its own file's plan
    assert pickle.loads(pickle.dumps(mine)) is mine
    assert pickle.loads(pickle.dumps(theirs)) is theirs


def test_loading_a_file_again_replaces_its_module(tmp_path):
    import sys

    first = module(tmp_path, "__all__ = []\nVERSION = 1\n", "lab.py")
    second = module(tmp_path, "__all__ = []\nVERSION = 2\n", "lab.py")
    assert first.problems == second.problems == []
    names = [
        n
        for n, m in sys.modules.items()
        if getattr(m, "__file__", None) == str(tmp_path / "lab.py")
    ]
    assert len(names) == 1 and sys.modules[names[0]].VERSION == 2
