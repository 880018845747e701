"""Runs reach HDF5 and Tiled while they go on; `labsky serve` serves them again."""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import h5py
import httpx
import numpy as np
import pytest
from bluesky_tiled_plugins.queries import TimeRange
from tiled.client import from_uri
from tiled.queries import FullText, Key

from labsky.pipeline.server import runs_container
from labsky.processes import wait_for_exit

from ..conftest import REPO

SIM = REPO / "profiles" / "sim"


def slow_scan(det, motor, points, gate):
    """Read `points` positions, then wait inside the run until `gate` is set."""

    @bpp.run_decorator(md={"sample": "live-Si", "purpose": "watch it grow"})
    def inner():
        for i in range(points):
            yield from bps.mv(motor, i)
            yield from bps.trigger_and_read([det, motor])
        yield from bps.wait_for([lambda: asyncio.to_thread(gate.wait, 120)])

    return (yield from inner())


def test_a_run_is_visible_in_tiled_while_it_runs(labsky_session):
    session = labsky_session(SIM)
    session.catalogued()  # the catalog server is up (it starts beside the session)
    url, key = session.tiled.url, session.tiled.api_key
    seen, errors = [], []
    gate = threading.Event()  # set once the watcher saw every row

    def watch():
        runs = runs_container(from_uri(url, api_key=key), "raw")
        while not gate.is_set():
            try:
                found = runs.search(Key("start.sample") == "live-Si")
                for run in found.values():
                    if "primary" in run and "stage-x" in run["primary"]:
                        values = run["primary"]["stage-x"].read().tolist()
                        stopped = bool(run.metadata.get("stop"))
                        seen.append((values, stopped))
                        if len(values) == 5:
                            gate.set()
            except Exception as exc:  # noqa: BLE001 - a read racing the growing run: again
                errors.append(exc)
            gate.wait(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        session.execute(
            slow_scan(session.devices["pdet"], session.devices["stage"].x, 5, gate)
        )
    finally:
        gate.set()
        watcher.join()
    during = [values for values, stopped in seen if not stopped]
    assert [0.0, 1.0, 2.0, 3.0, 4.0] in during, (seen[:5], errors[:3])

    (run,) = session.runs.search(Key("start.sample") == "live-Si").values()
    assert run.metadata["stop"]["exit_status"] == "success"
    path = next(session.runs_dir.rglob(f"*{run.start['uid'][:8]}.h5"))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(
            f["primary/data/stage-x"][:], run["primary"]["stage-x"].read()
        )
        np.testing.assert_array_equal(
            f["primary/time"][:], run["primary"]["time"].read()
        )
    # the standard queries work on the catalog
    assert run.start["uid"] in session.runs.search(FullText("grow"))
    now = time.time()
    assert run.start["uid"] in session.runs.search(
        TimeRange(since=now - 600, until=now + 1)
    )
    assert run.start["uid"] not in session.runs.search(TimeRange(until=now - 600))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid):
    """Every descendant of a process, with its command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[int(proc.name)] = (int(stat[1]), cmdline)
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, (parent, _) in found.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return {p: found[p][1] for p in family if p in found}


def test_labsky_serve_serves_the_runs_a_session_wrote(labsky_session, tmp_path):
    session = labsky_session(SIM, data_dir=tmp_path / "data")
    result = session.run("scan", ["pdet"], "stage.x", 0, 1, 6, md={"sample": "served"})
    uid = result.run_start_uids[0]
    session.close()
    key = (tmp_path / "data" / "tiled" / "api_key").read_text().strip()

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labsky",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        output.append(server.stdout.readline())
        output.append(server.stdout.readline())
        assert f"api key: {key[:4]}…" in output[1]
        for line in server.stdout:  # until the server listens
            output.append(line)
            if "Uvicorn running on" in line:
                break
        # Any local user can read command lines: the key is in none of them.
        commands = _children(server.pid)
        assert len(commands) >= 2 and all(key not in c for c in commands.values())
        client = from_uri(f"http://127.0.0.1:{port}", api_key=key)
        run = client["raw"].search(Key("start.sample") == "served")[uid]
        np.testing.assert_allclose(
            run["primary"]["stage-x"].read(), np.linspace(0, 1, 6)
        )
        with pytest.raises(httpx.HTTPStatusError, match="401"):
            from_uri(f"http://127.0.0.1:{port}", api_key="wrong")["raw"][uid][
                "primary"
            ]["stage-x"].read()
    finally:
        server.terminate()
        output += server.communicate(timeout=20)[0]
    assert key not in "".join(output)  # tiled prints its URL: the key is masked
    # Stopping labsky serve stops its Tiled server too (none is left running).
    assert all(wait_for_exit(pid, 20) for pid in commands)


def test_labsky_serve_refuses_a_directory_without_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "labsky", "serve", "--data-dir", str(tmp_path / "typo")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "holds no labsky runs" in result.stderr and "--create" in result.stderr
    assert not (tmp_path / "typo").exists()


def _serve(tmp_path, *options, key=None):
    env = {k: v for k, v in os.environ.items() if k != "LABSKY_TILED_API_KEY"}
    if key is not None:
        env["LABSKY_TILED_API_KEY"] = key
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "labsky",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--create",
            *options,
        ],
        capture_output=True,
        text=True,
        env=env,
    )


def test_serving_beyond_loopback_needs_an_api_key(tmp_path):
    result = _serve(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "set LABSKY_TILED_API_KEY" in result.stderr


def test_the_api_key_is_never_taken_on_the_command_line(tmp_path):
    result = _serve(tmp_path, "--api-key", "secret123")
    assert result.returncode == 2 and "No such option: --api-key" in result.stderr


def test_camera_frames_are_linked_into_the_run_file_and_served(labsky_session):
    session = labsky_session(SIM)
    result = session.run("count", ["cam"], num=3, md={"sample": "frames"})
    uid = result.run_start_uids[0]
    path = next(session.runs_dir.rglob(f"*{uid[:8]}.h5"))
    with h5py.File(path, "r") as f:
        link = f["primary/data"].get("cam", getlink=True)
        assert isinstance(link, h5py.ExternalLink)
        assert link.filename.startswith("../../detectors/")
        frames = f["primary/data/cam"][:]
    assert frames.shape == (3, 240, 320) and frames.any()
    served = session.runs[uid]["primary"]["cam"].read()
    np.testing.assert_array_equal(np.asarray(served).reshape(frames.shape), frames)


def test_an_api_key_tiled_would_refuse_is_refused_up_front(tmp_path):
    result = _serve(tmp_path, key="not-alnum")
    assert result.returncode == 2
    assert "only letters and digits" in result.stderr
