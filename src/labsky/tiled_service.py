"""The Tiled catalog runs are registered in.

`LocalTiled` runs `tiled serve catalog` on loopback in a child process, with a
SQLite catalog and DuckDB tables kept in the data directory so runs persist
across sessions; `serve_command` builds its arguments (also for
`labsky serve`, which may bind elsewhere or use PostgreSQL). `runs_container`
returns the container that holds runs, created with the `CatalogOfBlueskyRuns`
spec so bluesky-tiled-plugins queries (`TimeRange`, `ScanID`) and `c[-1]` work on it.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labsky.config import TiledConfig
from labsky.processes import die_with_parent, free_port, stop

logger = logging.getLogger(__name__)

RUNS_SPEC_NAME = "CatalogOfBlueskyRuns"
RUNS_SPEC_VERSION = "3.0"


class LocalTiled:
    """A Tiled server on 127.0.0.1 serving a data directory, in a child process.

    It is `tiled serve catalog` with the arguments of `serve_command`: the
    SQLite catalog and DuckDB tables in `DATA/tiled`, the run and detector
    files as readable storage. It runs in its own process because HDF5 does
    not let one process hold a file open for SWMR writing (the HDF5 sink)
    and for reading (the server) at once; it also keeps the server's work
    off the RunEngine's interpreter. The child is told to die with its
    parent, so a killed session leaves no server behind.

    Args:
        data_dir: The session's data directory.
        api_key: The single-user key; default: the one stored in
            `DATA/tiled/api_key` (made on first use, owner-readable only), so
            clients keep working across restarts.
        port: TCP port; 0 picks a free one.
        timeout: Seconds to wait for the server to answer.
        wait: Wait for the server here; False returns at once (call
            `wait_ready` before using it), so a session starts it first
            and does other work while it comes up.
    """

    def __init__(
        self,
        data_dir: Path,
        api_key: str | None = None,
        port: int = 0,
        timeout: float = 60.0,
        wait: bool = True,
    ):
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        args = serve_command(self.data_dir, port=self.port, api_key=api_key)
        self.api_key = args[-1]
        self.url = f"http://127.0.0.1:{self.port}"
        log = (self.data_dir / "tiled" / "server.log").open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tiled", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,  # a Ctrl-C at the terminal is for us, not it
        )
        log.close()
        atexit.register(self.close)
        self.timeout = timeout
        self._ready = False
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the server answers (stopping it if it never does)."""
        if self._ready:
            return
        try:
            self._wait_ready(self.timeout)
        except BaseException:
            self.close()
            raise
        self._ready = True
        logger.info("Tiled server at %s (catalog in %s)", self.url, self.data_dir)

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False) as client:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"the Tiled server exited with code {self._process.returncode};"
                        f" see {self.data_dir / 'tiled' / 'server.log'}"
                    )
                try:
                    if client.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the Tiled server at {self.url} did not answer in {timeout} s"
                    )
                threading.Event().wait(0.1)

    def client(self) -> Any:
        """Return a Tiled client of the server's root."""
        from tiled.client import from_uri

        return from_uri(self.url, api_key=self.api_key)

    def close(self) -> None:
        """Stop the server (later calls do nothing)."""
        stop(self._process)


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def serve_command(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    catalog: str | None = None,
    api_key: str | None = None,
) -> list[str]:
    """The `tiled serve catalog` command serving a data directory.

    The catalog is the data directory's SQLite database unless `catalog`
    names another (a `postgresql://` URI when a lab outgrows one machine).
    The run files and detector files are readable storage, so the HDF5 bytes
    are served where they are.

    Args:
        data_dir: The session's data directory.
        host: Interface to bind; anything but loopback needs `api_key`.
        port: TCP port.
        catalog: SQL catalog URI (default: `DATA/tiled/catalog.db`).
        api_key: The single-user API key (default: the stored one).

    Raises:
        ValueError: When binding beyond loopback without an explicit key.
    """
    data_dir = data_dir.resolve()
    tiled_dir = data_dir / "tiled"
    if api_key is not None and not api_key.isalnum():
        raise ValueError(
            "the API key may hold only letters and digits (Tiled's rule); make one "
            "with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    if host not in LOOPBACK_HOSTS and not api_key:
        raise ValueError(
            f"serving on {host} exposes the catalog beyond this machine: pass "
            "--api-key KEY (a long random string) so that only clients with it "
            "can read"
        )
    for directory in (tiled_dir / "data", data_dir / "runs", data_dir / "detectors"):
        directory.mkdir(parents=True, exist_ok=True)
    key = api_key or _stored_key(tiled_dir / "api_key")
    return [
        "serve",
        "catalog",
        catalog or str(tiled_dir / "catalog.db"),
        "--init",
        "-w",
        str(tiled_dir / "data"),
        "-w",
        f"duckdb:///{tiled_dir / 'storage.duckdb'}",
        "-r",
        str(data_dir / "runs"),
        "-r",
        str(data_dir / "detectors"),
        "--host",
        host,
        "--port",
        str(port),
        "--api-key",
        key,
    ]


def _stored_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(16)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def runs_container(root: Any, name: str) -> Any:
    """Return the container `name` under `root`, creating it as a run catalog."""
    from tiled.client.utils import ClientError
    from tiled.structures.core import Spec

    if name not in root:
        try:
            root.create_container(
                name, specs=[Spec(RUNS_SPEC_NAME, version=RUNS_SPEC_VERSION)]
            )
        except ClientError as exc:  # another process created it meanwhile
            if exc.response.status_code != 409:
                raise
    return root[name]


def remote_client(config: TiledConfig) -> Any:
    """Connect to the server named by `config.uri` with the key from the environment."""
    from tiled.client import from_uri

    assert config.uri is not None and config.uri != "embedded"
    return from_uri(config.uri, api_key=os.environ.get(config.api_key_env))
