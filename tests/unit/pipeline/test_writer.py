import json

import bluesky.plans as bp
import numpy as np
from event_model import pack_event_page
from ophyd_async.core import init_devices
from ophyd_async.sim import PatternGenerator, SimMotor, SimPointDetector

from labsky.pipeline.ring import RingBuffer, RingReader
from labsky.pipeline.writer import RingWriter
from labsky.testing import DocumentCollector, validate_document
from labsky.testing.waiting import wait_until


def read_log(path):
    """Decode the ring back into (kind, payload) in order."""
    reader = RingReader(path, start=0)
    log = []
    for item in reader.read_available():
        assert item.missed == 0
        meta = {k.decode(): v.decode() for k, v in item.batch.schema.metadata.items()}
        if meta["kind"] == "document":
            log.append((meta["name"], json.loads(item.batch.column("doc")[0].as_py())))
        else:
            log.append(("events", item.batch))
    return log


def test_a_scan_becomes_one_ordered_log(tmp_path, run_engine):
    pattern = PatternGenerator()
    with init_devices():
        motor = SimMotor()
        det = SimPointDetector(pattern, num_channels=2)
    ring = RingBuffer(tmp_path / "ring", slot_count=64, slot_size=64 * 1024)
    collector = DocumentCollector()
    run_engine.subscribe(collector)
    run_engine.subscribe(
        RingWriter(ring, flush_rows=4, flush_seconds=60, min_interval=float("inf"))
    )
    run_engine(bp.scan([det], motor, 0, 1, 10, md={"sample": "Si"}))

    log = read_log(tmp_path / "ring")
    names = [name for name, _ in log]
    assert names[:2] == ["start", "descriptor"] and names[-1] == "stop"
    # 10 rows flushed as 4 + 4 + 2, the last before the stop document
    batches = [b for name, b in log if name == "events"]
    assert [b.num_rows for b in batches] == [4, 4, 2]
    for name, doc in log:
        if name != "events":
            validate_document(name, doc)
    assert log[0][1] == json.loads(json.dumps(collector.of("start")[0]))

    events = collector.of("event")
    table = {
        k: np.concatenate([b.column(k).to_numpy() for b in batches])
        for k in batches[0].schema.names
    }
    assert list(table["seq_num"]) == [e["seq_num"] for e in events]
    np.testing.assert_array_equal(table["time"], [e["time"] for e in events])
    for key in ("motor", "det-channel-1-value", "det-channel-2-value"):
        np.testing.assert_array_equal(
            table[f"data/{key}"], [e["data"][key] for e in events]
        )
        np.testing.assert_array_equal(
            table[f"timestamps/{key}"], [e["timestamps"][key] for e in events]
        )
    assert batches[0].schema.metadata[b"stream"] == b"primary"
    assert batches[0].schema.field("data/det-channel-1-value").type == "int64"


def test_event_pages_arrays_and_strings(tmp_path):
    ring = RingBuffer(tmp_path / "ring", slot_count=64, slot_size=256 * 1024)
    writer = RingWriter(
        ring, flush_rows=1000, flush_seconds=60, min_interval=float("inf")
    )
    start = {"uid": "run1", "time": 0.0}
    descriptor = {
        "uid": "d1",
        "run_start": "run1",
        "time": 0.0,
        "name": "primary",
        "data_keys": {
            "x": {
                "source": "sim",
                "dtype": "number",
                "shape": [],
                "dtype_numpy": "<f8",
            },
            "trace": {
                "source": "sim",
                "dtype": "array",
                "shape": [3, 2],
                "dtype_numpy": "<u2",
            },
            "label": {"source": "sim", "dtype": "string", "shape": []},
            "frame": {
                "source": "cam",
                "dtype": "array",
                "shape": [4, 4],
                "external": "STREAM:",
            },
        },
    }
    events = [
        {
            "uid": f"e{i}",
            "descriptor": "d1",
            "seq_num": i + 1,
            "time": float(i),
            "data": {
                "x": i * 0.5,
                "trace": np.full((3, 2), i, np.uint16),
                "label": f"p{i}",
            },
            "timestamps": {"x": float(i), "trace": float(i), "label": float(i)},
            "filled": {},
        }
        for i in range(2500)
    ]
    writer("start", start)
    writer("descriptor", descriptor)
    writer("event_page", pack_event_page(*events[:1700]))
    writer("event_page", pack_event_page(*events[1700:]))
    writer(
        "stop", {"uid": "s", "run_start": "run1", "time": 1.0, "exit_status": "success"}
    )

    log = read_log(tmp_path / "ring")
    batches = [b for name, b in log if name == "events"]
    assert [b.num_rows for b in batches] == [1000, 1000, 500]
    x = np.concatenate([b.column("data/x").to_numpy() for b in batches])
    np.testing.assert_array_equal(x, np.arange(2500) * 0.5)
    trace = batches[1].column("data/trace")
    assert json.loads(batches[1].schema.field("data/trace").metadata[b"shape"]) == [
        3,
        2,
    ]
    first = np.asarray(trace[0].values.to_numpy()).reshape(3, 2)
    np.testing.assert_array_equal(first, np.full((3, 2), 1000, np.uint16))
    assert batches[2].column("data/label")[-1].as_py() == "p2499"
    assert (
        "data/frame" not in batches[0].schema.names
    )  # external: travels as stream_datum


def test_time_bound_flushes_slow_scans(tmp_path, run_engine):
    with init_devices():
        motor = SimMotor()
    ring = RingBuffer(tmp_path / "ring", slot_count=64, slot_size=64 * 1024)
    run_engine.subscribe(RingWriter(ring, flush_rows=1000, flush_seconds=0.0))
    run_engine(bp.count([motor], num=3))
    batches = [b for name, b in read_log(tmp_path / "ring") if name == "events"]
    assert [b.num_rows for b in batches] == [1, 1, 1]  # visible at once, not at stop


def _event(i):
    return {
        "uid": f"e{i}",
        "descriptor": "d",
        "seq_num": i + 1,
        "time": 0.0,
        "data": {"x": float(i)},
        "timestamps": {"x": 0.0},
        "filled": {},
    }


def test_slow_events_go_out_at_once_and_a_burst_is_batched_then_flushed(tmp_path):
    ring = RingBuffer(tmp_path / "ring", slot_count=64, slot_size=64 * 1024)
    writer = RingWriter(ring, flush_rows=1000, flush_seconds=0.2, min_interval=0.05)
    writer("start", {"uid": "r", "time": 0.0})
    writer(
        "descriptor",
        {
            "uid": "d",
            "run_start": "r",
            "time": 0.0,
            "name": "primary",
            "data_keys": {"x": {"source": "s", "dtype": "number", "shape": []}},
        },
    )
    reader = RingReader(ring.path, start=2)
    writer.event(_event(0))  # after a pause: published at once
    assert [b.batch.num_rows for b in reader.read_available()] == [1]
    for i in range(1, 51):  # a burst: gathered
        writer.event(_event(i))
    first = sum(b.batch.num_rows for b in reader.read_available())
    assert first < 50  # gathered, not one batch per event
    rows = [first]

    def all_published():  # the timer publishes the rest of the burst
        rows.extend(b.batch.num_rows for b in reader.read_available())
        return sum(rows) >= 50

    wait_until(all_published, "the burst's last rows published by the timer", 10)
    assert sum(rows) == 50
    writer.close()
