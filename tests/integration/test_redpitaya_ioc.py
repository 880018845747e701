"""`labsky ioc redpitaya` owns the board; two client processes share it over CA.

Channel Access runs only in subprocesses (its ports are private to the test:
a unique server and repeater port on loopback), so the test process never
creates a libca context.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIENT = Path(__file__).with_name("redpitaya_ioc_client.py")

pytestmark = pytest.mark.slow


def free_port() -> int:
    """A port free for both TCP and UDP on loopback."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


@pytest.fixture
def ioc(tmp_path):
    env = {
        **os.environ,
        "EPICS_CA_SERVER_PORT": str(free_port()),
        "EPICS_CA_REPEATER_PORT": str(free_port()),
        "EPICS_CA_ADDR_LIST": "127.0.0.1",
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "PYTHONPATH": str(REPO),
    }
    prefix = f"T{os.getpid()}:"
    log = (tmp_path / "ioc.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "labsky", "ioc", "redpitaya", "--sim",
         "--prefix", prefix, "--interface", "127.0.0.1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while "serving" not in line:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the IOC did not start: {(tmp_path / 'ioc.log').read_text()}")
    yield prefix, env
    process.terminate()
    process.wait(10)
    log.close()


def client(prefix, env, role):
    return subprocess.Popen(
        [sys.executable, str(CLIENT), prefix, role],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_clients_share_the_scope_and_generators_without_conflict(ioc):
    prefix, env = ioc
    scope = client(prefix, env, "scope")
    analyzer = client(prefix, env, "analyzer")
    for process in (scope, analyzer):  # both connected: then both go at once
        assert process.stdout.readline() == "connected\n", process.stderr.read()
    for process in (scope, analyzer):
        process.stdin.write("go\n")
        process.stdin.flush()
    results = {}
    for process in (scope, analyzer):
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        results[result["role"]] = result
    taken = results["scope"]
    assert taken["shapes"] == [16384]
    assert taken["amplitudes"] == pytest.approx([0.1, 0.2, 0.3])
    # the sweep found the resonance while the other client took traces
    fit = results["analyzer"]["fit"]
    assert fit["f0"] == pytest.approx(1.5e6, rel=2e-4)
    assert fit["amplitude"] == pytest.approx(0.5, rel=0.05)
    # every trace went to the client that asked for it, each exactly once
    mine, theirs = taken["sequences"], results["analyzer"]["sequences"]
    assert len(mine) == 60 and len(theirs) == 21
    assert mine == sorted(mine) and theirs == sorted(theirs)
    assert not set(mine) & set(theirs)
    assert min(theirs) < max(mine) and min(mine) < max(theirs)  # they overlapped
