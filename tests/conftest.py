from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Never write into the user's data directory from a test."""
    monkeypatch.setenv("LABSKY_DATA_DIR", str(tmp_path_factory.mktemp("labsky-data")))


def pytest_collection_finish(session):
    """Start pyright as soon as the suite is collected: it runs beside the tests."""
    from tests.static_checks import start_pyright

    start_pyright(session)


def pytest_sessionfinish(session):
    from tests.static_checks import stop_pyright

    stop_pyright(session)
