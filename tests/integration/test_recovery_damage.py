"""Recovery refuses what it cannot read, keeps everything, saves what it can, never hangs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labsky.pipeline import RecoveryError
from labsky.pipeline.recover import recover
from labsky.pipeline.ring.layout import CURSORS_OFFSET, HEADER_SIZE, slot_offset

pytestmark = pytest.mark.slow

SLOTS, SLOT_SIZE = 64, 16 * 1024

# A writer that dies: 40 events stored and committed, 60 more only in the ring.
CRASH = textwrap.dedent(
    f"""
    import os, sys
    from pathlib import Path
    from event_model import compose_run
    from labsky.pipeline.ring import RingBuffer, RingReader
    from labsky.pipeline.sink import HDF5Sink
    from labsky.pipeline.writer import RingWriter

    root = Path(sys.argv[1])
    ring = RingBuffer(root / "ring", slot_count={SLOTS}, slot_size={SLOT_SIZE})
    reader = RingReader(ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False)
    sink = HDF5Sink(reader, root / "runs", flush_seconds=3600)
    writer = RingWriter(ring, flush_rows=1, flush_seconds=3600, min_interval=0)
    bundle = compose_run(metadata={{"scan_id": 1, "purpose": "crash"}})
    writer("start", bundle.start_doc)
    desc = bundle.compose_descriptor(
        name="primary", data_keys={{"x": {{"source": "s", "dtype": "number", "shape": []}}}}
    )
    writer("descriptor", desc.descriptor_doc)
    for i in range(100):
        writer("event", desc.compose_event(data={{"x": float(i)}}, timestamps={{"x": 0.0}}))
        if i == 39:
            for item in reader.read_available():
                sink.handle(item)
            sink.flush()
    os._exit(0)  # killed: run open, 60 events after the committed cursor
    """
)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    root = tmp_path_factory.mktemp("crashed")
    subprocess.run([sys.executable, "-c", CRASH, str(root)], check=True, timeout=120)
    return root


@pytest.fixture
def state(crashed, tmp_path):
    """A fresh copy of the crashed state: ring, open-runs.json, the open run file."""
    copy = tmp_path / "state"
    copy_state(crashed, copy)
    return copy


def copy_state(source: Path, target: Path) -> None:
    """Copy a crashed data directory; its record of open runs names the copies."""
    shutil.copytree(
        source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.wake")
    )
    record = target / "runs" / "open-runs.json"
    opened = json.loads(record.read_text())
    record.write_text(
        json.dumps(
            {
                uid: path.replace(str(source), str(target))
                for uid, path in opened.items()
            }
        )
    )


def run_file(root: Path) -> Path:
    [path] = (root / "runs").rglob("*.h5")
    return path


def rows(path: Path) -> int:
    with h5py.File(path, "r", swmr=True) as f:
        return int(f["primary/seq_num"].shape[0])


def recover_cli(root: Path, *options: str) -> subprocess.CompletedProcess:
    profile = root / "profile"
    profile.mkdir(exist_ok=True)
    (profile / "profile.yaml").write_text(
        f"devices: []\ndata_dir: {root}\ntiled: {{uri: null}}\n"
        f"ring: {{directory: {root}}}\n"
    )
    # The profile's ring name differs from the crash's: point it at the same file.
    from labsky.config import load_profile
    from labsky.pipeline import ring_path

    expected = ring_path(load_profile(profile).ring, "profile", root)
    if (root / "ring").exists() and not expected.exists():
        (root / "ring").rename(expected)
    return subprocess.run(
        [sys.executable, "-m", "labsky", "recover", str(profile), *options],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ring_of(root: Path) -> Path:
    return next(p for p in root.glob("*ring") if p.is_file())


def test_an_intact_crash_is_recovered_completely(state):
    assert rows(run_file(state)) == 40
    done = recover_cli(state)
    assert done.returncode == 0, done.stderr
    assert "closed 1 runs" in done.stdout
    with h5py.File(run_file(state), "r") as f:
        assert f["primary/seq_num"].shape == (100,)
        assert json.loads(f.attrs["stop"])["exit_status"] == "fail"
    assert not list(state.glob("*ring"))  # everything stored: the ring is gone


def damage_header(state: Path, offset: int, data: bytes) -> None:
    ring = state / "ring"
    raw = bytearray(ring.read_bytes())
    raw[offset : offset + len(data)] = data
    ring.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: damage_header(s, 0, b"NOTARING"), "is not a labsky ring"),
        (
            lambda s: damage_header(s, CURSORS_OFFSET, (10**6).to_bytes(8, "little")),
            "past the last batch",
        ),
        (lambda s: (s / "ring").write_bytes(b""), "shorter than its header"),
        (lambda s: damage_header(s, 8, bytes(4)), "header is damaged"),
        (
            lambda s: (s / "ring").write_bytes(
                (s / "ring").read_bytes()[: HEADER_SIZE + 5000]
            ),
            "is truncated",
        ),
        (
            lambda s: (s / "runs" / "open-runs.json").write_text("{not json"),
            "open-runs.json is damaged",
        ),
    ],
    ids=[
        "bad-magic",
        "cursor-past-end",
        "empty-ring",
        "zero-slots",
        "truncated-ring",
        "open-runs",
    ],
)
def test_damage_is_refused_and_nothing_is_deleted(state, damage, message):
    damage(state)
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    done = recover_cli(state)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    ring = ring_of(state)
    assert ring.read_bytes() == before[state / "ring"]  # the ring is kept as it was
    assert rows(run_file(state)) == 40  # the run file too
    assert "stop" not in h5py.File(run_file(state), "r", swmr=True).attrs


def test_garbage_in_a_slot_saves_every_batch_before_it(state):
    # Batches: 0 start, 1 descriptor, 2.. events; the cursor is at 42.
    bad = 70
    offset = slot_offset(bad, SLOTS, SLOT_SIZE) + 16
    damage_header(state, offset, b"\xde\xad" * 32)
    done = recover_cli(state)
    assert done.returncode == 1
    assert f"batch {bad} is not a readable Arrow batch" in done.stderr
    assert "before it are saved" in done.stderr
    assert rows(run_file(state)) == bad - 2  # every event before the damage
    assert ring_of(state).exists()  # kept for another try
    # The run stays open: a repaired ring could still give the rest.
    assert "stop" not in h5py.File(run_file(state), "r", swmr=True).attrs


def test_a_missing_ring_is_refused_unless_asked(state):
    (state / "ring").unlink()
    done = recover_cli(state)
    assert done.returncode == 1 and "is gone" in done.stderr
    assert "--without-ring" in done.stderr
    done = recover_cli(state, "--without-ring")
    assert done.returncode == 0, done.stderr
    with h5py.File(run_file(state), "r") as f:
        assert f["primary/seq_num"].shape == (40,)
        assert "ring was gone" in json.loads(f.attrs["stop"])["reason"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "could not be read|is truncated|cannot be read"),
        ("superblock", "not a readable HDF5 file"),
    ],
)
def test_a_damaged_run_file_is_refused_without_hanging(state, damage, message):
    path = run_file(state)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 3]
    else:
        raw[:64] = bytes(64)
    path.write_bytes(bytes(raw))
    done = recover_cli(state)
    assert done.returncode == 1
    assert str(path.name) in done.stderr
    import re

    assert re.search(message, done.stderr), done.stderr
    assert path.read_bytes() == bytes(raw)  # kept
    assert ring_of(state).exists()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    where=st.sampled_from(["header", "slot", "open-runs"]),
    offset=st.integers(0, 4000),
    data=st.binary(min_size=1, max_size=16),
)
def test_fuzzed_inputs_never_give_a_traceback_or_lose_the_ring(
    crashed, tmp_path_factory, where, offset, data
):
    root = tmp_path_factory.mktemp("fuzz")
    copy_state(crashed, root)
    if where == "header":
        damage_header(root, offset % 200, data)
    elif where == "slot":
        damage_header(
            root, slot_offset(42 + offset % 58, SLOTS, SLOT_SIZE) + offset % 64, data
        )
    else:
        path = root / "runs" / "open-runs.json"
        raw = bytearray(path.read_bytes())
        raw[offset % len(raw) : offset % len(raw) + len(data)] = data
        path.write_bytes(bytes(raw))
    ring_before = (root / "ring").read_bytes()
    try:
        recover(root / "ring", root / "runs")
    except RecoveryError:
        assert (root / "ring").read_bytes() == ring_before  # refused: kept
