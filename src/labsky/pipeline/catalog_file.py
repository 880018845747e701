"""The embedded catalog's SQLite file: a creation Tiled never finished is set aside.

`tiled serve catalog --init` creates the catalog's tables, then stamps the
file with its schema revision (alembic). A server killed in between (a
session killed while its server was still starting, which on a loaded
machine takes seconds) leaves the tables without the stamp, and every later
`--init` then fails ("cannot change into wal mode from within a
transaction"): no session, recovery or `labsky serve` could open the
catalog again. Tiled registers nothing in a file it has not stamped, so such
a file holds no run; it is moved aside (kept, never deleted) and Tiled
creates the catalog anew. The runs themselves are in their HDF5 files;
`labsky catalog rebuild` registers them all again if ever needed.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from labsky.errors import LabskyError

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
