"""The tutorial runs as a reader follows it: every block, shell ones included, in order.

Python blocks run in one namespace, as typed into one interpreter; each shell
block runs exactly as written in bash at the repository's root, with the
reader's terminal replaced by no input (so `labsky shell` starts, shows its
session and leaves at the end of input). Data goes to the test's data
directory (`LABSKY_DATA_DIR`).
"""

import os
import re
import subprocess

import pytest

from tests.conftest import REPO
from tests.test_docs import SEES

pytestmark = pytest.mark.slow

#: Pages whose every block runs, the shell blocks included.
PAGES = sorted((REPO / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"```(python|sh)\n(.*?)```", re.DOTALL)

#: What each shell block prints (stdout and stderr), by its first word-pair.
SHELL_SEES = {
    "pip install": ["labsky"],
    "labsky demo": [
        "the beam is at x = 0.7",
        "plot of the scan and the fit:",
        "labsky serve --data-dir",
    ],
    "labsky shell": ["labsky session 'sim'", "simulated instruments:"],
    "labsky run": ["scan: success; stored in ", "(exit_status success, 21 events)"],
}


#: What the Python blocks print beyond tests/test_docs.py's SEES, after it.
PYTHON_SEES = {"getting-started": ["peak at x = 0.4 mm"]}


def _key(block: str) -> str:
    first = next(line for line in block.splitlines() if line.strip())
    return " ".join(first.split()[:2])


def test_pages_list_their_shell_blocks():
    for page in PAGES:
        for kind, block in BLOCK.findall(page.read_text()):
            if kind == "sh":
                assert _key(block) in SHELL_SEES, (
                    f"{page.name}: say what {block!r} prints"
                )


@pytest.mark.timeout(1500)  # the demo, a shell and a run: minutes on a loaded machine
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_block_runs_in_order(page, monkeypatch, capsys):
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    try:
        for kind, block in blocks:
            if kind == "python":
                exec(compile(block, str(page), "exec"), namespace)
                continue
            done = subprocess.run(
                ["bash", "-e", "-c", block],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                env={**os.environ, "COLUMNS": "120"},
            )
            said = done.stdout + done.stderr
            assert done.returncode == 0, f"{block}\nfailed:\n{said}"
            assert "Traceback" not in said, f"{block}\n{said}"
            position = 0
            for seen in SHELL_SEES[_key(block)]:
                found = said.find(seen, position)
                assert found >= 0, f"{block} should print {seen!r}:\n{said}"
                position = found + len(seen)
    finally:
        session = namespace.get("session")
        if session is not None:
            session.close()
    out = capsys.readouterr().out
    position = 0
    for seen in [*SEES[page.stem], *PYTHON_SEES.get(page.stem, [])]:
        found = out.find(seen, position)
        assert found >= 0, f"{page.name} should print {seen!r} after:\n{out}"
        position = found + len(seen)
