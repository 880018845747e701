"""The daemon: Redis, Tiled, the 0MQ proxy, the RE Manager and (optionally) REST.

Everything binds to 127.0.0.1 unless told otherwise, and nothing listens
beyond loopback without authentication: the REST server always needs its API
key, and a document feed on another interface needs CURVE keys.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from labsky.config import load_profile
from labsky.errors import LabskyError
from labsky.processes import free_port, stop
from labsky.tethered import tethered

logger = logging.getLogger(__name__)

#: Every plan and device of the session is allowed; names starting with `_` not.
PERMISSIONS = {
    "user_groups": {
        "root": {
            "allowed_plans": [None],
            "forbidden_plans": [":^_"],
            "allowed_devices": [None],
            "forbidden_devices": [":^_:?.*"],
            "allowed_functions": [None],
            "forbidden_functions": [":^_"],
        },
        "primary": {
            "allowed_plans": [":.*"],
            "forbidden_plans": [None],
            "allowed_devices": [":?.*:depth=3"],
            "forbidden_devices": [None],
            "allowed_functions": [None],
            "forbidden_functions": [":^_"],
        },
    }
}


class DaemonError(LabskyError, RuntimeError):
    """The daemon could not start; the message says why and what to do."""


@dataclass
class DaemonAddresses:
    """Where a running daemon listens; saved as `DATA/daemon/daemon.json`.

    Attributes:
        profile: The profile's name.
        control: The RE Manager's 0MQ control address.
        info: Its 0MQ console-output address.
        redis: The Redis server holding the queue and history.
        documents: The 0MQ proxy's output: subscribe a RemoteDispatcher here.
        tiled: The Tiled server runs are registered with.
        tiled_api_key: Its API key.
        tiled_container: The container of runs in it.
        http: The REST server (bluesky-httpserver), if started.
        pid: The daemon's process id.
        devices: The worker's device API (`labsky.daemon.device_api`), on
            loopback: describe, read, set, stop and watch the devices.
    """

    profile: str
    control: str
    info: str
    redis: str
    documents: str | None = None
    tiled: str | None = None
    tiled_api_key: str | None = None
    tiled_container: str = "raw"
    http: str | None = None
    pid: int = 0
    devices: str | None = None

    def save(self, path: Path) -> None:
        """Write the file, readable by its owner only (it holds a key)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=1)

    @classmethod
    def load(cls, path: Path) -> DaemonAddresses:
        """Read the file a running daemon wrote."""
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Daemon:
    """Run a profile's session under bluesky-queueserver.

    Args:
        profile: The profile directory.
        redis: `HOST:PORT` of a Redis to use; None starts a private one.
        control_port: RE Manager control port (0: a free one).
        info_port: RE Manager console-output port (0: a free one).
        publish_port: Port of the 0MQ document feed (0: a free one; None: off).
        publish_host: Interface of the feed; off loopback it needs `curve_dir`.
        curve_dir: Folder with the feed's CURVE `server.key_secret` and the
            clients' public keys in `clients/` (`qserver-zmq-keys` or
            `zmq.auth.create_certificates` make them).
        http_port: Port of the REST server (None: no REST).
        http_api_key: Its API key (required with `http_port`).
        open_environment: Open the worker environment at start.
        environment_timeout: Seconds to wait for it to open.
    """

    def __init__(
        self,
        profile: Path,
        *,
        redis: str | None = None,
        control_port: int = 0,
        info_port: int = 0,
        publish_port: int | None = 0,
        publish_host: str = "127.0.0.1",
        curve_dir: Path | None = None,
        http_port: int | None = None,
        http_api_key: str | None = None,
        open_environment: bool = True,
        environment_timeout: float = 120.0,
    ):
        self.profile_dir = Path(profile).resolve()
        self.profile = load_profile(self.profile_dir)
        self.data_dir = self.profile.data_path  # resolved once, from now's env
        self.directory = self.data_dir / "daemon"
        self.redis_address = redis
        self.control_port = control_port
        self.info_port = info_port
        self.publish_port = publish_port
        self.publish_host = publish_host
        self.curve_dir = curve_dir
        self.http_port = http_port
        self.http_api_key = http_api_key
        self.open_environment = open_environment
        self.environment_timeout = environment_timeout
        self.addresses: DaemonAddresses | None = None
        self._redis: Any = None
        self._tiled: Any = None
        self._manager: subprocess.Popen[bytes] | None = None
        self._http: subprocess.Popen[bytes] | None = None
        if (
            publish_port is not None
            and not _is_loopback(publish_host)
            and not curve_dir
        ):
            raise DaemonError(
                f"the document feed would listen on {publish_host} without "
                "authentication; give --curve-dir with CURVE keys, or keep it on "
                "127.0.0.1 and reach it through an ssh tunnel"
            )
        if http_port is not None and not http_api_key:
            raise DaemonError(
                "the REST server needs an API key: set LABSKY_HTTP_API_KEY "
                "(or --http-api-key-env NAME)"
            )
        if http_api_key and not http_api_key.isalnum():
            raise DaemonError(
                "the REST API key must be letters and digits only (bluesky-httpserver "
                "puts it in URLs); make one with `openssl rand -hex 32`"
            )

    @property
    def addresses_file(self) -> Path:
        """`DATA/daemon/daemon.json`: where clients find a running daemon."""
        return self.directory / "daemon.json"

    # -- start ------------------------------------------------------------

    def start(self) -> DaemonAddresses:
        """Start every part; returns the addresses (also saved to `daemon.json`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> DaemonAddresses:
        from labsky.daemon.redis_server import RedisServer
        from labsky.pipeline.server import LocalTiled

        if self.redis_address is None:
            self._redis = RedisServer(self.directory / "redis")
            redis = self._redis.address
        else:
            redis = self.redis_address
        env = {
            **os.environ,
            "LABSKY_DAEMON_PROFILE": str(self.profile_dir),
            "LABSKY_DAEMON_DATA_DIR": str(self.data_dir),
        }
        tiled_url = tiled_key = None
        if self.profile.tiled.uri == "embedded":
            self._tiled = LocalTiled(self.data_dir, wait=False)  # ready later
            tiled_url, tiled_key = self._tiled.url, self._tiled.api_key
            env["LABSKY_DAEMON_TILED_URI"] = tiled_url
            env["LABSKY_DAEMON_TILED_KEY"] = tiled_key
        elif self.profile.tiled.uri:
            tiled_url = self.profile.tiled.uri
        documents = None
        if self.publish_port is not None:
            feed_in, documents = self._start_proxy()
            env["LABSKY_DAEMON_PUBLISH"] = feed_in
        control = f"tcp://127.0.0.1:{self.control_port or free_port()}"
        info = f"tcp://127.0.0.1:{self.info_port or free_port()}"
        devices = f"tcp://127.0.0.1:{free_port()}"  # the worker serves it
        env["LABSKY_DAEMON_DEVICES"] = devices
        self._manager = self._start_manager(redis, control, info, env)
        self._wait_for_manager(control, info)
        http = self._start_http(control, info) if self.http_port is not None else None
        self.addresses = DaemonAddresses(
            profile=self.profile.name,
            control=control,
            info=info,
            redis=redis,
            documents=documents,
            tiled=tiled_url,
            tiled_api_key=tiled_key,
            tiled_container=self.profile.tiled.container,
            http=http,
            pid=os.getpid(),
            devices=devices,
        )
        self.addresses.save(self.addresses_file)
        if self.open_environment:
            self._open_environment(control, info)
        if self._tiled is not None:
            self._tiled.wait_ready()  # came up while the environment opened
        return self.addresses

    def _start_proxy(self) -> tuple[str, str]:
        """Start bluesky's 0MQ Proxy in a thread; return its in and out addresses."""
        from bluesky.callbacks.zmq import Proxy, ServerCurve

        feed_in = f"tcp://127.0.0.1:{free_port()}"
        port = self.publish_port or free_port()
        feed_out = f"tcp://{self.publish_host}:{port}"
        curve = None
        if self.curve_dir is not None:
            curve = ServerCurve(
                secret_path=self.curve_dir / "server.key_secret",
                client_public_keys=self.curve_dir / "clients",
                allow=None,
            )
        proxy = Proxy(in_address=feed_in, out_address=feed_out, out_curve=curve)
        threading.Thread(target=proxy.start, name="0mq-proxy", daemon=True).start()
        return feed_in, feed_out

    def _start_manager(
        self, redis: str, control: str, info: str, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        permissions = self.directory / "user_group_permissions.yaml"
        permissions.write_text(yaml.safe_dump(PERMISSIONS), encoding="utf-8")
        existing = self.directory / "existing_plans_and_devices.yaml"
        args = [
            sys.executable,
            "-m",
            "labsky.daemon.manager_main",  # start-re-manager, loaded-machine timeout
            "--startup-module", "labsky.daemon.startup",
            "--redis-addr", redis,
            "--redis-name-prefix", f"labsky_{self.profile.name or 'default'}",
            "--zmq-control-addr", control,
            "--zmq-info-addr", info,
            "--zmq-publish-console", "ON",
            "--existing-plans-devices", str(existing),
            "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
            "--user-group-permissions", str(permissions),
        ]  # fmt: skip
        log = (self.directory / "manager.log").open("ab")
        process = subprocess.Popen(
            tethered(args),  # it gets SIGTERM if we die
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.directory,
            start_new_session=True,  # a Ctrl-C at the terminal is for us, not it
        )
        log.close()
        return process

    def _api(self, control: str, info: str) -> Any:
        from bluesky_queueserver_api.zmq import REManagerAPI

        return REManagerAPI(zmq_control_addr=control, zmq_info_addr=info)

    def _wait_for_manager(self, control: str, info: str, timeout: float = 60) -> None:
        api = self._api(control, info)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._manager is not None and self._manager.poll() is not None:
                    raise DaemonError(
                        f"the RE Manager exited with {self._manager.returncode}:\n"
                        + self.log_tail()
                    )
                try:
                    api.status()
                    return
                except Exception:  # noqa: BLE001 - not answering yet
                    time.sleep(0.2)  # noqa: TID251 - polls: no sign it listens but an answer
            raise DaemonError(f"the RE Manager did not answer on {control}")
        finally:
            api.close()

    def _open_environment(self, control: str, info: str) -> None:
        api = self._api(control, info)
        try:
            if not api.status()["worker_environment_exists"]:
                api.environment_open()
                api.wait_for_idle(timeout=self.environment_timeout)
            if not api.status()["worker_environment_exists"]:
                raise DaemonError(
                    "the worker environment did not open (the session failed to "
                    "start):\n" + self.log_tail()
                )
        finally:
            api.close()

    def _start_http(self, control: str, info: str) -> str:
        port = self.http_port or free_port()
        env = {
            **os.environ,
            "QSERVER_ZMQ_CONTROL_ADDRESS": control,
            "QSERVER_ZMQ_INFO_ADDRESS": info,
            "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": str(self.http_api_key),
        }
        log = (self.directory / "http.log").open("ab")
        self._http = subprocess.Popen(
            tethered([  # it gets SIGTERM if we die
                sys.executable,
                "-c",
                "from bluesky_httpserver.server import start_server; start_server()",
                "--host", "127.0.0.1",
                "--port", str(port),
            ]),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a Ctrl-C at the terminal is for us, not it
        )  # fmt: skip
        log.close()
        url = f"http://127.0.0.1:{port}"
        self._wait_http(url)
        return url

    def _wait_http(self, url: str, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._http is not None and self._http.poll() is not None:
                raise DaemonError(
                    "the REST server exited; see " + str(self.directory / "http.log")
                )
            try:
                httpx.get(f"{url}/api", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)  # noqa: TID251 - polls: no sign it listens but an answer
        raise DaemonError(f"the REST server did not answer on {url}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the RE Manager's log."""
        path = self.directory / "manager.log"
        if not path.exists():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # -- run and stop -----------------------------------------------------

    def wait(self) -> int:
        """Block until the RE Manager exits; return its exit code."""
        assert self._manager is not None
        return self._manager.wait()

    def close(self, timeout: float = 60.0) -> None:
        """Close the environment (the session drains into HDF5), then stop all.

        The RE Manager gives its worker half a second to end, then goes on;
        the session there may still be storing its last rows. The manager is
        stopped only once that process (the writer of the session's ring) has
        ended, or its stop would kill the session halfway through its close
        (leaving the ring for `labsky recover`).
        """
        from labsky.pipeline import ring_path
        from labsky.pipeline.holders import live_worker, ring_writer_pid
        from labsky.processes import wait_for_exit

        if self.addresses is not None and self._manager is not None:
            if self._manager.poll() is None:
                session = ring_writer_pid(
                    ring_path(self.profile.ring, self.profile.name, self.data_dir)
                )
                api = self._api(self.addresses.control, self.addresses.info)
                try:
                    if api.status()["worker_environment_exists"]:
                        api.environment_close()
                        api.wait_for_idle(timeout=timeout)
                except Exception as exc:  # noqa: BLE001 - stopping anyway
                    logger.warning("closing the environment: %s", exc)
                finally:
                    api.close()
                if session is not None and not wait_for_exit(session, timeout):
                    logger.warning(
                        "the session (pid %d) still closes after %g s", session, timeout
                    )
        for process in (self._http, self._manager):
            stop(process, 15)
        if self._tiled is not None:
            # the worker's storage process registers its last runs: let it
            # finish before the catalog goes, or it (and the next start) waits
            worker = live_worker(self.data_dir / "runs")
            if worker is not None and not wait_for_exit(worker, timeout):
                logger.warning(
                    "the storage worker pid %d still stores after %g s", worker, timeout
                )
            self._tiled.close()
        if self._redis is not None:
            self._redis.close()
        if self.addresses_file.exists():
            self.addresses_file.unlink()
