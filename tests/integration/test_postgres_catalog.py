"""`labsky serve --catalog postgresql://...`: a session's runs in a PostgreSQL catalog."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
from tiled.client import from_uri
from tiled.queries import Key

from labsky.testing.waiting import wait_until

from ..conftest import REPO

INITDB = shutil.which("initdb")
pytestmark = pytest.mark.skipif(
    INITDB is None, reason="PostgreSQL (initdb) is not installed"
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(args):
    """Run PostgreSQL's tools as an unprivileged user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture
def postgres():
    home = Path(tempfile.mkdtemp(prefix="labsky-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    port = free_port()
    data = home / "data"
    subprocess.run(
        as_postgres([INITDB, "-D", str(data), "-A", "trust", "-U", "labsky"]),
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        as_postgres(
            [
                shutil.which("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                str(home),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (
                not subprocess.run(
                    ["pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                    capture_output=True,
                ).returncode
            ),
            "PostgreSQL accepting connections",
            30,
            every=0.2,
        )
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "labsky", "catalog"],
            check=True,
        )
        yield f"postgresql://labsky@127.0.0.1:{port}/catalog"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def serve(data_dir, catalog, port, key, *options):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labsky",
            "serve",
            "--data-dir",
            str(data_dir),
            "--catalog",
            catalog,
            "--port",
            str(port),
            *options,
        ],
        stdout=(data_dir.parent / "serve.log").open("a"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "LABSKY_TILED_API_KEY": key},
    )

    def connected():
        if process.poll() is not None:
            log = (data_dir.parent / "serve.log").read_text()[-3000:]
            raise AssertionError(f"labsky serve exited {process.returncode}:\n{log}")
        try:  # in a list: an empty catalog's client is falsy
            return [from_uri(f"http://127.0.0.1:{port}", api_key=key)]
        except httpx.TransportError:
            return None  # not listening yet

    try:
        (client,) = wait_until(connected, "labsky serve answering", 60, 0.3)
        return process, client
    except BaseException:
        process.kill()
        raise


def test_runs_go_to_a_postgresql_catalog_and_survive_a_server_restart(
    postgres, tmp_path, monkeypatch
):
    data_dir, key, port = tmp_path / "data", "alongrandomkey0123456789", free_port()
    profile = tmp_path / "pglab"
    profile.mkdir()
    (profile / "profile.yaml").write_text(
        textwrap.dedent(
            f"""
            devices: [{REPO / "devices" / "sim.yaml"}]
            data_dir: {data_dir}
            mock: true
            tiled: {{uri: "http://127.0.0.1:{port}", api_key_env: PG_TILED_KEY}}
            """
        )
    )
    monkeypatch.setenv("PG_TILED_KEY", key)
    process, _ = serve(data_dir, postgres, port, key, "--create")  # no runs yet
    try:
        from labsky.session import start

        with start(profile, progress=False) as session:
            result = session.run(
                "scan", ["pdet"], "stage.x", 0, 2, 5, md={"sample": "pg"}
            )
        uid = result.run_start_uids[0]
    finally:
        process.terminate()
        process.wait(20)

    process, client = serve(
        data_dir, postgres, port, key
    )  # a fresh server, same catalog
    try:
        run = client["raw"].search(Key("start.sample") == "pg")[uid]
        assert run.metadata["stop"]["exit_status"] == "success"
        np.testing.assert_allclose(
            run["primary"]["stage-x"].read(), np.linspace(0, 2, 5)
        )
    finally:
        process.terminate()
        process.wait(20)
    assert (
        subprocess.run(
            ["psql", postgres, "-tAc", "select count(*) from nodes"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        != "0"
    )
