"""Serve the cockpit: attach to the profile's daemon (or start one) and run the app."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labsky.daemon.service import DaemonAddresses, _is_loopback
from labsky.errors import LabskyError

logger = logging.getLogger(__name__)

#: The environment variable holding the cockpit's API key.
API_KEY_ENV = "LABSKY_GUI_API_KEY"


class CockpitError(LabskyError, RuntimeError):
    """The cockpit cannot start; the message says why and what to do."""


def check_binding(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond loopback without an API key.

    Raises:
        CockpitError: Naming the variable to set.
    """
    if not _is_loopback(host) and not api_key:
        raise CockpitError(
            f"the cockpit would listen on {host} without authentication: set "
            f"{API_KEY_ENV} (e.g. `export {API_KEY_ENV}=$(openssl rand -hex 32)`), "
            "or keep it on 127.0.0.1 and reach it through an ssh tunnel"
        )


def running_daemon(profile_dir: Path) -> DaemonAddresses | None:
    """The addresses of the profile's running daemon, if one answers."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    from labsky.config import load_profile
    from labsky.processes import pid_alive

    path = load_profile(profile_dir).data_path / "daemon" / "daemon.json"
    if not path.exists():
        return None
    addresses = DaemonAddresses.load(path)
    if addresses.pid and not pid_alive(addresses.pid):
        return None
    api = REManagerAPI(
        zmq_control_addr=addresses.control, zmq_info_addr=addresses.info, timeout_recv=2
    )
    try:
        api.status()
    except Exception:  # noqa: BLE001 - a stale file
        return None
    finally:
        api.close()
        # REManagerAPI.close closes its socket, not its 0MQ context
        context = getattr(getattr(api, "_client", None), "_ctx", None)
        if context is not None:
            context.destroy(linger=0)
    return addresses


class CockpitServer:
    """The cockpit's web server for one daemon, in a thread or in the foreground.

    Args:
        profile_dir: The profile.
        addresses: The daemon's addresses.
        host: Interface to listen on.
        port: Port (0: a free one).
        api_key: Required of every request when set (needed off loopback).
    """

    def __init__(
        self,
        profile_dir: Path,
        addresses: DaemonAddresses,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ):
        import uvicorn

        from labsky.config import load_profile
        from labsky.gui.app import create_app
        from labsky.gui.hub import Cockpit
        from labsky.gui.plans import PlanForms
        from labsky.gui.runs import RunBrowser
        from labsky.plan_loader import load_plans
        from labsky.processes import free_port
        from labsky.session import load_declarations

        check_binding(host, api_key)
        profile = load_profile(profile_dir)
        plans, _ = load_plans(profile.plan_files)
        names = {
            n for n, d in load_declarations(profile.device_files).items() if not d.skip
        }
        self.cockpit = Cockpit(addresses, PlanForms(plans, names), profile.data_path)
        self.browser = RunBrowser(addresses, profile.data_path / "runs")
        self.app = create_app(
            self.cockpit, self.browser, api_key=api_key, loopback=_is_loopback(host)
        )
        self.port = port or free_port()
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        config = uvicorn.Config(
            self.app,
            host=host,
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in the foreground until interrupted."""
        self.server.run()

    def start(self, timeout: float = 60.0) -> CockpitServer:
        """Serve in a thread; return once it accepts connections."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve()),
            name="labsky-cockpit",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise CockpitError("the cockpit's server stopped at start")
            if time.monotonic() > deadline:
                raise CockpitError("the cockpit's server did not start")
            time.sleep(0.05)  # noqa: TID251 - the caller's thread, no RunEngine
        return self

    def close(self) -> None:
        """Stop serving."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.browser.close()


def serve(
    profile_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    echo: Callable[[str], Any] = print,
) -> None:
    """`labsky gui`: attach to the profile's daemon or start one, then serve.

    A daemon started here stops when the cockpit stops; one that was already
    running goes on.
    """
    check_binding(host, api_key)
    daemon = None
    addresses = running_daemon(profile_dir)
    if addresses is None:
        from labsky.daemon import Daemon

        echo(f"no daemon runs {profile_dir.name}: starting one ...")
        daemon = Daemon(profile_dir)
        addresses = daemon.start()
    else:
        echo(f"attached to the daemon of {addresses.profile} (pid {addresses.pid})")
    try:
        server = CockpitServer(profile_dir, addresses, host, port, api_key)
        if api_key:
            echo(f"API key: from {API_KEY_ENV} (the page asks for it once)")
        echo(f"cockpit: {server.url}")
        try:
            server.run()
        finally:
            server.browser.close()
    finally:
        if daemon is not None:
            echo("stopping the daemon ...")
            daemon.close()


def api_key_from_environment() -> str | None:
    """The cockpit's API key, from `LABSKY_GUI_API_KEY`."""
    return os.environ.get(API_KEY_ENV) or None
