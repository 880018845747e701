import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from labsky.pipeline.ring import (
    RingBuffer,
    RingCorruptError,
    RingFullError,
    RingOverrunError,
    RingReader,
    StorageStalledError,
)


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


def test_stalled_durable_reader_ends_the_wait_with_a_clear_error(tmp_path):
    writer = RingBuffer(
        tmp_path / "ring", slot_count=2, slot_size=4096, stall_seconds=0.05
    )
    writer.register_durable_reader()
    writer.publish(batch(0))
    writer.publish(batch(1))
    with pytest.raises(StorageStalledError, match="has taken no batch for 0.05 s"):
        writer.publish(batch(2))


def test_a_dead_durable_reader_ends_the_wait_at_once(tmp_path):
    alive = threading.Event()
    alive.set()
    writer = RingBuffer(
        tmp_path / "ring",
        slot_count=2,
        slot_size=4096,
        stall_seconds=None,
        reader_alive=alive.is_set,
    )
    writer.register_durable_reader()
    writer.publish(batch(0))
    writer.publish(batch(1))
    alive.clear()  # the storage worker reported its sink stopped
    with pytest.raises(StorageStalledError, match="durable reader .* has stopped"):
        writer.publish(batch(2))


def test_a_waiting_writer_is_woken_by_the_readers_commit(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=2, slot_size=4096)
    cursor = writer.register_durable_reader()
    reader = RingReader(tmp_path / "ring", durable_cursor=cursor, auto_commit=False)
    writer.publish(batch(0))
    writer.publish(batch(1))
    published = threading.Event()
    thread = threading.Thread(
        target=lambda: (writer.publish(batch(2)), published.set())
    )
    thread.start()
    assert not published.wait(0.3)  # full: the writer waits for the reader
    assert reader.read_next().seq == 0
    reader.commit()  # frees slot 0 and writes the wake-up
    assert published.wait(5)
    thread.join()
    assert writer.waits == 1


def test_the_ring_file_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "ring"
    path.write_bytes(b"")
    path.chmod(0o644)  # an older ring's mode must not carry over
    RingBuffer(path, slot_count=4, slot_size=4096)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_batch_committed_between_the_readers_two_looks_is_not_skipped(tmp_path):
    """The race of issue 16, made deterministic.

    The writer commits a slot (its seq) and then advances next_seq. A reader
    that looked at the slot first (empty) and at next_seq second (already
    past it) took the batch for overwritten and skipped it. Here the writer
    commits exactly between the reader's two looks.
    """
    writer = RingBuffer(tmp_path / "ring", slot_count=8, slot_size=4096)
    cursor = writer.register_durable_reader()
    reader = RingReader(tmp_path / "ring", durable_cursor=cursor)
    real_next_seq = reader.next_seq
    committed = []

    def next_seq_after_a_commit():
        if not committed:  # the writer commits batch 0 just before this look
            committed.append(writer.publish(batch(0)))
        return real_next_seq()

    reader.next_seq = next_seq_after_a_commit
    first = reader.read_next()
    # Slot first, next_seq second saw an empty slot with next_seq past it
    # and skipped batch 0 as overrun; next_seq first sees it published.
    assert first is not None and first.seq == 0 and first.missed == 0


def test_a_durable_reader_that_finds_its_batch_gone_raises_instead_of_skipping(
    tmp_path,
):
    writer = RingBuffer(tmp_path / "ring", slot_count=4, slot_size=4096)
    cursor = writer.register_durable_reader()
    reader = RingReader(tmp_path / "ring", durable_cursor=cursor)
    for i in range(4):
        writer.publish(batch(i))
    # Something broke the writer's promise: slot 0 now holds batch 4.
    writer._floor = None
    writer._map[layout_offset(cursor)] = b"\x04" + b"\x00" * 7
    writer.publish(batch(4))
    reader._seq = 0
    with pytest.raises(RingOverrunError, match="batch 0 was overwritten"):
        reader.read_next()
    assert reader.position == 0  # nothing skipped


def layout_offset(cursor):
    from labsky.pipeline.ring.layout import cursor_offset

    start = cursor_offset(cursor)
    return slice(start, start + 8)


