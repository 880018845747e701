"""The catalog file is made whole or not at all; a half-made one is set aside."""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from tiled.catalog.core import initialize_database

from labsky.pipeline.catalog_file import (
    CatalogFileError,
    create_whole,
    set_aside_unfinished,
)
from labsky.pipeline.server import LocalTiled, runs_container
from labsky.testing.waiting import wait_until

MAKER = (
    "import sys; from pathlib import Path; from labsky.pipeline.catalog_file "
    "import create_whole; print(create_whole(Path(sys.argv[1])))"
)


def stamped(path):
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


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


def test_a_maker_killed_mid_creation_leaves_no_catalog(tmp_path):
    # Tiled's own --init, killed here, left tables without their stamp
    path = tmp_path / "catalog.db"
    maker = subprocess.Popen([sys.executable, "-c", MAKER, str(path)])
    draft = wait_until(lambda: list(tmp_path.glob(".catalog.db.*.draft")), "a draft")
    os.kill(maker.pid, signal.SIGKILL)
    maker.wait()
    assert not path.exists() or stamped(path)
    assert create_whole(path) and stamped(path)
    assert not draft[0].exists()  # the dead maker's draft is cleared away


def test_of_two_makers_of_one_catalog_one_wins_and_both_go_on(tmp_path):
    # two servers starting on one new catalog failed ("table ... already exists")
    path = tmp_path / "catalog.db"
    makers = [
        subprocess.Popen(
            [sys.executable, "-c", MAKER, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    made = sorted(maker.communicate(timeout=120)[0].strip() for maker in makers)
    assert [maker.returncode for maker in makers] == [0, 0]
    assert made == ["False", "True"]  # exactly one made it
    assert stamped(path) and not list(tmp_path.glob(".catalog.db.*.draft"))
    inode = path.stat().st_ino
    assert not create_whole(path) and path.stat().st_ino == inode  # never replaced
