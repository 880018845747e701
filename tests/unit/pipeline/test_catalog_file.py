"""A catalog file whose creation was interrupted is set aside, never left to block."""

import asyncio
import sqlite3
from contextlib import closing

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from tiled.catalog.core import initialize_database

from labsky.pipeline.catalog_file import CatalogFileError, set_aside_unfinished
from labsky.pipeline.server import LocalTiled, runs_container


def interrupted_catalog(path):
    """What a Tiled server killed while creating its catalog leaves: the tables,
    without the schema stamp it writes next."""
    path.parent.mkdir(parents=True)

    async def create():
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        await initialize_database(engine)
        await engine.dispose()

    asyncio.run(create())


def test_a_catalog_whose_creation_was_interrupted_is_made_anew(tmp_path):
    # every later start failed: "cannot change into wal mode from within a
    # transaction" (a recovery after a session killed as its server started)
    path = tmp_path / "tiled" / "catalog.db"
    interrupted_catalog(path)
    server = LocalTiled(tmp_path)
    client = server.client()
    try:
        runs = runs_container(client, "runs")
        runs.create_container("a-run", metadata={"start": {"uid": "a-run"}})
        assert list(runs) == ["a-run"]
    finally:
        client.context.close()
        server.close()
    assert (tmp_path / "tiled" / "catalog.db.unfinished").is_file()  # kept
    assert set_aside_unfinished(path) is None  # the new one is complete


def test_an_unstamped_catalog_holding_entries_is_kept_and_refused(tmp_path):
    path = tmp_path / "tiled" / "catalog.db"
    interrupted_catalog(path)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO nodes (id, parent, key, structure_family, metadata, specs)"
            " VALUES (1, 0, 'a-run', 'container', '{}', '[]')"
        )
    with pytest.raises(
        CatalogFileError,
        match=r"1 entries but no schema stamp.*"
        r"labsky catalog rebuild",
    ):
        set_aside_unfinished(path)
    assert path.is_file() and not path.with_name("catalog.db.unfinished").exists()


def test_what_is_not_an_unfinished_catalog_is_left_alone(tmp_path):
    assert set_aside_unfinished(tmp_path / "absent.db") is None
    (tmp_path / "empty.db").touch()
    assert set_aside_unfinished(tmp_path / "empty.db") is None
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 100)
    assert set_aside_unfinished(tmp_path / "garbage.db") is None  # Tiled says why
    assert (tmp_path / "garbage.db").is_file()
