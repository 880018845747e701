"""`labsky daemon`: Redis, the RE Manager with the sim session, clients in other processes."""

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading

import h5py
import httpx
import numpy as np
import pytest
from bluesky.callbacks.zmq import RemoteDispatcher
from tiled.client import from_uri

from labsky.client import LabClient, PlanRefusedError
from labsky.daemon import Daemon, DaemonError
from labsky.pipeline.format import OPEN_RUNS
from labsky.pipeline.live import profile_ring_path
from labsky.testing.waiting import wait_until
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
        # the session closed whole before its manager was stopped
        assert not profile_ring_path(REPO / "profiles" / "sim").exists()


@pytest.fixture
def client(daemon):
    addresses = daemon.addresses
    with LabClient(addresses.control, addresses.info, addresses) as lab:
        yield lab


def catalog(daemon):
    addresses = daemon.addresses
    return from_uri(addresses.tiled, api_key=addresses.tiled_api_key)["raw"]


def stored_run(client, daemon, uid):
    """The run in Tiled once complete there (the client waits, as users do)."""
    client.wait_stored([uid])
    return catalog(daemon)[uid]


class Feed:
    """The daemon's 0MQ document feed, heard in this process.

    A 0MQ subscriber hears nothing until its subscription has reached the
    proxy, and nothing says when it has: `join` runs one-reading counts until
    one of them is heard to its end.
    """

    def __init__(self, address):
        self.documents = []
        self._changed = threading.Condition()
        self._dispatcher = RemoteDispatcher(address)
        self._dispatcher.subscribe(self._add)
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self):
        with contextlib.suppress(asyncio.CancelledError):  # how `close` stops it
            self._dispatcher.start()

    def _add(self, name, doc):
        with self._changed:
            self.documents.append((name, doc))
            self._changed.notify_all()

    def wait_for(self, condition, timeout):
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def stopped(self, uid):
        return any(n == "stop" and d["run_start"] == uid for n, d in self.documents)

    def events(self, sample, stream=None):
        """Rows heard so far of the run whose start has `sample` (of one stream)."""
        runs = {
            d["uid"]
            for n, d in self.documents
            if n == "start" and d.get("sample") == sample
        }
        streams = {
            d["uid"]
            for n, d in self.documents
            if n == "descriptor"
            and d["run_start"] in runs
            and stream in (None, d.get("name"))
        }
        rows = 0
        for name, doc in self.documents:
            if name == "event" and doc["descriptor"] in streams:
                rows += 1
            elif name == "event_page" and doc["descriptor"] in streams:
                rows += len(doc["seq_num"])
        return rows

    def wait_for_events(self, sample, rows, timeout=60, stream=None):
        assert self.wait_for(lambda: self.events(sample, stream) >= rows, timeout), (
            f"{rows} rows of the run of {sample!r} not heard within {timeout} s"
        )

    def join(self, client, attempts=10):
        for _ in range(attempts):
            done = client.run("count", ["pdet"], num=1, md={"sample": "feed-probe"})
            (uid,) = done["result"]["run_uids"]
            if self.wait_for(lambda uid=uid: self.stopped(uid), 10):
                return
        raise AssertionError("the document feed stayed silent")

    def close(self):
        task = self._dispatcher._task
        if task is not None:
            self._dispatcher.loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)


@pytest.fixture(scope="module")
def feed(daemon):
    addresses = daemon.addresses
    listener = Feed(addresses.documents)
    with LabClient(addresses.control, addresses.info, addresses) as lab:
        listener.join(lab)
    yield listener
    listener.close()


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

heard, changed = [], threading.Condition()

def hear(name, doc):
    with changed:
        heard.append((name, doc))
        changed.notify_all()

def heard_stop(uid, timeout):
    with changed:
        return changed.wait_for(
            lambda: any(n == "stop" and d["run_start"] == uid for n, d in heard),
            timeout,
        )

def documents_of(uid):
    streams = {d["uid"] for n, d in heard if n == "descriptor" and d["run_start"] == uid}
    return [
        n for n, d in heard
        if d.get("uid") == uid or d.get("run_start") == uid
        or d.get("descriptor") in streams
    ]

dispatcher = RemoteDispatcher(sys.argv[1])
dispatcher.subscribe(hear)
threading.Thread(target=dispatcher.start, daemon=True).start()
with LabClient.of_profile(sys.argv[2]) as lab:
    # nothing says when a 0MQ subscription has reached the proxy: count
    # once until a count is heard to its end
    for _ in range(10):
        probe = lab.run("count", ["pdet"], num=1)["result"]["run_uids"][0]
        if heard_stop(probe, 10):
            break
    done = lab.run("scan", ["pdet"], "stage.x", -1, 1, 5, md={"sample": "remote"})
    (uid,) = done["result"]["run_uids"]
    assert heard_stop(uid, 60), "the scan's stop document was not heard"
with changed:
    print(json.dumps({"uids": [uid], "seen": documents_of(uid)}))
