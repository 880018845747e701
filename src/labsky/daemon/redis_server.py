"""A private redis-server on loopback, for the queue server's plan queue and history."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from labsky.errors import LabskyError
from labsky.processes import free_port, stop
from labsky.tethered import tethered

INSTALL_HINT = (
    "redis-server is not installed; the queue server keeps its queue and history "
    "in Redis. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; "
    "this repository: `.ci/install-system-packages`), or give the address of a "
    "running Redis with `--redis HOST:PORT`"
)


class RedisMissingError(LabskyError, RuntimeError):
    """redis-server is not on PATH."""


class RedisServer:
    """Run redis-server bound to 127.0.0.1, its data (append-only) in `directory`.

    The queue and the history survive a restart of the daemon, because the
    append-only file is replayed at start.

    Args:
        directory: Where Redis keeps its files.
        port: TCP port; 0 picks a free one.
        timeout: Seconds to wait for it to answer.

    Raises:
        RedisMissingError: Saying what to install.
    """

    def __init__(self, directory: Path, port: int = 0, timeout: float = 15.0):
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisMissingError(INSTALL_HINT)
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        log = (directory / "redis.log").open("ab")
        self._process = subprocess.Popen(
            tethered([  # it gets SIGTERM if we die
                executable,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(directory),
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "yes",
            ]),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the terminal is for us, not it
        )  # fmt: skip
        log.close()
        self._wait(timeout, directory)

    def _wait(self, timeout: float, directory: Path) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._process.returncode}; "
                    f"see {directory / 'redis.log'}"
                )
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)  # noqa: TID251 - polls: no sign it listens but an answer
        self.close()
        raise TimeoutError(f"redis-server on {self.address} did not answer")

    def close(self) -> None:
        """Stop the server (it writes its append-only file first)."""
        stop(self._process)
