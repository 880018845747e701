"""Python blocks in the how-to pages run, in order, per page.

The tutorials run whole, shell blocks included, in tests/test_tutorial.py
(which reads what their Python blocks print from `SEES` here).
"""

import os
import re

import pytest

from tests.conftest import REPO

PAGES = sorted((REPO / "docs").glob("how-to/*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)

#: What a reader following each page sees printed (each line of it, in order).
SEES = {
    "getting-started": [
        "labsky session 'sim'",
        "success",
        "'pdte' is not a device of this session",
        "[-2.  -1.8 -1.6 -1.4 -1.2]",
    ],
    "add-an-instrument-in-yaml": [
        "Newport 1830-C optical power meter signals: power, wavelength",
        "{'psu': 0.0,",
        "{'psu': 5.0,",
        "{'psu': 10.0,",
    ],
    "declare-a-device": ["bad-devices.yaml:5:", "bad-devices.yaml:9:"],
    "query-from-another-machine": ["1 1 2 1", "stage-x"],
    "reconnect-an-instrument": ["meter", "['meter']", " W"],
    "run-a-red-pitaya": ["resonance at 1.50"],
    "run-the-daemon": ["devices:", "run uids:", "refused:"],
    "write-a-plan": ["] []"],
}


def _param(page):
    """A page that starts a session or a daemon is an end-to-end test: slow."""
    text = page.read_text()
    slow = "start(" in text or "Daemon(" in text
    return pytest.param(page, id=page.stem, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("page", [_param(page) for page in PAGES])
def test_python_blocks_run(page, monkeypatch, capsys):
    """The page's blocks run in order and print what the page says they do."""
    if page.parent.name == "tutorials":
        pytest.skip("run with its shell blocks, in order, by tests/test_tutorial.py")
    blocks = BLOCK.findall(page.read_text())
    if not blocks:
        pytest.skip("no python blocks")
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(page), "exec"), namespace)
    finally:
        session = namespace.get("session")
        if session is not None and session.tiled is not None:
            session.close()
    out = capsys.readouterr().out
    assert page.stem in SEES, f"say in SEES what {page.name} prints"
    position = 0
    for seen in SEES[page.stem]:
        found = out.find(seen, position)
        assert found >= 0, (
            f"{page.name} should print {seen!r} after:\n{out[:position]}\n---\n{out}"
        )
        position = found + len(seen)


def test_bad_devices_example_reports_lines(capsys):
    from labsky.config import ConfigError, load_devices
    from labsky.kind_registry import device_kinds

    with pytest.raises(ConfigError) as info:
        load_devices(REPO / "tests" / "data" / "bad-devices.yaml", device_kinds())
    assert [line for line, _ in info.value.problems] == [5, 9]
    assert os.fspath(REPO / "tests" / "data" / "bad-devices.yaml") in str(info.value)