"""


def test_a_client_process_queues_a_scan_and_data_reaches_hdf5_and_tiled(daemon, client):
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
    # the whole run reached a RemoteDispatcher in the client process over 0MQ
    seen = report["seen"]
    assert seen[0] == "start" and seen[-1] == "stop"
    assert seen.count("event") >= 5  # the five points (and the baseline)
    run = stored_run(client, daemon, uid)
    table = run["primary"].read()
    np.testing.assert_allclose(table["stage-x"].values, [-1, -0.5, 0, 0.5, 1])
    assert run.start["sample"] == "remote" and run.start["profile"] == "sim"
    (path,) = (daemon.data_dir / "runs").rglob(f"*{uid[:8]}*.h5")
    with h5py.File(path, "r") as f:  # the HDF5 file holds the same points
        np.testing.assert_allclose(f["primary/data/stage-x"][:], [-1, -0.5, 0, 0.5, 1])


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


def _wait_paused(client, timeout=60):
    # the RE Manager answers status requests; it sends no notice of a change.
    # Its own state follows the RunEngine's a moment later, and it refuses an
    # abort until it is "paused" too.
    def paused():
        status = client.status()
        return status["re_state"] == status["manager_state"] == "paused"

    wait_until(paused, "RE Manager paused", timeout)


def _pause_and_abort(client, feed, sample, rows):
    """Queue a long count, pause it once `rows` are heard, abort it."""
    client.queue("count", ["pdet"], num=50, delay=0.2, md={"sample": sample})
    client.start()
    feed.wait_for_events(sample, rows, stream="primary")
    client.pause()
    _wait_paused(client)
    client.abort()
    client.wait_idle(60)
    aborted = client.history()[-1]
    assert aborted["result"]["exit_status"] == "aborted"
    # the queue server puts an aborted plan back at the front of the queue
    (front, *_) = client.api.queue_get()["items"]
    assert front["kwargs"]["md"] == {"sample": sample}
    client.api.item_remove(uid=front["item_uid"])
    return aborted["result"]["run_uids"][0]


def test_pause_resume_then_abort(client, daemon, feed):
    client.queue("count", ["pdet"], num=15, delay=0.2, md={"sample": "paused"})
    client.start()
    feed.wait_for_events("paused", 2)  # under way
    client.pause()
    _wait_paused(client)
    client.resume()
    client.wait_idle(120)
    resumed = client.history()[-1]
    assert resumed["result"]["exit_status"] == "completed"
    run = stored_run(client, daemon, resumed["result"]["run_uids"][0])
    assert len(run["primary"].read()["pdet-channel-1-value"]) == 15

    run = stored_run(client, daemon, _pause_and_abort(client, feed, "aborted", 2))
    assert run.stop["exit_status"] == "abort"
    assert 0 < len(run["primary"].read()["pdet-channel-1-value"]) < 50


def test_every_row_published_before_an_abort_is_stored(client, daemon, feed):
    uid = _pause_and_abort(client, feed, "aborted-rows", 3)
    run = stored_run(client, daemon, uid)
    heard = feed.events("aborted-rows", "primary")
    assert heard >= 3
    (path,) = (daemon.data_dir / "runs").rglob(f"*{uid[:8]}*.h5")
    with h5py.File(path, "r") as f:
        assert len(f["primary/seq_num"]) == heard  # in the run file
    assert len(run["primary"].read()["pdet-channel-1-value"]) == heard  # in Tiled


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


def test_worker_killed_mid_plan_keeps_queue_history_and_data(client, daemon, feed):
    history = len(client.history())
    client.queue("count", ["pdet"], num=100, delay=0.1, md={"sample": "killed"})
    waiting = client.queue("count", ["pdet"], num=2, md={"sample": "next"})
    client.start()
    # four rows taken: the three before the last are in the ring for sure (the
    # kill may catch the last on its way there)
    feed.wait_for_events("killed", 4)
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
    (uid,) = {
        d["uid"]
        for n, d in feed.documents
        if n == "start" and d.get("sample") == "killed"
    }
    run = stored_run(client, daemon, uid)  # recovered: closed, in the catalog
    rows = len(run["primary"].read()["pdet-channel-1-value"])
    assert 3 <= rows < 100
    assert run.stop["exit_status"] != "success"  # it says it did not finish
    client.api.item_remove(uid=waiting)


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
        ring = profile_ring_path(REPO / "profiles" / "sim")
        with LabClient.of_profile(REPO / "profiles" / "sim") as lab:
            done = lab.run("count", ["meter"], num=2, md={"sample": "cli"})
            assert done["result"]["exit_status"] == "completed"
        assert ring.exists()
        os.killpg(process.pid, 2)  # Ctrl-C at the daemon's terminal
        rest = process.communicate(timeout=90)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "stopping" in rest and "closing the environment" not in rest
    assert not addresses.exists()
    # the session closed whole before its manager stopped: all stored, ring gone
    assert not ring.exists()
    assert not (tmp_path / "sim" / "runs" / OPEN_RUNS).exists()


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
