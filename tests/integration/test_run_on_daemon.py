"""`labsky run` runs on the profile's daemon when one is up (ADR 0011)."""

import shutil
import subprocess
import sys
import textwrap
import time

import h5py
import pytest

from labsky.daemon import Daemon
from tests.conftest import REPO
from tests.integration.test_cli_everyday import PLANS, labsky, last_line

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(400),  # the daemon starts in the first test's setup
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed: run .ci/install-system-packages",
    ),
]


@pytest.fixture(scope="module")
def daemon_profile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("daemon-profile")
    (folder / "plans.py").write_text(PLANS)
    (folder / "profile.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: quick
            devices: [{REPO / "devices" / "sim.yaml"}]
            plans: [plans.py]
            data_dir: {folder / "data"}
            tiled: {{uri: null}}
            """
        )
    )
    runner = Daemon(folder, publish_port=None)
    runner.start()
    try:
        yield folder
    finally:
        runner.close()


def test_a_plan_runs_on_the_daemon_and_its_file_is_named(daemon_profile):
    started = time.monotonic()
    result = labsky("run", str(daemon_profile), "count", "[pdet]", "-a", "num=5",
                    "--md", "sample=Si")  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("running count on the daemon of quick (pid ")
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("count: success; stored in ")
    path = line.removeprefix("count: success; stored in ")
    with h5py.File(path, "r") as f:
        assert len(f["primary/data/pdet-channel-1-value"]) == 5
        assert '"sample": "Si"' in f.attrs["start"]
    print(f"labsky run on the daemon: {took:.1f} s")


def test_a_plan_that_fails_on_the_daemon_ends_in_one_line(daemon_profile):
    result = labsky("run", str(daemon_profile), "breaks", "[pdet]")
    assert result.returncode == 1
    line = last_line(result)
    assert line.startswith("breaks failed on the daemon: ")
    assert "the sample holder slipped" in line
    assert "; stored in " in line and ".h5" in line
    assert line.endswith(f"(the daemon's log: {daemon_profile / 'data' / 'daemon'})")


def test_the_daemon_refuses_what_it_cannot_do_before_anything_runs(daemon_profile):
    mocked = labsky("run", str(daemon_profile), "count", "[pdet]", "--mock")
    assert mocked.returncode == 2
    assert "--mock/--no-mock cannot apply" in last_line(mocked)
    bad = labsky("run", str(daemon_profile), "count", "[pdet]", "-a", "num=2",
                 "-a", "delay=soon")  # fmt: skip
    assert bad.returncode == 2
    assert "delay" in last_line(bad)


def test_a_killed_daemon_is_not_attached_to(tmp_path):
    (tmp_path / "data" / "daemon").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)  # fmt: skip
    (tmp_path / "data" / "daemon" / "daemon.json").write_text(
        '{"profile": "x", "control": "tcp://127.0.0.1:9", "info": "", "redis": "", '
        f'"pid": {dead.stdout.strip()}}}'
    )
    from labsky.attach import running_daemon

    assert running_daemon(tmp_path / "data") is None
