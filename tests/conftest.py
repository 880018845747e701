import os
import shutil
import tempfile
from pathlib import Path

import pytest

from labsky.pipeline.holders import recorded_writer
from labsky.pipeline.ring.layout import wake_path
from labsky.processes import pid_alive

REPO = Path(__file__).resolve().parents[1]
#: Where the suite's rings go: a folder of its own, removed when it ends.
RING_ROOT = (
    Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
)
_SUITE_PREFIX = "labsky-suite-"
_RING_DIR = pytest.StashKey[Path]()


def pytest_configure(config):
    """Give the whole run (every xdist worker, every subprocess) one ring folder.

    Each xdist worker gets a folder of its own inside it, so that what one
    worker's test leaves is not taken for another's.

    Sessions that a test kills keep their ring for recovery, as they should;
    in `/dev/shm` such rings hold memory until a reboot. Here they go into a
    folder that the run removes at its end (and a later run, if this one was
    killed), so the suite never eats the machine's memory.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "LABSKY_RING_DIR" in os.environ:  # inside the controller's folder
        ring_dir = Path(os.environ["LABSKY_RING_DIR"]) / worker
        ring_dir.mkdir(exist_ok=True)
        os.environ["LABSKY_RING_DIR"] = str(ring_dir)
        return
    for old in RING_ROOT.glob(f"{_SUITE_PREFIX}*"):
        pid = old.name.removeprefix(_SUITE_PREFIX).partition("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    ring_dir = Path(
        tempfile.mkdtemp(prefix=f"{_SUITE_PREFIX}{os.getpid()}-", dir=RING_ROOT)
    )
    os.environ["LABSKY_RING_DIR"] = str(ring_dir)
    config.stash[_RING_DIR] = ring_dir


def pytest_report_header(config):
    """Say where the rings go and how much room is there (each session needs its size)."""
    ring_dir = config.stash.get(_RING_DIR, None)
    if ring_dir is None:
        return None
    stat = os.statvfs(ring_dir)
    free = stat.f_bavail * stat.f_frsize / 2**30
    return f"labsky rings: {ring_dir} ({free:.1f} GiB free)"


def pytest_unconfigure(config):
    ring_dir = config.stash.get(_RING_DIR, None)
    if ring_dir is not None:
        shutil.rmtree(ring_dir, ignore_errors=True)


def _writer_dead(ring: Path) -> bool:
    """Whether the ring is complete and the process that wrote it has ended.

    A ring still being created has no header yet: it is not taken for dead.
    """
    pid = recorded_writer(ring)
    return pid is not None and pid != os.getpid() and not pid_alive(pid)


@pytest.fixture(autouse=True)
def _no_ring_left_behind():
    """Fail a test that leaves the ring of a session that never closed.

    A session that closes removes its ring, and recovery removes the ring of
    one that died; a ring left over holds its size in memory (`/dev/shm`)
    until someone runs `labsky recover`. The ring is removed, then the test
    fails naming it (Daemon.close once left one in two closes).
    """
    ring_dir = Path(os.environ["LABSKY_RING_DIR"])
    before = set(ring_dir.glob("*.ring"))
    yield
    left = [r for r in set(ring_dir.glob("*.ring")) - before if _writer_dead(r)]
    for ring in left:
        ring.unlink(missing_ok=True)
        wake_path(ring).unlink(missing_ok=True)
    if left:
        pytest.fail(
            "the test left the rings of sessions that neither closed nor were "
            f"recovered: {', '.join(r.name for r in left)}"
        )


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
