import json

import h5py
import numpy as np
import pytest
from event_model import compose_run, pack_event_page

from labsky.pipeline.ring import RingBuffer, RingReader
from labsky.pipeline.ring.reader import Batch
from labsky.pipeline.sink import DataLossError, HDF5Sink
from labsky.pipeline.writer import RingWriter
from labsky.testing import validate_document


def recorded_run(n=25, md=None):
    """A document stream with scalars, arrays, strings and two streams."""
    bundle = compose_run(metadata={"plan_name": "scan", "scan_id": 7, **(md or {})})
    docs = [("start", bundle.start_doc)]
    primary = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "x": {"source": "sim", "dtype": "number", "shape": [], "units": "mm"},
            "counts": {"source": "sim", "dtype": "integer", "shape": []},
            "trace": {
                "source": "sim",
                "dtype": "array",
                "shape": [3, 4],
                "dtype_numpy": "<f4",
            },
            "label": {"source": "sim", "dtype": "string", "shape": []},
        },
    )
    baseline = bundle.compose_descriptor(
        name="baseline",
        data_keys={"temp": {"source": "sim", "dtype": "number", "shape": []}},
    )
    docs.append(("descriptor", baseline.descriptor_doc))
    docs.append(("descriptor", primary.descriptor_doc))
    rng = np.random.default_rng(0)
    docs.append(
        ("event", baseline.compose_event(data={"temp": 21.5}, timestamps={"temp": 1.0}))
    )
    events = []
    for i in range(n):
        data = {
            "x": float(i) / 10,
            "counts": int(rng.integers(0, 1000)),
            "trace": rng.normal(size=(3, 4)).astype("f4").tolist(),
            "label": f"point-{i}",
        }
        event = primary.compose_event(
            data=data, timestamps=dict.fromkeys(data, 1000.0 + i)
        )
        events.append(event)
    # half as single events, half as one event page
    docs += [("event", e) for e in events[: n // 2]]
    docs.append(("event_page", pack_event_page(*events[n // 2 :])))
    docs.append(
        ("event", baseline.compose_event(data={"temp": 21.7}, timestamps={"temp": 2.0}))
    )
    docs.append(("stop", bundle.compose_stop()))
    return docs, events


class RecordingFeed:
    """A CatalogFeed that records what the sink hands over."""

    def __init__(self):
        self.notes = []

    def document(self, name, doc, path):
        self.notes.append((name, {"doc": doc, "path": path}))

    def events(self, batch):
        self.notes.append(("events", {"rows": batch.num_rows}))

    def stored(self, run, stream, length):
        self.notes.append(("rows", {"run": run, "stream": stream, "length": length}))


def run_through_pipeline(tmp_path, docs, **sink_options):
    ring = RingBuffer(tmp_path / "ring", slot_count=16, slot_size=64 * 1024)
    cursor = ring.register_durable_reader()
    reader = RingReader(ring.path, durable_cursor=cursor, auto_commit=False)
    feed = RecordingFeed()
    notes = feed.notes
    sink = HDF5Sink(reader, tmp_path / "runs", catalog=feed, **sink_options).start()
    writer = RingWriter(ring, flush_rows=4, flush_seconds=60, min_interval=float("inf"))
    for name, doc in docs:
        validate_document(name, doc)
        writer(name, doc)
    sink.drain()
    sink.close()
    return sink, notes


def test_hdf5_file_holds_exactly_what_was_emitted(tmp_path):
    docs, events = recorded_run()
    sink, notes = run_through_pipeline(tmp_path, docs, block_rows=5)
    assert sink.error is None
    [path] = sink.closed_runs
    start, stop = docs[0][1], docs[-1][1]
    assert path.name == f"scan00007-{start['uid'][:8]}.h5"
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["start"]) == start
        assert json.loads(f.attrs["stop"]) == stop
        assert f.attrs["uid"] == start["uid"] and f.attrs["scan_id"] == 7
        assert f.attrs["plan_name"] == "scan"
        primary = f["primary"]
        assert (
            json.loads(primary.attrs["descriptor"])["data_keys"]["x"]["units"] == "mm"
        )
        np.testing.assert_array_equal(
            primary["seq_num"][:], [e["seq_num"] for e in events]
        )
        np.testing.assert_array_equal(primary["time"][:], [e["time"] for e in events])
        x = primary["data/x"]
        assert (
            x.dtype == np.float64 and x.attrs["units"] == "mm" and x.chunks is not None
        )
        assert x.maxshape == (None,)
        np.testing.assert_array_equal(x[:], [e["data"]["x"] for e in events])
        assert primary["data/counts"].dtype == np.int64
        np.testing.assert_array_equal(
            primary["data/counts"][:], [e["data"]["counts"] for e in events]
        )
        trace = primary["data/trace"]
        assert trace.shape == (25, 3, 4) and trace.dtype == np.float32
        np.testing.assert_array_equal(
            trace[:], np.array([e["data"]["trace"] for e in events], "f4")
        )
        assert [s.decode() for s in primary["data/label"][:]] == [
            e["data"]["label"] for e in events
        ]
        np.testing.assert_array_equal(
            primary["timestamps/x"][:], [e["timestamps"]["x"] for e in events]
        )
        assert list(f["baseline/data/temp"][:]) == [21.5, 21.7]
    names = [n for n, _ in notes]
    assert names[0] == "start" and names[-1] == "stop"
    rows = [p["length"] for n, p in notes if n == "rows" and p["stream"] == "primary"]
    assert rows[-1] == 25 and rows == sorted(rows)


def test_file_is_readable_while_the_run_goes_on(tmp_path):
    docs, events = recorded_run(n=10)
    ring = RingBuffer(tmp_path / "ring", slot_count=16, slot_size=64 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    sink = HDF5Sink(reader, tmp_path / "runs", flush_seconds=0.01).start()
    writer = RingWriter(ring, flush_rows=1, flush_seconds=0)
    for name, doc in docs[:-1]:  # everything but the stop document
        writer(name, doc)
    sink.drain()
    [run] = sink.runs.values()
    with h5py.File(run.path, "r", swmr=True) as f:
        assert f["primary/data/x"].shape == (10,)
        assert "stop" not in f.attrs
    writer(*docs[-1])
    sink.drain()
    sink.close()
    with h5py.File(run.path, "r") as f:
        assert "stop" in f.attrs


def test_cursor_is_committed_only_after_a_flush(tmp_path):
    docs, _ = recorded_run(n=10)
    ring = RingBuffer(tmp_path / "ring", slot_count=16, slot_size=64 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    sink = HDF5Sink(reader, tmp_path / "runs", flush_seconds=3600)
    writer = RingWriter(
        ring, flush_rows=100, flush_seconds=60, min_interval=float("inf")
    )
    for name, doc in docs[:3]:
        writer(name, doc)
    for item in reader.read_available():
        sink.handle(item)
    assert reader.position == 3 and reader.committed == 0
    sink.flush()
    assert reader.committed == 3
    sink.close()


@pytest.mark.parametrize("shape", [(16384,)])
def test_big_arrays_travel_in_batches_that_fit_a_slot(tmp_path, shape):
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "scope": {
                "source": "rp",
                "dtype": "array",
                "shape": list(shape),
                "dtype_numpy": "<f8",
            }
        },
    )
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    traces = [np.full(shape, float(i)) for i in range(12)]
    docs += [
        ("event", desc.compose_event(data={"scope": t}, timestamps={"scope": 0.0}))
        for t in traces
    ]
    docs.append(("stop", bundle.compose_stop()))
    ring = RingBuffer(tmp_path / "ring", slot_count=8, slot_size=512 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    sink = HDF5Sink(reader, tmp_path / "runs").start()
    writer = RingWriter(
        ring, flush_rows=1000, flush_seconds=60, min_interval=float("inf")
    )
    for name, doc in docs:
        writer(name, doc)
    sink.drain()
    sink.close()
    with h5py.File(sink.closed_runs[0], "r") as f:
        np.testing.assert_array_equal(f["primary/data/scope"][:], np.array(traces))


def test_a_gap_in_the_ring_stops_the_sink_without_committing_past_it(tmp_path):
    docs, _ = recorded_run(n=4)
    ring = RingBuffer(tmp_path / "ring", slot_count=16, slot_size=64 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    sink = HDF5Sink(reader, tmp_path / "runs", flush_seconds=3600)
    writer = RingWriter(ring, flush_rows=100, flush_seconds=60, min_interval=0)
    for name, doc in docs:
        writer(name, doc)
    items = reader.read_available()
    sink.handle(items[0])
    sink.handle(items[1])
    sink.flush()
    assert reader.committed == 2
    with pytest.raises(DataLossError, match="expected ring batch 2 and got 3"):
        sink.handle(items[3])
    with pytest.raises(DataLossError, match="expected ring batch 2 and got 2"):
        sink.handle(Batch(2, items[2].batch, missed=1))
    assert reader.committed == 2  # nothing past the gap is ever committed


def test_the_sink_thread_reports_a_gap_and_keeps_the_cursor(tmp_path):
    docs, _ = recorded_run(n=4)
    ring = RingBuffer(tmp_path / "ring", slot_count=16, slot_size=64 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    errors = []
    sink = HDF5Sink(reader, tmp_path / "runs", on_error=errors.append)
    sink._expected = 5  # as if batch 5 were the next one: every batch is a gap
    writer = RingWriter(ring, flush_rows=100, flush_seconds=60, min_interval=0)
    for name, doc in docs:
        writer(name, doc)
    sink.start()
    with pytest.raises(RuntimeError, match="the HDF5 sink failed"):
        sink.drain()
    assert isinstance(errors[0], DataLossError) and reader.committed == 0
    sink.close()


def test_a_short_run_costs_kilobytes_and_chunks_fit_the_stream(tmp_path):
    docs, _ = recorded_run(n=5)
    sink, _ = run_through_pipeline(tmp_path, docs)
    [path] = sink.closed_runs
    assert path.stat().st_size < 64 * 1024
    with h5py.File(path, "r") as f:
        assert f["primary/data/x"].chunks == (64,)
        assert f["primary/data/trace"].chunks[1:] == (3, 4)


def test_a_fast_stream_gets_big_chunks(tmp_path):
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={"x": {"source": "sim", "dtype": "number", "shape": []}},
    )
    events = [
        desc.compose_event(data={"x": float(i)}, timestamps={"x": 0.0})
        for i in range(20000)
    ]
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    docs += [("event_page", pack_event_page(*events))]
    docs.append(("stop", bundle.compose_stop()))
    ring = RingBuffer(tmp_path / "ring", slot_count=8, slot_size=1024 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    sink = HDF5Sink(reader, tmp_path / "runs").start()
    writer = RingWriter(ring, flush_rows=20000, flush_seconds=60, min_interval=0)
    for name, doc in docs:
        writer(name, doc)
    sink.drain()
    sink.close()
    with h5py.File(sink.closed_runs[0], "r") as f:
        assert f["primary/data/x"].chunks == (32768,)
        assert f["primary/data/x"].shape == (20000,)


@pytest.mark.parametrize("mode", [0o700, 0o750])
def test_run_files_get_the_data_directorys_access(tmp_path, mode):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(mode)
    docs, _ = recorded_run(n=2)
    ring = RingBuffer(tmp_path / "ring", slot_count=16, slot_size=64 * 1024)
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(), auto_commit=False
    )
    sink = HDF5Sink(reader, data / "runs").start()
    writer = RingWriter(ring, flush_rows=100, flush_seconds=60, min_interval=0)
    for name, doc in docs:
        writer(name, doc)
    sink.drain()
    sink.close()
    [path] = sink.closed_runs
    assert path.stat().st_mode & 0o777 == mode & 0o666
    assert path.parent.stat().st_mode & 0o777 == mode
