"""The embedded catalog's SQLite file: made whole or not at all, never left half-made.

`tiled serve catalog --init` creates the catalog's tables, then stamps the
file with its schema revision (alembic). A server killed in between (a
session killed while its server was still starting, which on a loaded
machine takes seconds) left the tables without the stamp, and every later
`--init` then failed ("cannot change into wal mode from within a
transaction"): no session, recovery or `labsky serve` could open the
catalog again. Two servers creating the same new catalog at once failed the
same way ("table nodes_closure already exists").

So the server's process makes a new catalog in a draft file of its own and
links it into place only when it is stamped (`create_whole`, before Tiled
starts): the catalog file exists complete or not at all, and the first of
two makers wins. A half-made file left by an older labsky holds no run
(Tiled registers nothing before the stamp): `set_aside_unfinished` moves it
aside (kept, never deleted) for a new one. The runs themselves are in their
HDF5 files; `labsky catalog rebuild` registers them all again if ever needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

from labsky.errors import LabskyError
from labsky.processes import pid_alive

logger = logging.getLogger(__name__)

#: Appended to the name of a catalog file set aside.
UNFINISHED_SUFFIX = ".unfinished"


class CatalogFileError(LabskyError, RuntimeError):
    """The catalog file is in a state neither Tiled nor labsky leaves."""


def _unstamped_entries(path: Path) -> int | None:
    """The entries of an unstamped catalog file; None if it is stamped or not one."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {
                name
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            if "nodes" not in tables:
                return None  # empty: Tiled creates the tables in it
            if "alembic_version" in tables:
                (stamps,) = db.execute(
                    "SELECT count(*) FROM alembic_version"
                ).fetchone()
                if stamps:
                    return None
            (entries,) = db.execute(
                "SELECT count(*) FROM nodes WHERE id != 0"
            ).fetchone()
            return entries
    except sqlite3.Error:
        return None  # not ours to judge: Tiled says what is wrong with it


def set_aside_unfinished(path: Path) -> Path | None:
    """Move a catalog file whose creation never finished out of Tiled's way.

    Args:
        path: The catalog's SQLite file (`DATA/tiled/catalog.db`).

    Returns:
        Where the file went (`catalog.db.unfinished`), or None if it was left
        in place: absent, complete, or not a catalog Tiled made.

    Raises:
        CatalogFileError: If the file has no stamp but holds entries (Tiled
            never leaves it so); it is kept in place.
    """
    if not path.is_file():
        return None
    entries = _unstamped_entries(path)
    if entries is None:
        return None
    if entries:
        raise CatalogFileError(
            f"the catalog {path} has {entries} entries but no schema stamp (no "
            "alembic_version row), which Tiled never leaves; it is kept as it "
            "is: move it aside, then `labsky catalog rebuild PROFILE` registers "
            "the run files in a new catalog"
        )
    aside = path.with_name(path.name + UNFINISHED_SUFFIX)
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(aside.with_name(aside.name + suffix))
    logger.warning(
        "the catalog %s was never finished (its Tiled server was stopped while "
        "creating it; it holds no run): moved to %s and made anew",
        path,
        aside,
    )
    return aside


def _drafts(path: Path) -> dict[Path, str]:
    """The drafts of `path` (with their journals), each with its maker's pid."""
    prefix = f".{path.name}."
    return {
        draft: draft.name.removeprefix(prefix).split(".")[0]
        for draft in path.parent.glob(f"{prefix}*.draft*")
    }


def create_whole(path: Path) -> bool:
    """Create the SQLite catalog `path` complete, if it does not exist.

    The tables are made and stamped in a draft file, which is then linked to
    `path` (a link never replaces a file: if another process made the
    catalog meanwhile, its catalog is kept and the draft dropped). Drafts of
    processes that died while making one are removed.

    Returns:
        Whether this call created the catalog.
    """
    for draft, maker in _drafts(path).items():
        if not (maker.isdigit() and pid_alive(int(maker))):
            draft.unlink(missing_ok=True)
    if path.exists():
        return False
    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import initialize_database

    draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
    url = f"sqlite+aiosqlite:///{draft}"

    async def make_tables() -> None:
        engine = create_async_engine(url)
        try:
            await initialize_database(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(make_tables())
        with warnings.catch_warnings():  # about Tiled's own alembic.ini template
            warnings.filterwarnings(
                "ignore", "No path_separator found", DeprecationWarning
            )
            stamp_head(Path(ALEMBIC_INI_TEMPLATE_PATH), Path(ALEMBIC_DIR), url)
        try:
            os.link(draft, path)
        except FileExistsError:
            return False
        return True
    finally:
        draft.unlink(missing_ok=True)
