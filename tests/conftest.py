from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Never write into the user's data directory from a test."""
    monkeypatch.setenv("LABSKY_DATA_DIR", str(tmp_path_factory.mktemp("labsky-data")))
