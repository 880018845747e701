"""`labsky daemon`: Redis, the RE Manager with the sim session, clients in other processes."""

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from tiled.client import from_uri
from tiled.queries import Key

from labsky.client import LabClient, PlanRefusedError
from labsky.daemon import Daemon, DaemonError
from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed: run .ci/install-system-packages",
    ),
]

API_KEY = "testrestkey42"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    data = tmp_path_factory.mktemp("daemon-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABSKY_DATA_DIR", str(data))
        runner = Daemon(REPO / "profiles" / "sim", http_port=0, http_api_key=API_KEY)
        runner.start()
        try:
            yield runner
        finally:
            runner.close()


@pytest.fixture
def client(daemon):
    addresses = daemon.addresses
    with LabClient(addresses.control, addresses.info, addresses) as lab:
        yield lab


def catalog(daemon):
    addresses = daemon.addresses
    return from_uri(addresses.tiled, api_key=addresses.tiled_api_key)["raw"]


def test_plans_and_devices_come_from_the_session(client, daemon):
    assert json.loads(daemon.addresses_file.read_text())["control"].startswith(
        "tcp://127.0.0.1:"
    )
    assert oct(daemon.addresses_file.stat().st_mode & 0o777) == "0o600"
    # Ctrl-C at the daemon's terminal reaches only the daemon, which closes the
    # environment and then stops its children in order
    assert os.getsid(daemon._manager.pid) != os.getsid(0)
    plans = client.plans()
    assert {"count", "scan", "network_analyzer", "pid_lock", "camera_raster"} <= set(
        plans
    )
    lockin = next(p for p in plans["network_analyzer"] if p["name"] == "lockin")
    assert lockin["annotation"]["devices"] == {"RedPitayaLockInDevices": ["rp.iq"]}
    start = next(p for p in plans["network_analyzer"] if p["name"] == "start")
    assert start["annotation"]["type"] == "float"
    assert {"pdet", "stage", "rp", "camera", "meter"} <= set(client.devices())


CLIENT_SCRIPT = """
import json, sys, threading
from bluesky.callbacks.zmq import RemoteDispatcher
from labsky.client import LabClient

seen = []
dispatcher = RemoteDispatcher(sys.argv[1])
dispatcher.subscribe(lambda name, doc: seen.append(name))
threading.Thread(target=dispatcher.start, daemon=True).start()
with LabClient.of_profile(sys.argv[2]) as lab:
    import time; time.sleep(0.5)  # let the subscription reach the proxy
    done = lab.run("scan", ["pdet"], "stage.x", -1, 1, 5, md={"sample": "remote"})
    time.sleep(0.5)
print(json.dumps({"uids": done["result"]["run_uids"], "seen": seen}))
"""


