"""The static checks pyproject.toml configures, as commands the suite runs.

pyright takes a minute or more; `tests/conftest.py` starts it as soon as the
suite is collected, so it runs beside the other tests and
`tests/test_static_checks.py` only collects its result (under pytest-xdist the
worker that runs its test starts it and waits: pyright takes that worker's
share of the machine). It is not niced: on a loaded machine a niced pyright
got a few percent of a core and missed every bound.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def script(name: str) -> str:
    """A console script of this Python's environment (the dev extra's tools)."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        raise FileNotFoundError(
            f"{name} is not installed next to {sys.executable}: "
            "install the dev extra (pip install -e '.[dev]')"
        )
    return str(path)


#: The commands, by name; each must exit 0 and print no finding.
COMMANDS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "--no-fix", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "--diff", "."],
    "pyright": [sys.executable, "-m", "pyright"],
    "import-linter": ["lint-imports", "--no-cache"],
}


class Check:
    """One check's process, started now; `result()` waits for its output."""

    def __init__(self, name: str):
        command = list(COMMANDS[name])
        if command[0] == "lint-imports":
            command[0] = script("lint-imports")
        self.name = name
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def result(self, timeout: float = 900.0) -> tuple[int, str]:
        """The exit code and the output (stdout and stderr).

        The timeout catches a hung check, never a slow one: it is far above
        what pyright takes on a loaded 2-core machine (about 2 minutes).
        """
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            raise TimeoutError(
                f"{self.name} did not finish within {timeout:g} s:\n{output}"
            ) from None
        return self.process.returncode, output

    def stop(self) -> None:
        """Kill it if it still runs (a run that never asked for the result)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


#: The pyright run started at collection, in the pytest config's stash.
PYRIGHT = pytest.StashKey["Check"]()


def start_pyright(session: pytest.Session) -> None:
    """Start pyright now if its test is selected (not for --collect-only).

    Not in pytest-xdist's workers: each collects every test, and only one of
    them runs test_pyright (which then starts pyright itself, beside the
    other worker's tests).
    """
    if session.config.option.collectonly or hasattr(session.config, "workerinput"):
        return
    if any(
        i.nodeid.endswith("test_static_checks.py::test_pyright") for i in session.items
    ):
        session.config.stash[PYRIGHT] = Check("pyright")


def stop_pyright(session: pytest.Session) -> None:
    """Kill the early pyright run if its test never collected it."""
    check = session.config.stash.get(PYRIGHT, None)
    if check is not None:
        check.stop()
