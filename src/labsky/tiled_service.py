"""The Tiled catalog runs are registered in.

`LocalTiled` runs a Tiled server in this process on loopback, with a SQLite
catalog and DuckDB tables kept in a directory so runs persist across sessions
(tiled's own `SimpleTiledServer`). `runs_container` returns the container that
holds runs, created with the `CatalogOfBlueskyRuns` spec so bluesky-tiled-plugins
queries (`TimeRange`, `ScanID`) and `c[-1]` work on it.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from labsky.config import TiledConfig

logger = logging.getLogger(__name__)

RUNS_SPEC_NAME = "CatalogOfBlueskyRuns"
RUNS_SPEC_VERSION = "3.0"


class LocalTiled:
    """A Tiled server on 127.0.0.1 in a background thread of this process.

    Args:
        directory: Holds `catalog.db` (SQLite), `storage.duckdb` and `data/`.
        readable_storage: Directories of externally written files (detector
            HDF5) that the server may read.
        api_key: The single-user key. When omitted, the key stored in
            `directory/api_key` is used, or a random one is made and stored
            there (readable by the owner only), so clients keep working
            across restarts.
        port: TCP port; 0 picks a free one.
    """

    def __init__(
        self,
        directory: Path,
        readable_storage: list[Path] | None = None,
        api_key: str | None = None,
        port: int = 0,
    ):
        from tiled.server import SimpleTiledServer

        directory.mkdir(parents=True, exist_ok=True)
        for path in readable_storage or []:
            path.mkdir(parents=True, exist_ok=True)
        self.api_key = api_key or _stored_key(directory / "api_key")
        self._server = SimpleTiledServer(
            directory=directory,
            api_key=self.api_key,
            port=port,
            readable_storage=[str(p) for p in readable_storage or []],
        )
        self.directory = directory
        self.port: int = int(self._server.port or port)
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        # The server runs in a non-daemon thread, which Python joins before any
        # atexit handler runs: stop it as soon as the main thread finishes, so a
        # session left open (an IPython prompt being quit) never hangs the exit.
        threading.Thread(
            target=self._close_when_main_thread_ends,
            name="labsky-tiled-reaper",
            daemon=True,
        ).start()
        logger.info("Tiled server at %s (catalog in %s)", self.url, directory)

    @classmethod
    def for_data_dir(
        cls, data_dir: Path, api_key: str | None = None, port: int = 0
    ) -> LocalTiled:
        """Serve the catalog of a session's data directory (runs and detectors)."""
        data_dir = data_dir.resolve()
        return cls(
            data_dir / "tiled",
            readable_storage=[data_dir / "runs", data_dir / "detectors"],
            api_key=api_key,
            port=port,
        )

    def _close_when_main_thread_ends(self) -> None:
        threading.main_thread().join()
        self.close()

    def client(self) -> Any:
        """Return a Tiled client of the server's root."""
        from tiled.client import from_uri

        return from_uri(self.url, api_key=self.api_key)

    def close(self) -> None:
        """Stop the server (once; later calls do nothing)."""
        if not self._closed.is_set():
            self._closed.set()
            self._server.close()


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
    if host not in LOOPBACK_HOSTS and not api_key:
        raise ValueError(
            f"serving on {host} exposes the catalog beyond this machine: pass "
            "--api-key KEY (a long random string) so that only clients with it "
            "can read"
        )
    tiled_dir.mkdir(parents=True, exist_ok=True)
    (tiled_dir / "data").mkdir(exist_ok=True)
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
    from tiled.structures.core import Spec

    if name not in root:
        root.create_container(
            name, specs=[Spec(RUNS_SPEC_NAME, version=RUNS_SPEC_VERSION)]
        )
    return root[name]


def remote_client(config: TiledConfig) -> Any:
    """Connect to the server named by `config.uri` with the key from the environment."""
    from tiled.client import from_uri

    assert config.uri is not None and config.uri != "embedded"
    return from_uri(config.uri, api_key=os.environ.get(config.api_key_env))
