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
from pathlib import Path
from typing import Any

from labsky.config import TiledConfig
from labsky.pipeline.catalog_file import set_aside_unfinished
from labsky.processes import free_port, stop

logger = logging.getLogger(__name__)

RUNS_SPEC_NAME = "CatalogOfBlueskyRuns"
RUNS_SPEC_VERSION = "3.0"
#: The environment variable naming the process a server must not outlive.
PARENT_ENV = "LABSKY_PARENT_PID"


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
        readable: More directories whose files it may serve (detector
            files kept elsewhere).
    """

    def __init__(
        self,
        data_dir: Path,
        api_key: str | None = None,
        port: int = 0,
        timeout: float = 60.0,
        wait: bool = True,
        readable: tuple[Path, ...] = (),
    ):
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        args = serve_command(self.data_dir, port=self.port, readable=readable)
        self.api_key = api_key or stored_key(self.data_dir)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.data_dir / "tiled" / "server.log"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "labsky.pipeline.server_main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**server_environment(self.api_key), PARENT_ENV: str(os.getpid())},
            start_new_session=True,  # a Ctrl-C at the terminal is for us, not it
        )
        self._listening = threading.Event()
        self._serving = False
        self._output = threading.Thread(
            target=self._copy_output, name="labsky-tiled-log", daemon=True
        )
        self._output.start()
        atexit.register(self.close)
        self.timeout = timeout
        self._ready = False
        if wait:
            self.wait_ready()

    def _copy_output(self) -> None:
        """Copy the server's output to its log (key masked); notice it listening."""
        assert self._process.stdout is not None
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "wb") as log:
            for line in self._process.stdout:
                log.write(line.replace(self.api_key.encode(), b"<api key>"))
                log.flush()
                if b"Uvicorn running on" in line:
                    self._serving = True
                    self._listening.set()
        self._listening.set()  # it exited: wait_ready says so

    def wait_ready(self) -> None:
        """Wait until the server listens (stopping it if it never does)."""
        if self._ready:
            return
        try:
            if not self._listening.wait(self.timeout):
                raise TimeoutError(
                    f"the Tiled server at {self.url} did not start in {self.timeout} s;"
                    f" see {self.log}"
                )
            if not self._serving:  # its output ended: it exited, or is exiting
                code = self._process.wait(self.timeout)
                raise RuntimeError(
                    f"the Tiled server exited with code {code}; see {self.log}"
                )
        except BaseException:
            self.close()
            raise
        self._ready = True
        logger.info("Tiled server at %s (catalog in %s)", self.url, self.data_dir)

    def alive(self) -> bool:
        """Whether the server process still runs."""
        return self._process.poll() is None

    def client(self) -> Any:
        """Return a Tiled client of the server's root."""
        from labsky.pipeline.tiled_client import connect

        return connect(self.url, api_key=self.api_key)

    def close(self) -> None:
        """Stop the server (later calls do nothing; nor does interpreter exit)."""
        atexit.unregister(self.close)
        stop(self._process)
        self._output.join(timeout=5)  # ends at the output's end
        if not self._output.is_alive() and self._process.stdout is not None:
            self._process.stdout.close()


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_api_key(api_key: str | None, host: str) -> None:
    """Refuse a key Tiled would refuse, and binding beyond loopback without one.

    Raises:
        ValueError: Saying what to do.
    """
    if api_key is not None and not api_key.isalnum():
        raise ValueError(
            "the API key may hold only letters and digits (Tiled's rule); make one "
            "with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    if host not in LOOPBACK_HOSTS and not api_key:
        raise ValueError(
            f"serving on {host} exposes the catalog beyond this machine: set "
            "LABSKY_TILED_API_KEY to a long random string (letters and digits) so "
            "that only clients with it can read; it is never taken on the command "
            "line, where every local user could read it"
        )


def server_environment(api_key: str) -> dict[str, str]:
    """The environment of a Tiled server process: the key goes there, not in argv."""
    return {**os.environ, "TILED_SINGLE_USER_API_KEY": api_key}


def key_hint(api_key: str) -> str:
    """A few characters of a key, enough to tell keys apart, too few to use."""
    return f"{api_key[:4]}…" if len(api_key) > 8 else "…"


def serve_command(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    catalog: str | None = None,
    readable: tuple[Path, ...] = (),
) -> list[str]:
    """The `tiled serve catalog` arguments serving a data directory.

    The catalog is the data directory's SQLite database unless `catalog`
    names another (a `postgresql://` URI when a lab outgrows one machine);
    a database whose creation was interrupted is set aside first
    (`set_aside_unfinished`).
    The run files and detector files are readable storage, so the HDF5 bytes
    are served where they are. The API key is not among the arguments (any
    local user can read a command line): pass `server_environment(key)`.

    Args:
        data_dir: The session's data directory.
        host: Interface to bind (check the key first with `check_api_key`).
        port: TCP port.
        catalog: SQL catalog URI (default: `DATA/tiled/catalog.db`).
        readable: More directories whose files it may serve.

    Raises:
        CatalogFileError: If the SQLite catalog is unstamped yet holds entries.
    """
    data_dir = data_dir.resolve()
    tiled_dir = data_dir / "tiled"
    for directory in (tiled_dir / "data", data_dir / "runs", data_dir / "detectors"):
        directory.mkdir(parents=True, exist_ok=True)
    if catalog is None:
        set_aside_unfinished(tiled_dir / "catalog.db")
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
        *(arg for path in readable for arg in ("-r", str(Path(path).resolve()))),
        "--host",
        host,
        "--port",
        str(port),
    ]


def stored_key(data_dir: Path) -> str:
    """The data directory's own API key (`DATA/tiled/api_key`, made on first use)."""
    path = data_dir.resolve() / "tiled" / "api_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
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
    from labsky.pipeline.tiled_client import connect

    assert config.uri is not None and config.uri != "embedded"
    return connect(config.uri, api_key=os.environ.get(config.api_key_env))
