"""What `labsky recover` and `labsky catalog rebuild` do to a profile's data directory.

Both run without a session: recovery finishes the runs a dead session left
open and registers them; a rebuild registers every run file of the data
directory again, in the catalog layout of this labsky (also the answer when a
catalog is lost). Either starts the embedded Tiled server when the profile
uses one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labsky.config import Profile
from labsky.pipeline.catalog import CatalogWriter, read_run_uid
from labsky.pipeline.control import CatalogLag, ring_path
from labsky.pipeline.holders import live_worker
from labsky.pipeline.recover import recover
from labsky.pipeline.report import RecoveryReport
from labsky.pipeline.ring.layout import wake_path
from labsky.pipeline.sink import read_open_runs
from labsky.pipeline.worker import register_pending
from labsky.processes import wait_for_exit

logger = logging.getLogger(__name__)


@contextmanager
def profile_catalog(
    profile: Profile, on_registered: Callable[[str], None] | None = None
) -> Iterator[CatalogWriter]:
    """A catalog writer into the profile's catalog (starting the embedded server)."""
    from labsky.pipeline.server import LocalTiled, remote_client, runs_container

    uri = profile.tiled.uri
    server = LocalTiled(profile.data_path) if uri == "embedded" else None

    def connect() -> Any:
        root = server.client() if server is not None else remote_client(profile.tiled)
        return runs_container(root, profile.tiled.container)

    writer = CatalogWriter(
        connect,
        profile.data_path / "runs",
        flush_seconds=profile.tiled.flush_seconds,
        on_registered=on_registered,
    )
    try:
        yield writer
    finally:
        writer.close(wait=False)
        if server is not None:
            server.close()


def recover_profile(
    profile: Profile, tiled: bool = True, without_ring: bool = False
) -> tuple[RecoveryReport, CatalogLag]:
    """Recover a profile's data directory, registering the runs in its catalog.

    This is `labsky recover`: what a session's storage worker does when it
    starts, without building devices. The ring is deleted only when
    everything in it is stored.

    Raises:
        RecoveryError: If something cannot be read (nothing is deleted).
        RingInUseError: If a live session still writes the ring.
    """
    runs_dir = profile.data_path / "runs"
    path = ring_path(profile.ring, profile.name, profile.data_path)
    worker = live_worker(runs_dir)
    if worker is not None:  # a killed session's worker still draining: let it end
        wait_for_exit(worker, 120)
    lag = CatalogLag()
    if tiled and profile.tiled.uri is not None:
        with profile_catalog(profile) as catalog:
            report = recover(path, runs_dir, catalog, without_ring=without_ring)
            register_pending(catalog, runs_dir, report.runs)
            status = catalog.sync(profile.tiled.stall_seconds)
            lag = CatalogLag(status.runs_behind, status.errors)
    else:
        report = recover(path, runs_dir, without_ring=without_ring)
    path.unlink(missing_ok=True)
    wake_path(path).unlink(missing_ok=True)
    return report, lag


def run_files(runs_dir: Path) -> list[Path]:
    """The closed run files of a data directory, oldest first."""
    still_open = {p.resolve() for p in read_open_runs(runs_dir).values()}
    files = [p for p in runs_dir.rglob("*.h5") if p.resolve() not in still_open]
    return sorted(files, key=lambda p: (p.parent.name, p.stat().st_mtime))


def rebuild_catalog(
    profile: Profile, progress: Callable[[int, int], None] | None = None
) -> CatalogLag:
    """Register every closed run file of the profile's data directory again.

    Args:
        profile: The profile whose data directory and catalog to use.
        progress: Told (done, total) as runs are registered.

    Returns:
        What could not be registered.
    """
    files = run_files(profile.data_path / "runs")
    done = [0]

    def registered(uid: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(files))

    with profile_catalog(profile, on_registered=registered) as catalog:
        for path in files:
            try:
                uid = read_run_uid(path)
            except (OSError, KeyError, ValueError) as exc:
                logger.error("not a readable run file, skipped: %s (%s)", path, exc)
                continue
            catalog.register_file(path, uid)
        status = catalog.sync(profile.tiled.stall_seconds)
    return CatalogLag(status.runs_behind, status.errors)
