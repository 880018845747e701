"""Build the session inside the queue server's RE Worker, and its namespace."""

from __future__ import annotations

import logging
import multiprocessing.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labsky.config import TiledConfig, load_profile
from labsky.daemon.annotations import queue_plan
from labsky.session import Session, start

logger = logging.getLogger(__name__)

#: The environment variable the worker reads the daemon's Tiled key from.
TILED_KEY_ENV = "LABSKY_DAEMON_TILED_KEY"


def worker_namespace(
    profile: str,
    data_dir: str | None = None,
    tiled_uri: str | None = None,
    publish: str | None = None,
    device_api: str | None = None,
) -> dict[str, Any]:
    """Start the profile's session and return the names the worker exposes.

    Args:
        profile: The profile directory.
        data_dir: The data directory (default: the profile's).
        tiled_uri: The daemon's Tiled server (replaces an `embedded` one).
        publish: A 0MQ proxy's input address to publish documents to.
        device_api: Where to serve the device API (`tcp://127.0.0.1:PORT`).

    Returns:
        `RE`, `labsky_session`, the devices and the wrapped plans by name.
    """
    loaded = load_profile(profile)
    if tiled_uri and loaded.tiled.uri == "embedded":
        tiled = TiledConfig(
            uri=tiled_uri, api_key_env=TILED_KEY_ENV, container=loaded.tiled.container
        )
        loaded = loaded.model_copy(update={"tiled": tiled}).located(loaded.directory)
    session = start(
        loaded, data_dir=Path(data_dir) if data_dir else None, progress=False
    )
    # multiprocessing ends the worker with os._exit, which skips atexit: close
    # the session (drain the ring into HDF5, stop simulators) from its finaliser.
    multiprocessing.util.Finalize(None, session.close, exitpriority=10)
    if publish:
        from bluesky.callbacks.zmq import Publisher

        session.subscribe(Publisher(publish))
    for name, error in session.device_errors.items():
        logger.error("device %s is not available: %s", name, error)
    if device_api:
        from labsky.daemon.device_api import DeviceService

        try:
            service = DeviceService(session, device_api).start()
        except Exception as exc:  # noqa: BLE001 - the queue works without it
            logger.error("the device API is not served: %s", exc)
        else:
            multiprocessing.util.Finalize(None, service.close, exitpriority=20)
    return namespace_of(session)


def namespace_of(session: Session) -> dict[str, Any]:
    """The worker's names: `RE`, `labsky_session`, devices, wrapped plans.

    Also the function `reconnect` (run with the queue server's
    `function_execute`, e.g. `LabClient.reconnect("meter")`).
    """
    names: dict[str, Any] = {
        "RE": session.run_engine,
        "labsky_session": session,
        "reconnect": reconnect_function(session),
    }
    names.update(session.devices)
    for name, plan in session.plans.items():
        if name in names:
            logger.warning("plan %s hides a device of the same name", name)
        names[name] = queue_plan(name, plan, session)
    return names


def reconnect_function(session: Session) -> Callable[[str], dict[str, Any]]:
    """The queue-server function that reconnects a device of `session`."""

    def reconnect(name: str) -> dict[str, Any]:
        """Connect a device again once its instrument is back (`Session.reconnect`).

        A device that failed when the environment opened connects, but the
        queue server lists it (for plans' arguments) once the environment is
        opened again.

        Returns:
            `{"reconnected": [names]}`, `name` first.
        """
        return {"reconnected": session.reconnect(name)}

    return reconnect
