"""Run bluesky-queueserver's RE Manager with room for a loaded machine.

The RE Manager asks its watchdog process to start the RE Worker and waits
for the answer with the default timeout of its pipe client
(`PipeJsonRpcSendAsync`, 0.5 s), which no option changes. On a loaded 2-core
machine the answer came late: the manager logged "Failed to create Worker
process" and went idle while the watchdog had started the worker, and the
daemon failed to open its environment. The watchdog pipe is the only one
the manager makes without a timeout of its own (the worker's comes from its
configuration), so that default is raised here before the manager starts,
below the watchdog's 5 s heartbeat bound (the pipe is locked while a reply
is awaited, so the manager's 0.5 s heartbeats wait behind it).
"""

from __future__ import annotations

from bluesky_queueserver.manager.comms import PipeJsonRpcSendAsync

#: Seconds the manager waits for its watchdog's answers.
WATCHDOG_REPLY_TIMEOUT = 3.0


def main() -> None:
    """Entry point: `start-re-manager` with the longer watchdog timeout."""
    from bluesky_queueserver.manager.start_manager import start_manager

    defaults = PipeJsonRpcSendAsync.__init__.__kwdefaults__ or {}
    if "timeout" in defaults:  # tests/unit/daemon/test_manager_main.py checks it is
        defaults["timeout"] = WATCHDOG_REPLY_TIMEOUT
    start_manager()


if __name__ == "__main__":
    main()
