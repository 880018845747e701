"""The RE Manager is started with a watchdog timeout a loaded machine can meet."""

import subprocess
import sys

from bluesky_queueserver.manager.comms import PipeJsonRpcSendAsync

from labsky.daemon import manager_main


def test_the_manager_waits_longer_for_its_watchdog(monkeypatch):
    defaults = PipeJsonRpcSendAsync.__init__.__kwdefaults__
    assert defaults["timeout"] == 0.5  # queueserver's default, what failed
    monkeypatch.setitem(defaults, "timeout", 0.5)  # restored after the test
    seen = []
    monkeypatch.setattr(
        "bluesky_queueserver.manager.start_manager.start_manager",
        lambda: seen.append(defaults["timeout"]),
    )
    manager_main.main()
    assert seen == [manager_main.WATCHDOG_REPLY_TIMEOUT]


def test_the_manager_takes_start_re_manager_s_options():
    result = subprocess.run(
        [sys.executable, "-m", "labsky.daemon.manager_main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--startup-module" in result.stdout
