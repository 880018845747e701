"""The pytest plugin (entry point `labsky`): fixtures for sessions and documents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labsky.testing.documents import DocumentCollector


@pytest.fixture
def labsky_session(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start sessions with data under `tmp_path`; all are closed at teardown.

    Call it as `labsky_session(profile, mock=True, tiled=False)`; keyword
    arguments go to `labsky.session.start`.
    """
    from labsky.session import start

    sessions = []

    def make(profile: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("data_dir", tmp_path / f"data{len(sessions)}")
        kwargs.setdefault("progress", False)
        session = start(profile, **kwargs)
        sessions.append(session)
        return session

    yield make
    for session in reversed(sessions):
        session.close()


@pytest.fixture
def collect_documents() -> DocumentCollector:
    """A validating document collector to subscribe to a RunEngine."""
    return DocumentCollector()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of the labsky checkout (skips when not run from one)."""
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "profiles").is_dir() and (candidate / "devices").is_dir():
            return candidate
    pytest.skip("not running from a labsky checkout")
