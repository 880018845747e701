"""The tutorial runs as a reader follows it: every block, shell ones included, in order.

Python blocks run in one namespace, as typed into one interpreter; each shell
block runs exactly as written in bash at the repository's root, with the
reader's terminal replaced by no input (so `labsky shell` starts, shows its
session and leaves at the end of input). Data goes to the test's data
directory (`LABSKY_DATA_DIR`). The shell runs in a virtual environment of the
test's own that sees this Python's packages: its `pip install -e` installs
labsky there, never over the environment the rest of the suite imports from
(which other tests use at the same time).
"""

import os
import re
import subprocess
import sys
import venv

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


@pytest.fixture(scope="module")
def reader_shell(tmp_path_factory):
    """The environment of the reader's shell: a venv over this Python's packages."""
    home = tmp_path_factory.mktemp("reader") / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(home)
    (
        home / "bin" / "pip"
    ).write_text(  # pip itself from this Python, as --system-site-packages
        f'#!/bin/sh\nexec {home / "bin" / "python"} -m pip "$@"\n'
    )
    (home / "bin" / "pip").chmod(0o755)
    assert sys.prefix != str(home)
    return {
        **os.environ,
        "VIRTUAL_ENV": str(home),
        "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "120",
    }


@pytest.mark.timeout(1500)  # the demo, a shell and a run: minutes on a loaded machine
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_block_runs_in_order(page, monkeypatch, capsys, reader_shell):
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
                # the test's data directory (the module's shell was made before it)
                env={**reader_shell, "LABSKY_DATA_DIR": os.environ["LABSKY_DATA_DIR"]},
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
