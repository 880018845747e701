"""Kill -9 soak: a session killed mid-scan loses no event, with or without recovery.

Each iteration starts a session in a child process, runs a fast scan into the
ring (on disk, so it survives the kill), kills the session with SIGKILL at a
random moment, and optionally its storage worker too (as a power cut would).
It then counts:

- published: every event batch the ring holds (the ring is sized so it does
  not wrap within an iteration, so every batch ever published is still there);
- stored without recover: rows in the run file once the worker (if alive) has
  drained the ring and exited;
- stored after recover: rows in the run file after `labsky recover`.

Used by `tests/integration/test_soak.py` (a few iterations) and
`benchmarks/soak.py` (as many as asked).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import h5py

from labsky.pipeline.format import EVENTS, SEQ_NUM, batch_kind, events_header
from labsky.pipeline.ring import RingReader
from labsky.processes import wait_for_exit

_CHILD = textwrap.dedent(
    """
    import sys
    import bluesky.plans as bp
    from labsky.session import start

    session = start(sys.argv[1], progress=False)
    print("started", flush=True)
    session.run_engine(bp.count([session.devices["stage"]], num=10**7, md={"soak": 1}))
    """
)


@dataclass
class SoakResult:
    """One iteration's counts of primary-stream events."""

    mode: str
    published: int
    stored_without_recover: int
    stored_after_recover: int

    @property
    def lost(self) -> int:
        """Events published but not in the file after recovery."""
        return self.published - self.stored_after_recover


def write_profile(directory: Path, devices: Path) -> Path:
    """A profile of simulated devices with its ring on disk, for the soak."""
    profile = directory / "soaklab"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "profile.yaml").write_text(
        textwrap.dedent(
            f"""
            devices: [{devices}]
            data_dir: {directory / "data"}
            mock: true
            tiled: {{uri: null}}
            ring: {{directory: {directory / "ring"}, size_mb: 64, slot_kb: 16}}
            """
        )
    )
    return profile


def _published(ring: Path) -> int:
    reader = RingReader(ring, start=0)
    seq_nums: set[int] = set()
    try:
        for item in reader.read_available():
            batch = item.batch
            if batch_kind(batch) == EVENTS and events_header(batch).stream == "primary":
                seq_nums.update(batch.column(SEQ_NUM).to_pylist())
        assert reader.missed == 0, "the soak's ring wrapped: make it bigger"
    finally:
        reader.close()
    return len(seq_nums)


def _rows(runs_dir: Path) -> int:
    """Rows of the primary stream in the run file (0 before its first block)."""
    files = list(runs_dir.rglob("*.h5"))
    if not files:
        return 0
    [path] = files
    with h5py.File(path, "r", swmr=True) as f:
        dataset = f.get("primary/seq_num")
        return 0 if dataset is None else int(dataset.shape[0])  # type: ignore[union-attr]


def soak_iteration(
    directory: Path, devices: Path, mode: str, rng: random.Random
) -> SoakResult:
    """Start, scan, kill -9 (`session` or `everything`), count, recover, count.

    Args:
        directory: An empty directory for this iteration.
        devices: The declaration file of the simulated devices.
        mode: `session` kills the session only; `everything` also its worker.
        rng: Chooses when to kill.
    """
    from labsky.config import load_profile
    from labsky.pipeline import ring_path

    profile_dir = write_profile(directory, devices)
    profile = load_profile(profile_dir)
    ring = ring_path(profile.ring, profile.name, profile.data_path)
    runs_dir = profile.data_path / "runs"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(profile_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "started":
        child.kill()
        raise RuntimeError("the soak session did not start")
    worker = int((runs_dir / "storage-worker.pid").read_text())
    # Kill at a random moment of the scan (waiting on the child itself).
    try:
        child.wait(timeout=rng.uniform(0.5, 3.0))
    except subprocess.TimeoutExpired:
        pass
    os.kill(child.pid, signal.SIGKILL)
    if mode == "everything":
        os.kill(worker, signal.SIGKILL)
    child.wait()
    wait_for_exit(worker, 120)  # a surviving worker drains the ring first
    published = _published(ring)
    stored = _rows(runs_dir)
    done = subprocess.run(
        [sys.executable, "-m", "labsky", "recover", str(profile_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"labsky recover failed: {done.stderr.strip()}")
    return SoakResult(mode, published, stored, _rows(runs_dir))
