"""Python blocks in the tutorial and how-to pages run, in order, per page."""

import os
import re

import pytest

from tests.conftest import REPO

PAGES = sorted((REPO / "docs").glob("tutorials/*.md")) + sorted(
    (REPO / "docs").glob("how-to/*.md")
)
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_python_blocks_run(page, monkeypatch, capsys):
    blocks = BLOCK.findall(page.read_text())
    if not blocks:
        pytest.skip("no python blocks")
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(page), "exec"), namespace)  # noqa: S102
    finally:
        session = namespace.get("session")
        if session is not None and session.tiled is not None:
            session.close()
    assert capsys.readouterr().out


def test_bad_devices_example_reports_lines(capsys):
    from labsky.config import ConfigError, load_devices

    with pytest.raises(ConfigError) as info:
        load_devices(REPO / "tests" / "data" / "bad-devices.yaml")
    assert [line for line, _ in info.value.problems] == [5, 9]
    assert os.fspath(REPO / "tests" / "data" / "bad-devices.yaml") in str(info.value)
