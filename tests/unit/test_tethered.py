"""Children labsky starts die with it, armed in the child (no preexec_fn)."""

import signal
import subprocess
import sys
import textwrap

from labsky.processes import pid_alive, wait_for_exit
from labsky.tethered import tethered

PARENT = textwrap.dedent(
    """
    import subprocess, sys
    from labsky.tethered import tethered
    child = subprocess.Popen(tethered(["sleep", "60"]), start_new_session=True)
    print(child.pid, flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def test_a_tethered_child_gets_sigterm_when_its_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        child = int(parent.stdout.readline())
        assert pid_alive(child)
        parent.send_signal(signal.SIGKILL)  # no chance to stop its children
        parent.wait(10)
        assert wait_for_exit(child, 10), "the child outlived its parent"
    finally:
        parent.kill()
        parent.communicate()  # reaps it and closes its pipes


def test_the_command_becomes_the_child_itself():
    launched = subprocess.Popen(
        tethered([sys.executable, "-c", "import os; print(os.getpid())"]),
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = launched.communicate(timeout=30)
    assert launched.returncode == 0
    assert int(out) == launched.pid  # signals to the pid reach the command


def test_a_child_whose_parent_is_already_gone_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    # pid 1 is not our parent: as if the parent had died before the child armed
    command = [sys.executable, "-m", "labsky.tethered", "1", "--", "touch", str(marker)]
    finished = subprocess.run(command, timeout=30)
    assert finished.returncode == 0 and not marker.exists()


def test_a_command_that_cannot_run_says_so():
    finished = subprocess.run(
        tethered(["no-such-program-labsky"]), capture_output=True, text=True, timeout=30
    )
    assert finished.returncode == 1
    assert "cannot run no-such-program-labsky" in finished.stderr
