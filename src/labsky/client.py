"""Drive a running `labsky daemon` from scripts, notebooks and pytest checks.

A thin layer over bluesky-queueserver-api's `REManagerAPI` that knows
labsky's conventions: it finds a profile's daemon from the `daemon.json` the
daemon writes in the profile's data directory, and it waits for a queued plan
and hands back its history entry. Everything else is the queue server's own
API, available as `client.api`::

    with LabClient.of_profile("sim") as lab:
        done = lab.run("count", ["pdet"], num=5, md={"sample": "Si"})
        done["result"]["run_uids"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bluesky_queueserver_api import BFunc, BPlan
from bluesky_queueserver_api.zmq import REManagerAPI

from labsky.daemon.service import DaemonAddresses
from labsky.errors import LabskyError


class PlanRefusedError(LabskyError, ValueError):
    """The queue server refused an item; the message is its reason."""


class PlanFailedError(LabskyError, RuntimeError):
    """A plan ended without success; the message is the worker's reason."""


class LabClient:
    """A client of one daemon.

    Args:
        control: The RE Manager's 0MQ control address (`tcp://host:port`).
        info: Its console-output address, or None.
        addresses: Everything the daemon published, when known.
    """

    def __init__(
        self,
        control: str,
        info: str | None = None,
        addresses: DaemonAddresses | None = None,
    ):
        self.addresses = addresses
        self.api = REManagerAPI(zmq_control_addr=control, zmq_info_addr=info)

    @classmethod
    def of_profile(cls, profile: str | Path) -> LabClient:
        """Connect to the daemon running `profile` on this computer.

        Raises:
            FileNotFoundError: If no daemon of that profile is running.
        """
        from labsky.config import find_profile, load_profile

        loaded = load_profile(find_profile(str(profile)))
        path = loaded.data_path / "daemon" / "daemon.json"
        if not path.exists():
            raise FileNotFoundError(
                f"no daemon is running profile {loaded.name!r} (no {path}); "
                f"start one with `labsky daemon {profile}`"
            )
        addresses = DaemonAddresses.load(path)
        return cls(addresses.control, addresses.info, addresses)

    # -- what the daemon offers -------------------------------------------

    def status(self) -> dict[str, Any]:
        """The RE Manager's status (queue length, states, environment)."""
        status: dict[str, Any] = self.api.status()  # type: ignore[assignment]
        return status

    def plans(self) -> dict[str, list[dict[str, Any]]]:
        """Allowed plans with their parameters (name, kind, annotation, default)."""
        allowed = self.api.plans_allowed()["plans_allowed"]
        return {name: plan.get("parameters", []) for name, plan in allowed.items()}

    def devices(self) -> list[str]:
        """Names of the allowed devices."""
        return sorted(self.api.devices_allowed()["devices_allowed"])

    # -- the queue --------------------------------------------------------

    def queue(self, plan: str, *args: Any, **kwargs: Any) -> str:
        """Add a plan to the end of the queue; return the item's uid.

        Raises:
            PlanRefusedError: With the queue server's reason (an unknown plan,
                device or argument), before anything runs.
        """
        try:
            reply = self.api.item_add(BPlan(plan, *args, **kwargs))
        except self.api.RequestFailedError as exc:
            raise PlanRefusedError(f"{plan}: {exc}") from None
        if not reply["success"]:
            raise PlanRefusedError(f"{plan}: {reply['msg']}")
        return str(reply["item"]["item_uid"])

    def start(self) -> None:
        """Start the queue."""
        self.api.queue_start()

    def wait_idle(self, timeout: float = 600.0) -> None:
        """Wait until the queue has stopped."""
        self.api.wait_for_idle(timeout=timeout)  # type: ignore[arg-type]

    def run(self, plan: str, *args: Any, timeout: float = 600.0, **kwargs: Any) -> Any:
        """Queue a plan, start the queue, and wait for the plan to finish.

        Returns:
            The plan's history entry (`["result"]["run_uids"]`, ...).

        Raises:
            PlanRefusedError: If the item is refused.
            PlanFailedError: If it ran and did not succeed.
        """
        uid = self.queue(plan, *args, **kwargs)
        self.start()
        self.wait_idle(timeout)
        for item in reversed(self.history()):
            if item["item_uid"] == uid:
                if item["result"]["exit_status"] != "completed":
                    raise PlanFailedError(f"{plan}: {item['result']['msg']}")
                self.wait_stored(item["result"]["run_uids"])
                return item
        raise PlanFailedError(f"{plan}: the item is not in the history")

    def runs(self) -> Any:
        """The daemon's Tiled container of runs (None if it has no catalog)."""
        if self.addresses is None or not self.addresses.tiled:
            return None
        from labsky.pipeline.server import runs_container
        from labsky.pipeline.tiled_client import connect

        client = connect(self.addresses.tiled, api_key=self.addresses.tiled_api_key)
        return runs_container(client, self.addresses.tiled_container)

    def wait_stored(self, uids: list[str], timeout: float = 60.0) -> None:
        """Wait until these runs are complete in the catalog (stop document in).

        Does nothing when the daemon's catalog is not known.
        """
        runs = self.runs() if uids else None
        if runs is None:
            return
        deadline = time.monotonic() + timeout
        for uid in uids:
            while not (uid in runs and runs[uid].metadata.get("stop")):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run {uid} is not in the catalog")
                time.sleep(0.1)  # noqa: TID251 - polls: the catalog sends no notice

    def history(self) -> list[dict[str, Any]]:
        """Plans run so far, oldest first."""
        return list(self.api.history_get()["items"])

    # -- running plans ----------------------------------------------------

    def pause(self, immediate: bool = False) -> None:
        """Pause at the next checkpoint (or at once, with `immediate`)."""
        self.api.re_pause("immediate" if immediate else "deferred")

    def resume(self) -> None:
        """Resume a paused plan."""
        self.api.re_resume()

    def abort(self) -> None:
        """Abort a paused plan (its run ends with exit status `abort`)."""
        self.api.re_abort()

    def upload(self, path: str | Path) -> None:
        """Run a plan module in the worker; its plans join the allowed list."""
        reply = self.api.script_upload(Path(path).read_text(encoding="utf-8"))
        self.api.wait_for_completed_task(reply["task_uid"])

    # -- instruments --------------------------------------------------------

    def reconnect(self, device: str, timeout: float = 120.0) -> list[str]:
        """Connect a device of the daemon's session again once it is back.

        Runs the worker's function `reconnect` (`Session.reconnect`) while
        the queue is idle.

        Returns:
            The names of the devices connected, `device` first.

        Raises:
            PlanFailedError: With the worker's reason when it still fails.
        """
        reply = self.api.function_execute(BFunc("reconnect", device))
        if not reply["success"]:
            raise PlanFailedError(f"reconnect {device}: {reply['msg']}")
        uid = reply["task_uid"]
        self.api.wait_for_completed_task(uid, timeout=timeout)  # type: ignore[arg-type]
        result = self.api.task_result(uid)["result"]
        if not result["success"]:
            raise PlanFailedError(f"reconnect {device}: {result['msg']}")
        return list(result["return_value"]["reconnected"])

    def close(self) -> None:
        """Close the connection (its 0MQ context too)."""
        self.api.close()
        # REManagerAPI.close closes its socket, not its 0MQ context
        context = getattr(getattr(self.api, "_client", None), "_ctx", None)
        if context is not None:
            context.destroy(linger=0)

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
