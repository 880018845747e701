"""How runs end when something goes wrong: Ctrl-C, a dead sink, a profile in use, a dead catalog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import pytest

from labsky.config import load_profile
from labsky.pipeline import ProfileInUseError, StorageError, ring_path
from labsky.pipeline.format import EVENTS, batch_kind
from labsky.pipeline.holders import live_worker
from labsky.pipeline.ring import RingCorruptError, RingReader
from labsky.processes import wait_for_exit
from labsky.testing.waiting import wait_until

from ..conftest import REPO

pytestmark = pytest.mark.slow


def write_profile(tmp_path, tiled="null"):
    profile = tmp_path / "endlab"
    profile.mkdir()
    (profile / "profile.yaml").write_text(
        textwrap.dedent(
            f"""
            devices: [{REPO / "devices" / "sim.yaml"}]
            data_dir: {tmp_path / "data"}
            mock: false
            tiled: {{uri: {tiled}}}
            ring: {{directory: {tmp_path / "ring"}}}
            """
        )
    )
    return profile


def published(ring):
    """Event rows published into a ring so far (0 before it exists)."""
    try:
        reader = RingReader(ring, start=0)
    except (FileNotFoundError, RingCorruptError):  # not there, or being made
        return 0
    try:
        return sum(
            b.batch.num_rows
            for b in reader.read_available()
            if batch_kind(b.batch) == EVENTS
        )
    finally:
        reader.close()


def test_one_ctrl_c_in_labsky_run_aborts_cleanly(tmp_path):
    profile = write_profile(tmp_path, tiled="embedded")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labsky",
            "run",
            str(profile),
            "count",
            "[pdet]",
            "--arg",
            "num=200",
            "--arg",
            "delay=0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The summary comes first; then the run is going.
        for line in process.stdout:
            if line.startswith("labsky session"):
                break
        runs = tmp_path / "data" / "runs"
        ring = ring_path(load_profile(profile).ring, "endlab", tmp_path / "data")
        wait_until(lambda: published(ring) >= 2, "two events in the ring")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert (
        lines[-1].startswith("aborted by Ctrl-C: ") and "exit_status abort" in lines[-1]
    )
    assert "Traceback" not in err and "RE.resume" not in err
    [path] = runs.rglob("*.h5")
    assert str(path) in lines[-1]
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["stop"])["exit_status"] == "abort"
    assert not ring.exists()  # everything stored: the ring is gone
    from labsky.pipeline.server import LocalTiled, runs_container

    server = LocalTiled(tmp_path / "data")
    try:
        [run] = runs_container(server.client(), "raw").values()
        assert run.metadata["stop"]["exit_status"] == "abort"
    finally:
        server.close()


HOLDER = textwrap.dedent(
    """
    import sys
    from labsky.session import start

    session = start(sys.argv[1], progress=False)
    print("started", flush=True)
    sys.stdin.readline()
    session.close()
    """
)


def test_a_second_session_on_a_profile_in_use_names_the_holder(tmp_path):
    from labsky.session import start

    profile = write_profile(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(profile)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "started"
        with pytest.raises(ProfileInUseError) as refused:
            start(profile, progress=False)
        message = str(refused.value)
        assert f"process {holder.pid}" in message and "--data-dir" in message
        assert "recover" not in message  # that would be the wrong advice
    finally:
        holder.stdin.close()
        holder.wait(60)


def test_a_sink_that_dies_ends_the_run_naming_the_cause(labsky_session, tmp_path):
    import bluesky.plans as bp

    session = labsky_session(write_profile(tmp_path))
    pdet = session.devices["pdet"]
    session.run("count", ["pdet"], num=2)
    # The next run's day folder cannot be made: the sink fails on its start.
    [day] = [p for p in session.runs_dir.iterdir() if p.is_dir() and p.name[0] == "2"]
    for run_file in day.iterdir():
        run_file.rename(tmp_path / run_file.name)
    day.rmdir()
    day.write_text("not a folder")
    with pytest.raises(
        StorageError, match="runs cannot be stored: .*File exists|Not a directory"
    ):
        session.run_engine(bp.count([pdet], num=50, delay=0.05))
    assert session.run_engine.state == "idle"


KILLED = textwrap.dedent(
    """
    import sys
    import bluesky.plans as bp
    from labsky.session import start

    session = start(sys.argv[1], progress=False)
    session.catalogued()
    print("started", flush=True)
    session.run_engine(bp.count([session.devices["pdet"]], num=10**6, delay=0.01))
    """
)


def test_the_worker_of_a_killed_session_does_not_wait_for_its_dead_catalog(tmp_path):
    profile = write_profile(tmp_path, tiled="embedded")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(profile)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "started"
    runs = tmp_path / "data" / "runs"
    wait_until(lambda: list(runs.rglob("*.h5")), "the run's file")
    worker = live_worker(runs)
    assert worker is not None
    os.kill(child.pid, signal.SIGKILL)  # its embedded Tiled server dies with it
    child.wait()
    child.stdout.close()
    # It stores what was published and exits; the catalog's share waits for the
    # next session (pending marks), instead of retrying a server that is gone.
    assert wait_for_exit(worker, 20)
    pending = list((tmp_path / "data" / "runs" / ".catalog-pending").iterdir())
    assert len(pending) == 1


def test_labsky_run_succeeds_beside_two_cpu_bound_processes(tmp_path):
    """Stored is not catalogued: a loaded machine makes the catalog lag, not fail."""
    profile = write_profile(tmp_path, tiled="embedded")
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
    ]
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "labsky",
                "run",
                str(profile),
                "count",
                "[pdet]",
                "--arg",
                "num=5",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "success" in done.stdout
    [path] = (tmp_path / "data" / "runs").rglob("*.h5")
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["stop"])["exit_status"] == "success"
        assert f["primary/seq_num"].shape == (5,)