def test_garbage_in_a_published_slot_is_an_error_naming_the_batch(tmp_path):
    from labsky.pipeline.ring.layout import SLOT_HEADER, slot_offset

    writer = RingBuffer(tmp_path / "ring", slot_count=4, slot_size=4096)
    cursor = writer.register_durable_reader()
    writer.publish(batch(0))
    start = slot_offset(0, 4, 4096) + SLOT_HEADER.size
    writer._map[start : start + 16] = b"\xde\xad" * 8
    reader = RingReader(tmp_path / "ring", durable_cursor=cursor)
    with pytest.raises(RingCorruptError, match="batch 0 is not a readable Arrow batch"):
        reader.read_next()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("magic", "is not a labsky ring"),
        ("truncate", "is truncated"),
        ("empty", "shorter than its header"),
        ("slots", "header is damaged"),
        ("cursor", "past the last batch written"),
    ],
)
def test_a_damaged_ring_header_is_refused(tmp_path, damage, message):
    from labsky.pipeline.ring.layout import cursor_offset

    path = tmp_path / "ring"
    writer = RingBuffer(path, slot_count=4, slot_size=4096)
    cursor = writer.register_durable_reader()
    writer.publish(batch(0))
    writer.close()
    data = bytearray(path.read_bytes())
    if damage == "magic":
        data[0:8] = b"NOTARING"
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    elif damage == "slots":
        data[8:12] = bytes(4)
    elif damage == "cursor":
        data[cursor_offset(cursor) : cursor_offset(cursor) + 8] = (99).to_bytes(
            8, "little"
        )
    path.write_bytes(bytes(data))
    with pytest.raises(RingCorruptError, match=message):
        RingReader(path, durable_cursor=cursor)


def test_batch_larger_than_a_slot(tmp_path):
    writer = RingBuffer(tmp_path / "ring", slot_count=2, slot_size=1024)
    with pytest.raises(RingFullError, match="does not fit a 1024-byte slot"):
        writer.publish(batch(0, rows=1000))


def test_a_ring_without_room_is_refused_not_a_bus_error(tmp_path):
    """A full /dev/shm once killed whole test workers with SIGBUS (the pre-fault)."""
    room = tmp_path / "small"
    room.mkdir()
    script = textwrap.dedent(
        f"""
        from labsky.pipeline.ring import RingBuffer, RingSpaceError
        try:
            RingBuffer("{room}/new.ring", slot_count=16, slot_size=256 * 1024)
        except RingSpaceError as exc:
            print(exc)
        """
    )
    mount = f"mount -t tmpfs -o size=2m tmpfs {room} && "
    if subprocess.run(["unshare", "-rm", "sh", "-c", mount + "true"]).returncode:
        pytest.skip("cannot mount a small tmpfs here (unshare -rm refused)")
    # Inside its own mount namespace: a 2 MiB tmpfs, 1 MiB taken by an old ring.
    fill = f"head -c 1048576 /dev/zero > {room}/labsky-old-0123456789.ring && "
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'{mount}{fill}"$0" -c "$1" && ls {room}']
        + [sys.executable, script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "needs 4 MiB but" in done.stdout
    assert "other rings there (1) hold 1 MiB" in done.stdout
    assert "ring.size_mb" in done.stdout and "LABSKY_RING_DIR" in done.stdout
    assert "new.ring" not in done.stdout.splitlines()[-1]  # removed, room given back


def test_not_a_ring(tmp_path):
    (tmp_path / "junk").write_bytes(b"x" * 8192)
    with pytest.raises(RingCorruptError, match="is not a labsky ring"):
        RingReader(tmp_path / "junk")


WRITER_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, pyarrow as pa
    from labsky.pipeline.ring import RingBuffer
    ring = RingBuffer(sys.argv[1], slot_count=16, slot_size=4096, stall_seconds=60)
    ring.register_durable_reader()
    print("ready", flush=True)
    sys.stdin.readline()
    schema = pa.schema([("i", pa.int64())])
    for i in range(int(sys.argv[2])):
        ring.publish(pa.RecordBatch.from_arrays([pa.array([i])], schema=schema))
    print("done", flush=True)
    sys.stdin.readline()
""")


def test_a_durable_reader_never_skips_a_writer_in_another_process(tmp_path):
    """Stress: a small ring, a fast writer in another process, a durable reader here."""
    path, total = tmp_path / "ring", 20_000
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), str(total)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        reader = RingReader(path, durable_cursor=0, auto_commit=True)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        seen = 0
        while seen < total:
            item = reader.read_next()
            if item is None:
                continue  # spin: the race needs a reader as fast as the writer
            assert item.missed == 0
            assert item.seq == seen
            assert item.batch.column(0)[0].as_py() == seen
            seen += 1
        assert writer.stdout.readline().strip() == "done"
    finally:
        writer.stdin.close()
        writer.wait(30)
        writer.stdout.close()
    assert seen == total


READER_SCRIPT = textwrap.dedent("""
    import sys, time
    from labsky.pipeline.ring import RingReader
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


def test_a_ring_names_its_writer_once_it_is_made(tmp_path):
    from labsky.pipeline.holders import recorded_writer, ring_writer_pid

    path = tmp_path / "ring"
    RingBuffer(path, slot_count=16, slot_size=4096)
    assert recorded_writer(path) == os.getpid()
    assert ring_writer_pid(path) is None  # not another live process
    being_made = tmp_path / "new.ring"
    being_made.write_bytes(bytes(64))  # reserved, no header written yet
    assert recorded_writer(being_made) is None
    assert recorded_writer(tmp_path / "absent.ring") is None
