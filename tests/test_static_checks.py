"""ruff, pyright and import-linter, as pyproject.toml configures them: no finding."""

import pytest

from tests.static_checks import PYRIGHT, Check


@pytest.fixture(scope="session")
def pyright_check(pytestconfig):
    """The pyright run started at collection (tests/conftest.py), or one now."""
    check = pytestconfig.stash.get(PYRIGHT, None)
    return check if check is not None else Check("pyright")


@pytest.mark.parametrize("name", ["ruff check", "ruff format", "import-linter"])
def test_no_finding(name):
    code, output = Check(name).result()
    assert code == 0, f"{name} found problems:\n{output}"


@pytest.mark.timeout(960)  # a minute or two of CPU; the bound is for a hang
def test_pyright(pyright_check):
    code, output = pyright_check.result()
    assert code == 0, f"pyright found problems:\n{output}"
    assert "0 errors, 0 warnings" in output