def test_a_client_process_queues_a_scan_and_data_reaches_hdf5_and_tiled(daemon):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT_SCRIPT,
            daemon.addresses.documents,
            str(REPO / "profiles" / "sim"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "LABSKY_DATA_DIR": str(daemon.data_dir.parent)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    (uid,) = report["uids"]
    # the 0MQ feed reached a RemoteDispatcher in the client process
    assert report["seen"][0] == "start" and report["seen"][-1] == "stop"
    assert report["seen"].count("event") + report["seen"].count("event_page") >= 1
    run = _wait_for_run(daemon, uid)
    table = run["primary"].read()
    np.testing.assert_allclose(table["stage-x"].values, [-1, -0.5, 0, 0.5, 1])
    assert run.start["sample"] == "remote" and run.start["profile"] == "sim"
    files = list((daemon.data_dir / "runs").rglob(f"*{uid[:8]}*.h5"))
    assert files, "the run's HDF5 file"


def _wait_for_run(daemon, uid, timeout=30):
    runs = catalog(daemon)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if uid in runs and runs[uid].metadata.get("stop"):
            return runs[uid]
        time.sleep(0.2)
    raise AssertionError(f"run {uid} did not reach Tiled")


def test_bad_plan_or_argument_is_refused_when_queued(client):
    before = client.status()["items_in_queue"]
    with pytest.raises(PlanRefusedError, match="nosuch_plan"):
        client.queue("nosuch_plan", ["pdet"])
    with pytest.raises(PlanRefusedError, match="nosuch"):
        client.queue("count", ["nosuch"], num=2)
    with pytest.raises(PlanRefusedError, match="num"):
        client.queue("count", ["pdet"], num="many")
    # the annotations come from the plans' models: a device of the wrong kind
    # and an enum value the plan does not take are refused when queued too
    with pytest.raises(PlanRefusedError, match="rp.pid"):
        client.queue("network_analyzer", "rp.pid", 1.49e6, 1.51e6)
    with pytest.raises(PlanRefusedError, match="trigger"):
        client.queue("scope_series", "rp.scope", trigger="CH3_PE")
    assert client.status()["items_in_queue"] == before


def _wait_state(client, state, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.status()["re_state"] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"RunEngine never became {state}: {client.status()}")


def test_pause_resume_then_abort(client, daemon):
    client.queue("count", ["pdet"], num=15, delay=0.2, md={"sample": "paused"})
    client.start()
    _wait_state(client, "running")
    time.sleep(0.5)
    client.pause()
    _wait_state(client, "paused")
    client.resume()
    client.wait_idle(120)
    resumed = client.history()[-1]
    assert resumed["result"]["exit_status"] == "completed"
    run = _wait_for_run(daemon, resumed["result"]["run_uids"][0])
    assert len(run["primary"].read()["pdet-channel-1-value"]) == 15

    client.queue("count", ["pdet"], num=50, delay=0.2, md={"sample": "aborted"})
    client.start()
    _wait_state(client, "running")
    time.sleep(0.5)
    client.pause()
    _wait_state(client, "paused")
    client.abort()
    client.wait_idle(60)
    aborted = client.history()[-1]
    assert aborted["result"]["exit_status"] == "aborted"
    run = _wait_for_run(daemon, aborted["result"]["run_uids"][0])
    assert run.stop["exit_status"] == "abort"
    assert 0 < len(run["primary"].read()["pdet-channel-1-value"]) < 50


def test_rest_needs_the_api_key(daemon, client):
    url = daemon.addresses.http
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/api/status").status_code == 401
    reply = httpx.get(
        f"{url}/api/status", headers={"Authorization": f"ApiKey {API_KEY}"}
    )
    assert reply.status_code == 200
    assert reply.json()["worker_environment_exists"] is True


def test_upload_a_plan_module(client, tmp_path):
    module = tmp_path / "extra_plans.py"
    module.write_text(
        "import bluesky.plans as bp\n\n"
        "def dark_count(detectors, num: int = 2, md: dict | None = None):\n"
        '    """Count with the laser shutter as it is (a dark frame check)."""\n'
        '    return (yield from bp.count(detectors, num, md={"dark": True, **(md or {})}))\n'
    )
    client.upload(module)
    assert "dark_count" in client.plans()
    done = client.run("dark_count", ["pdet"], num=3)
    assert done["result"]["exit_status"] == "completed"


def test_publishing_off_loopback_needs_curve_keys():
    with pytest.raises(DaemonError, match="without authentication"):
        Daemon(REPO / "profiles" / "sim", publish_host="0.0.0.0")
    with pytest.raises(DaemonError, match="needs an API key"):
        Daemon(REPO / "profiles" / "sim", http_port=0)
    with pytest.raises(DaemonError, match="letters and digits only"):
        Daemon(REPO / "profiles" / "sim", http_port=0, http_api_key="a-b")


def test_worker_killed_mid_plan_keeps_queue_history_and_data(client, daemon):
    history = len(client.history())
    client.queue("count", ["pdet"], num=100, delay=0.1, md={"sample": "killed"})
    waiting = client.queue("count", ["pdet"], num=2, md={"sample": "next"})
    client.start()
    _wait_state(client, "running")
    time.sleep(1.5)
    client.api.environment_destroy()
    client.api.wait_for_idle(timeout=60)
    status = client.status()
    assert status["worker_environment_exists"] is False
    queue = [item["item_uid"] for item in client.api.queue_get()["items"]]
    assert waiting in queue  # the queue is intact in Redis
    assert len(client.history()) == history + 1  # the killed item is recorded
    # a new environment recovers the partial run into HDF5 and Tiled
    client.api.environment_open()
    client.api.wait_for_idle(timeout=120)
    assert client.status()["worker_environment_exists"] is True
    runs = catalog(daemon)
    deadline = time.monotonic() + 60
    found = runs.search(Key("start.sample") == "killed")
    while not len(found) and time.monotonic() < deadline:
        time.sleep(0.5)
        found = runs.search(Key("start.sample") == "killed")
    (run,) = found.values()
    rows = len(run["primary"].read()["pdet-channel-1-value"])
    assert 3 <= rows < 100


def test_daemon_command_serves_then_stops_cleanly_on_ctrl_c(tmp_path, monkeypatch):
    monkeypatch.setenv("LABSKY_DATA_DIR", str(tmp_path))
    env = dict(os.environ)
    process = subprocess.Popen(
        [sys.executable, "-m", "labsky", "daemon", "sim", "--control-port", "0",
         "--info-port", "0", "--publish-port", "-1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal of its own: Ctrl-C hits the group
    )  # fmt: skip
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("ready"):
                break
        assert lines and lines[-1].startswith("ready"), "".join(lines)
        addresses = tmp_path / "sim" / "daemon" / "daemon.json"
        with LabClient.of_profile(REPO / "profiles" / "sim") as lab:
            done = lab.run("count", ["meter"], num=2, md={"sample": "cli"})
            assert done["result"]["exit_status"] == "completed"
        os.killpg(process.pid, 2)  # Ctrl-C at the daemon's terminal
        rest = process.communicate(timeout=90)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "stopping" in rest and "closing the environment" not in rest
    assert not addresses.exists()


def test_missing_redis_says_what_to_install(tmp_path):
    python_only = str(os.path.dirname(sys.executable))
    result = subprocess.run(
        [sys.executable, "-m", "labsky", "daemon", "sim"],
        cwd=REPO,
        env={**os.environ, "LABSKY_DATA_DIR": str(tmp_path), "PATH": python_only},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "redis-server is not installed" in result.stderr
    assert "apt-get install redis-server" in result.stderr
