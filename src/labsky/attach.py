"""`labsky run` on a session that is already up: the profile's daemon.

A `labsky run` of its own builds a whole session (simulators, devices, the
storage worker, the catalog server) for one plan, which takes most of a
minute on a loaded machine. When `labsky daemon PROFILE` runs, the plan goes
to its RE Manager instead and runs on the session it holds, so a command
costs seconds. A shell (`labsky shell PROFILE`) offers no remote control:
`labsky run` says which process holds the profile and how to go on, before
it starts anything. docs/explanations/decisions/0011-labsky-run-attaches.md
gives the reasons.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labsky.processes import describe_process, pid_alive


@dataclass
class DaemonRun:
    """How a plan went on the daemon.

    Attributes:
        exit_status: The queue server's (`completed`, `failed`, `aborted`,
            `stopped`, ...).
        message: Its reason when the plan did not complete.
        run_uids: Runs the plan opened.
        traceback: The worker's traceback, when the plan failed.
    """

    exit_status: str
    message: str = ""
    run_uids: list[str] = field(default_factory=list)
    traceback: str = ""


def running_daemon(data_dir: Path) -> dict[str, Any] | None:
    """The addresses of the daemon serving this data directory, if one is alive.

    A `daemon.json` left by a daemon that was killed is ignored.
    """
    path = data_dir / "daemon" / "daemon.json"
    try:
        addresses = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = int(addresses.get("pid") or 0)
    if not pid or pid == os.getpid() or not pid_alive(pid):
        return None
    return addresses


def ring_holder(ring: Path) -> str | None:
    """The live process writing this ring ("process 41 (labsky shell sim)"), if any."""
    from labsky.pipeline.holders import ring_writer_pid

    pid = ring_writer_pid(ring)
    return None if pid is None else describe_process(pid)


def run_on_daemon(
    addresses: dict[str, Any],
    plan: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float = 24 * 3600.0,
) -> DaemonRun:
    """Run one plan at once on the daemon and wait for it to end.

    The plan runs only if the daemon's RunEngine is idle (`item_execute`
    does not queue behind other work). A Ctrl-C here aborts it there.

    Raises:
        PlanRefusedError: If the daemon refuses the plan (busy, unknown plan,
            a bad argument), with its reason; nothing ran.
    """
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.zmq import REManagerAPI

    from labsky.client import PlanRefusedError

    api = REManagerAPI(zmq_control_addr=addresses["control"], zmq_info_addr=None)
    try:
        status: dict[str, Any] = api.status()  # type: ignore[assignment]
        if not status.get("worker_environment_exists"):
            raise PlanRefusedError(
                f"{plan}: the daemon's environment is closed (open it with "
                "`qserver environment open`, or restart `labsky daemon`)"
            )
        if status.get("manager_state") != "idle":
            raise PlanRefusedError(
                f"{plan}: the daemon is busy ({status.get('manager_state')}, "
                f"{status.get('items_in_queue', 0)} items queued); wait for it, "
                "or queue the plan with labsky.client.LabClient"
            )
        try:
            reply = api.item_execute(BPlan(plan, *args, **kwargs))
        except api.RequestFailedError as exc:
            raise PlanRefusedError(f"{plan}: {exc}") from None
        if not reply["success"]:
            raise PlanRefusedError(f"{plan}: {reply['msg']}")
        uid = reply["item"]["item_uid"]
        try:
            api.wait_for_idle(timeout=timeout)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            _abort(api)
            raise
        return _outcome(api, uid)
    finally:
        api.close()


def _abort(api: Any) -> None:
    """Abort the plan the daemon runs (a Ctrl-C here): pause, then abort."""
    try:
        api.re_pause("immediate")
        deadline = time.monotonic() + 30
        while api.status()["manager_state"] not in ("paused", "idle"):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)  # noqa: TID251 - a client process, no RunEngine
        if api.status()["manager_state"] == "paused":
            api.re_abort()
            api.wait_for_idle(timeout=60)
    except Exception:  # noqa: BLE001 - best effort; the daemon keeps its run
        return


def _outcome(api: Any, uid: str) -> DaemonRun:
    for item in reversed(api.history_get()["items"]):
        if item["item_uid"] == uid:
            result = item.get("result", {})
            return DaemonRun(
                exit_status=str(result.get("exit_status", "?")),
                message=str(result.get("msg", "")),
                run_uids=list(result.get("run_uids", [])),
                traceback=str(result.get("traceback", "")),
            )
    return DaemonRun("unknown", "the plan is not in the daemon's history")
