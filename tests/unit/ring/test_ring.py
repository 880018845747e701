import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from labsky.ring import RingBuffer, RingFullError, RingReader


def batch(i: int, rows: int = 4) -> pa.RecordBatch:
    values = np.arange(rows, dtype=np.float64) + i * rows
    schema = pa.schema([("x", pa.float64())], metadata={"stream": "primary"})
    return pa.RecordBatch.from_arrays([pa.array(values)], schema=schema)


def first_value(b) -> float:
    return b.batch.column(0)[0].as_py()


def test_roundtrip_in_order_with_metadata(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=8, slot_size=4096)
    reader = RingReader(tmp_path / "ring")
    assert reader.read_next() is None
    assert [writer.publish(batch(i)) for i in range(5)] == [0, 1, 2, 3, 4]
    got = reader.read_available()
    assert [b.seq for b in got] == [0, 1, 2, 3, 4]
    assert [first_value(b) for b in got] == [0.0, 4.0, 8.0, 12.0, 16.0]
    assert got[0].batch.schema.metadata == {b"stream": b"primary"}
    assert all(b.missed == 0 for b in got)
    assert reader.read_next() is None


def test_late_reader_starts_at_oldest_batch_still_held(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=4, slot_size=4096)
    for i in range(10):
        writer.publish(batch(i))
    reader = RingReader(tmp_path / "ring")
    assert [b.seq for b in reader.read_available()] == [6, 7, 8, 9]
    latest = RingReader(tmp_path / "ring", start="latest")
    assert latest.read_next() is None
    writer.publish(batch(10))
    assert latest.read_next().seq == 10


def test_overrun_live_reader_is_told_how_many_it_missed(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=4, slot_size=4096)
    reader = RingReader(tmp_path / "ring", start=0)
    for i in range(3):
        writer.publish(batch(i))
    assert reader.read_next().seq == 0
    for i in range(3, 20):
        writer.publish(batch(i))
    got = reader.read_available()
    assert got[0].missed == got[0].seq - 1
    assert got[0].missed > 0
    assert [b.seq for b in got] == list(range(got[0].seq, 20))
    assert sum(b.missed for b in got) + len(got) + 1 == 20  # every batch counted once


def test_durable_reader_is_never_overrun(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=4, slot_size=4096)
    cursor = writer.register_durable_reader()
    reader = RingReader(tmp_path / "ring", durable_cursor=cursor)
    seen: list[int] = []

    def consume():
        while len(seen) < 50:
            b = reader.read_next()
            if b is None:
                time.sleep(0.001)
                continue
            assert b.missed == 0
            seen.append(int(first_value(b)))
            time.sleep(0.002)  # slower than the writer

    thread = threading.Thread(target=consume)
    thread.start()
    for i in range(50):
        writer.publish(batch(i, rows=1))
    thread.join(timeout=30)
    assert seen == list(range(50))
    assert writer.waits > 0  # back-pressure was applied


def test_stuck_durable_reader_times_out_with_a_clear_error(tmp_path):
    writer = RingBuffer(
        tmp_path / "ring", slot_count=2, slot_size=4096, backpressure_timeout=0.05
    )
    writer.register_durable_reader()
    writer.publish(batch(0))
    writer.publish(batch(1))
    with pytest.raises(TimeoutError, match="durable reader stuck at batch 0"):
        writer.publish(batch(2))


def test_batch_larger_than_a_slot(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=2, slot_size=1024)
    with pytest.raises(RingFullError, match="does not fit a 1024-byte slot"):
        writer.publish(batch(0, rows=1000))


def test_not_a_ring(tmp_path):
    (tmp_path / "junk").write_bytes(b"x" * 8192)
    with pytest.raises(ValueError, match="is not a labsky ring"):
        RingReader(tmp_path / "junk")


READER_SCRIPT = textwrap.dedent("""
    import sys, time
    from labsky.ring.reader import RingReader
    reader = RingReader(sys.argv[1], start=0)
    total, count, deadline = 0.0, 0, time.monotonic() + 60
    while count < 200 and time.monotonic() < deadline:
        b = reader.read_next()
        if b is None:
            time.sleep(0.0005)
            continue
        total += sum(b.batch.column(0).to_pylist())
        count += 1
    print(count, total, reader.missed, flush=True)
""")


def test_reader_in_another_process(tmp_path):
    path = tmp_path / "ring"
    writer = RingBuffer(path, slot_count=512, slot_size=4096)
    proc = subprocess.Popen(
        [sys.executable, "-c", READER_SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    for i in range(200):
        writer.publish(batch(i))
        if i % 50 == 0:
            time.sleep(0.01)
    out, _ = proc.communicate(timeout=90)
    count, total, missed = out.split()
    assert int(count) == 200
    assert float(total) == float(np.arange(800).sum())
    assert int(missed) == 0


def test_labsky_ring_tail_prints_rows_from_another_process(tmp_path):
    path = tmp_path / "ring"
    writer = RingBuffer(path, slot_count=16, slot_size=4096)
    writer.publish(batch(0, rows=2))
    writer.publish(batch(1, rows=2))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "labsky",
            "ring",
            "tail",
            str(path),
            "--from-start",
            "--count",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "#0 {'stream': 'primary'} rows=2" in result.stdout
    assert "{'x': 3.0}" in result.stdout
