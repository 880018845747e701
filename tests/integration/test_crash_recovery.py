"""kill -9 of a session in the middle of a scan, then `labsky recover`."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from tiled.queries import Key

from labsky.config import load_profile
from labsky.pipeline import ring_path
from labsky.pipeline.ring import RingReader
from labsky.pipeline.ring.layout import CURSORS_OFFSET
from labsky.pipeline.server import LocalTiled, runs_container
from labsky.testing.waiting import wait_until

from ..conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import sys
    import bluesky.plans as bp
    from labsky.session import start

    session = start(sys.argv[1], progress=False)
    print("started", flush=True)
    session.run_engine(bp.count([session.devices["stage"]], num=1000000, md={"sample": "crash"}))
    """
)


def write_profile(tmp_path):
    profile = tmp_path / "crashlab"
    profile.mkdir()
    (profile / "profile.yaml").write_text(
        textwrap.dedent(
            f"""
            devices: [{REPO / "devices" / "sim.yaml"}]
            data_dir: {tmp_path / "data"}
            mock: true
            ring: {{directory: {tmp_path / "ring"}, size_mb: 64, slot_kb: 16}}
            storage: {{flush_seconds: 30}}
            """
        )
    )
    return profile


def committed_cursor(path):
    """The HDF5 sink's cursor, read from the ring header (cursor 0)."""
    with path.open("rb") as f:
        f.seek(CURSORS_OFFSET)
        return int.from_bytes(f.read(8), "little")


def events_in_ring(path, start):
    reader = RingReader(path, start=start)
    rows = {}
    for item in reader.read_available():
        meta = item.batch.schema.metadata
        if meta[b"kind"] == b"events" and meta[b"stream"] == b"primary":
            for seq, value in zip(
                item.batch.column("seq_num").to_pylist(),
                item.batch.column("time").to_pylist(),
                strict=True,
            ):
                rows[seq] = value
    reader.close()
    return rows


def recover_with_the_cli(profile_dir, replayed):
    result = subprocess.run(
        [sys.executable, "-m", "labsky", "recover", str(profile_dir)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "closed 1 runs" in result.stdout
    assert ("replayed 0 ring batches" in result.stdout) != replayed


def recover_by_starting_a_session(profile_dir, replayed):
    from labsky.session import start

    with start(profile_dir, progress=False) as session:
        assert len(session.pipeline.recovered.runs) == 1
        assert (session.pipeline.recovered.batches > 0) == replayed


def wait_gone(path, timeout=60):
    wait_until(lambda: not path.exists(), f"{path} removed", timeout)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("killed", "recover"),
    [("session", recover_by_starting_a_session), ("everything", recover_with_the_cli)],
)
def test_kill_minus_nine_mid_scan_loses_nothing(tmp_path, killed, recover):
    """kill -9 of the session: its storage worker stores everything published;
    kill -9 of session and worker (as in a power cut with the ring on disk):
    recovery replays the ring. Either way recovery closes the run, and the
    file and the catalog hold every event published before the kill."""
    profile_dir = write_profile(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(profile_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "started", process.stderr.read()
    runs_dir = tmp_path / "data" / "runs"
    # Let the scan run. Files are flushed on a 30 s bound or when half the ring
    # (2048 slots of 16 KiB) is uncommitted, so hundreds of rows are only in
    # the ring when the kill comes.
    profile = load_profile(profile_dir)
    path = ring_path(profile.ring, profile.name, profile.data_path)
    wait_until(
        lambda: (
            path.exists() and len(events_in_ring(path, committed_cursor(path))) > 500
        ),
        "500 events in the ring that are not yet in the run file",
        every=0.5,
    )
    worker = int((runs_dir / "storage-worker.pid").read_text())
    os.kill(process.pid, signal.SIGKILL)
    if killed == "everything":
        os.kill(worker, signal.SIGKILL)
    process.wait()
    if killed == "session":  # its storage worker drains the ring, then exits
        wait_gone(runs_dir / "storage-worker.pid")

    # What was published before the kill: every event batch still in the ring.
    published = events_in_ring(path, None)
    assert len(published) > 500
    [run_file] = runs_dir.rglob("*.h5")
    with h5py.File(run_file, "r", swmr=True) as f:
        stored = f.get("primary/seq_num")  # no datasets before the first block
        on_disk_before = 0 if stored is None else stored.shape[0]
        assert "stop" not in f.attrs
    if killed == "session":  # the worker outlived its session and stored it all
        assert on_disk_before == max(published)
    else:
        assert on_disk_before < max(published)  # the kill really left rows behind

    recover(profile_dir, replayed=killed == "everything")

    with h5py.File(run_file, "r") as f:  # a clean file: opens without SWMR
        seq = f["primary/seq_num"][:]
        times = f["primary/time"][:]
        stop = json.loads(f.attrs["stop"])
        assert f["primary/data/stage-x"].shape == seq.shape
    last = max(published)
    np.testing.assert_array_equal(seq, np.arange(1, last + 1))
    recovered = dict(zip(seq.tolist(), times.tolist(), strict=True))
    assert all(recovered[s] == t for s, t in published.items())
    assert stop["exit_status"] == "fail" and "recovered" in stop["reason"]
    assert stop["num_events"] == {"primary": last, "baseline": 1}

    # The catalog shows the recovered run with its stop document and every row.
    server = LocalTiled(tmp_path / "data")
    try:
        runs = runs_container(server.client(), "raw")
        (run,) = runs.search(Key("start.sample") == "crash").values()
        assert run.metadata["stop"]["exit_status"] == "fail"
        assert run["primary"]["stage-x"].shape == (last,)
    finally:
        server.close()

    # A second recovery finds nothing to do.
    again = subprocess.run(
        [sys.executable, "-m", "labsky", "recover", str(profile_dir), "--no-tiled"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.stdout.strip() == "nothing to recover", again.stdout + again.stderr
