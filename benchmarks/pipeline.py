"""The data pipeline end to end: RunEngine -> ring -> HDF5 -> Tiled.

Every figure is printed with the baseline measured in the same run (machines
are shared and noisy). Issue 3's targets:

- step-scan rate with the full pipeline >= 0.95 of a bare RunEngine;
- HDF5 sink >= 1 million rows/s (10 float64 columns), also shown against a
  raw h5py block write of the same data;
- event -> live reader in another process: median <= 1 ms;
- event -> visible through Tiled over HTTP: <= 1 s;
- Tiled search over 10,000 runs: median <= 100 ms; a 10k-row read <= 100 ms.

    python benchmarks/pipeline.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import h5py
import numpy as np
from bluesky import RunEngine
from ophyd_async.core import init_devices, soft_signal_rw
from tiled.queries import Key

from labsky.pipeline import CatalogAddress, DataPipeline
from labsky.pipeline.ring import RingBuffer, RingReader
from labsky.pipeline.server import LocalTiled, runs_container
from labsky.pipeline.sink import HDF5Sink
from labsky.pipeline.writer import RingWriter

SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


def scan_rates(
    directory: Path, catalog: CatalogAddress, pairs: int = 10, num: int = 2000
) -> tuple[float, float, float]:
    """Events/s of `count` over a soft signal, bare and with the pipeline.

    Runs alternate (bare, piped) `pairs` times and the figure is the median
    of the per-pair ratios, so the machine's drift between runs cancels.
    """
    run_engine = RunEngine({}, call_returns_result=True)
    with init_devices():
        sig = soft_signal_rw(float, 0.0)

    def rate() -> float:
        start = time.perf_counter()
        run_engine(bp.count([sig], num=num))
        return num / (time.perf_counter() - start)

    pipeline = DataPipeline.open(
        directory / "scan.ring", directory / "runs", catalog=catalog
    )
    bare, piped = [], []
    for _ in range(pairs):
        bare.append(rate())
        token = run_engine.subscribe(pipeline.writer)
        piped.append(rate())
        run_engine.unsubscribe(token)
        pipeline.wait_catalogued()
    pipeline.close()
    run_engine.loop.call_soon_threadsafe(run_engine.loop.stop)
    ratios = [p / b for b, p in zip(bare, piped, strict=True)]
    return statistics.median(bare), statistics.median(piped), statistics.median(ratios)


def sink_rates(directory: Path, repeat: int = 3) -> tuple[float, float]:
    """Medians of `sink_rate` (files deleted between runs, so the machine's
    first-touch cost of fresh memory does not decide the figure)."""
    sink, raw = [], []
    for _ in range(repeat):
        s, r = sink_rate(directory)
        sink.append(s)
        raw.append(r)
        for path in [*directory.rglob("*.h5"), *directory.glob("sink.ring")]:
            path.unlink()
    return statistics.median(sink), statistics.median(raw)


def sink_rate(directory: Path, rows: int = 1_000_000) -> tuple[float, float]:
    """Rows/s the HDF5 sink drains from a full ring, and a raw h5py block write
    of the same columns with the same chunking."""
    keys = [f"c{i}" for i in range(10)]
    batch_rows = 1000
    ring = RingBuffer(
        directory / "sink.ring", slot_count=rows // batch_rows + 8, slot_size=256 * 1024
    )
    reader = RingReader(
        ring.path, durable_cursor=ring.register_durable_reader(0), auto_commit=False
    )
    writer = RingWriter(
        ring, flush_rows=batch_rows, flush_seconds=60, min_interval=float("inf")
    )
    writer("start", {"uid": "bench", "time": time.time(), "scan_id": 1})
    writer(
        "descriptor",
        {
            "uid": "desc",
            "run_start": "bench",
            "time": 0.0,
            "name": "primary",
            "data_keys": {
                k: {"source": "b", "dtype": "number", "shape": []} for k in keys
            },
        },
    )
    rng = np.random.default_rng(0)
    values = rng.random(batch_rows)
    for page in range(rows // batch_rows):
        seq = np.arange(page * batch_rows + 1, (page + 1) * batch_rows + 1)
        writer.event_page(
            {  # type: ignore[arg-type]
                "descriptor": "desc",
                "uid": [],
                "seq_num": seq,
                "time": values,
                "data": dict.fromkeys(keys, values),
                "timestamps": dict.fromkeys(keys, values),
                "filled": {},
            }
        )
    writer(
        "stop",
        {"uid": "s", "run_start": "bench", "time": 0.0, "exit_status": "success"},
    )
    sink = HDF5Sink(reader, directory / "sink-runs")
    start = time.perf_counter()
    sink.start()
    sink.drain(600)
    elapsed = time.perf_counter() - start
    sink.close()
    ring.close()

    block = 65536
    columns = 2 + 2 * len(keys)
    start = time.perf_counter()
    with h5py.File(directory / "raw.h5", "w", libver="latest") as f:
        datasets = [
            f.create_dataset(
                f"d{i}", shape=(0,), maxshape=(None,), chunks=(block,), dtype="f8"
            )
            for i in range(columns)
        ]
        data = rng.random(block)
        for offset in range(0, rows, block):
            for dataset in datasets:
                dataset.resize(offset + block, axis=0)
                dataset[offset : offset + block] = data
    raw = rows / (time.perf_counter() - start)
    return rows / elapsed, raw


READER = textwrap.dedent(
    """
    import sys, time
    from labsky.pipeline.ring import RingReader
    reader = RingReader(sys.argv[1], start="latest")
    print("ready", flush=True)
    latencies = []
    deadline = time.monotonic() + 30
    while len(latencies) < int(sys.argv[2]) and time.monotonic() < deadline:
        item = reader.read_next()
        if item is None:
            time.sleep(0.0001)
            continue
        meta = item.batch.schema.metadata
        if meta[b"kind"] == b"events":
            now = time.monotonic()
            latencies += [now - t for t in item.batch.column("data/sent").to_pylist()]
    print(" ".join(f"{x:.6f}" for x in latencies), flush=True)
    """
)


def live_latency(directory: Path, events: int = 300) -> list[float]:
    """Seconds from RingWriter.event to a reader in another process having it."""
    ring = RingBuffer(directory / "live.ring", slot_count=64, slot_size=64 * 1024)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(ring.path), str(events)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    writer = RingWriter(ring)
    writer("start", {"uid": "live", "time": 0.0})
    writer(
        "descriptor",
        {
            "uid": "d",
            "run_start": "live",
            "time": 0.0,
            "name": "primary",
            "data_keys": {"sent": {"source": "b", "dtype": "number", "shape": []}},
        },
    )
    for i in range(events):
        threading.Event().wait(0.005)  # a 200 Hz step scan
        now = time.monotonic()
        writer.event(
            {  # type: ignore[arg-type]
                "uid": str(i),
                "descriptor": "d",
                "seq_num": i + 1,
                "time": time.time(),
                "data": {"sent": now},
                "timestamps": {"sent": now},
                "filled": {},
            }
        )
    out, _ = reader.communicate(timeout=60)
    ring.close()
    return [float(x) for x in out.split()]


def tiled_visibility(
    directory: Path, server: LocalTiled, points: int = 20
) -> list[float]:
    """Seconds from an event's time to its row being readable through Tiled."""
    pipeline = DataPipeline.open(
        directory / "vis.ring", server.data_dir / "runs", catalog=address(server)
    )
    run_engine = RunEngine({}, call_returns_result=True)
    run_engine.subscribe(pipeline.writer)
    with init_devices():
        sig = soft_signal_rw(float, 0.0, name="sig")
    event_times: list[float] = []
    run_engine.subscribe(
        lambda name, doc: event_times.append(doc["time"]) if name == "event" else None
    )
    seen: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        """Poll as a live client does: find the array once, then refresh it."""
        watcher = runs_container(server.client(), "raw")
        node = None
        while not done.is_set():
            try:
                if node is None:
                    found = watcher.search(Key("start.purpose") == "visibility")
                    for run in found.values():
                        node = run["primary"]["sig"]
                else:
                    n = node.refresh().shape[0]  # one request per poll
                    now = time.time()
                    for i in range(n):
                        seen.setdefault(i, now)
            except Exception:  # noqa: BLE001 - the run is being registered
                pass
            threading.Event().wait(0.02)

    @bpp.run_decorator(md={"purpose": "visibility"})
    def plan():  # type: ignore[no-untyped-def]
        for i in range(points):
            yield from bps.mv(sig, i)
            yield from bps.trigger_and_read([sig])
            yield from bps.sleep(0.2)

    thread = threading.Thread(target=watch)
    thread.start()
    run_engine(plan())
    threading.Event().wait(1.5)
    done.set()
    thread.join()
    pipeline.close()
    run_engine.loop.call_soon_threadsafe(run_engine.loop.stop)
    return [seen[i] - event_times[i] for i in range(len(event_times)) if i in seen]


def address(server: LocalTiled) -> CatalogAddress:
    """Where the storage worker registers runs: the benchmark's server."""
    return CatalogAddress(server.url, server.api_key, "raw")


def search_and_read(
    server: LocalTiled, runs_count: int
) -> tuple[float, float, float, float, int]:
    """Median search time over `runs_count` runs, and 10k-row reads (one column
    with its node already fetched, the same with the path lookups, and a whole
    10-column stream)."""
    from tiled.structures.core import Spec

    runs = runs_container(server.client(), "raw")
    existing = len(runs)

    def make(index: int) -> None:
        client = runs_container(server.client(), "raw")
        for i in range(index, runs_count, 8):
            start = {
                "uid": f"bench-{i:06d}",
                "time": 1.7e9 + i,
                "scan_id": i,
                "sample": f"S{i % 500}",
                "plan_name": "count",
            }
            client.create_container(
                key=start["uid"],
                metadata={"start": start},
                specs=[Spec("BlueskyRun", version="3.0")],
            )

    if existing < runs_count:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(make, range(8)))
    # one real run with 10k rows, written through the pipeline
    pipeline = DataPipeline.open(
        server.data_dir / "read.ring", server.data_dir / "runs", catalog=address(server)
    )
    writer = pipeline.writer
    writer(
        "start", {"uid": "ten-k", "time": time.time(), "scan_id": 1, "purpose": "read"}
    )
    keys = [f"c{i}" for i in range(10)]
    writer(
        "descriptor",
        {
            "uid": "ten-k-d",
            "run_start": "ten-k",
            "time": 0.0,
            "name": "primary",
            "data_keys": {
                k: {"source": "b", "dtype": "number", "shape": []} for k in keys
            },
        },
    )
    values = np.random.default_rng(0).random(10_000)
    writer.event_page(
        {  # type: ignore[arg-type]
            "descriptor": "ten-k-d",
            "uid": [],
            "seq_num": np.arange(1, 10_001),
            "time": values,
            "data": dict.fromkeys(keys, values),
            "timestamps": dict.fromkeys(keys, values),
            "filled": {},
        }
    )
    writer(
        "stop",
        {"uid": "ten-k-s", "run_start": "ten-k", "time": 0.0, "exit_status": "success"},
    )
    pipeline.wait_catalogued()
    pipeline.close()

    searches = []
    for i in range(20):
        start = time.perf_counter()
        found = runs.search(Key("start.sample") == f"S{i * 7}")
        list(found.keys()[:50])
        searches.append(time.perf_counter() - start)
    fetched, columns, reads = [], [], []
    node = runs["ten-k"]["primary"]["c0"]
    for _ in range(5):
        start = time.perf_counter()
        column = node.read()
        fetched.append(time.perf_counter() - start)
        start = time.perf_counter()
        column = runs["ten-k"]["primary"]["c0"].read()
        columns.append(time.perf_counter() - start)
        start = time.perf_counter()
        table = runs["ten-k"]["primary"].read()
        reads.append(time.perf_counter() - start)
    assert table["c0"].shape == column.shape == (10_000,)
    return (
        statistics.median(searches),
        statistics.median(fetched),
        statistics.median(columns),
        statistics.median(reads),
        len(runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--parts",
        default="scan,sink,live,visibility,catalog",
        help="comma-separated subset of: scan,sink,live,visibility,catalog",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with (
        tempfile.TemporaryDirectory(dir=SHM) as tmp,
        tempfile.TemporaryDirectory() as disk,
    ):
        directory = Path(tmp)
        server = LocalTiled(Path(disk) / "data")
        try:
            runs_container(server.client(), "raw")
            if "scan" in parts:
                report_scan(directory, server)
            if "sink" in parts:
                report_sink(directory)
            if "live" in parts:
                report_live(directory)
            if "visibility" in parts:
                report_visibility(directory, server)
            if "catalog" in parts:
                report_catalog(server, args.runs)
        finally:
            server.close()


def report_scan(directory: Path, server: LocalTiled) -> None:
    bare, piped, ratio = scan_rates(directory, address(server))
    print("step scan (count of a soft signal; 10 alternating pairs of 2000-event runs)")
    print(f"  bare RunEngine          {bare:8.0f} events/s (median)")
    print(f"  with ring+HDF5+Tiled    {piped:8.0f} events/s (median)")
    print(f"  median of pair ratios   {ratio:8.3f}   (target >= 0.95)")


def report_sink(directory: Path) -> None:
    sink, raw = sink_rates(directory)
    print(
        "HDF5 sink, 10 float64 columns (+ timestamps, time, seq_num), median of 3 x 1M rows"
    )
    print(f"  sink from the ring      {sink / 1e6:8.2f} M rows/s (target >= 1.00)")
    print(
        f"  raw h5py block writes   {raw / 1e6:8.2f} M rows/s   ratio {sink / raw:.3f}"
    )


def report_live(directory: Path) -> None:
    latency = live_latency(directory)
    print(f"event -> live reader in another process ({len(latency)} events at 200 Hz)")
    print(
        f"  median {statistics.median(latency) * 1e3:.3f} ms, "
        f"p99 {np.percentile(latency, 99) * 1e3:.3f} ms (target median <= 1 ms)"
    )


def report_visibility(directory: Path, server: LocalTiled) -> None:
    visible = tiled_visibility(directory, server)
    print(f"event -> readable through Tiled over HTTP ({len(visible)} events at 5 Hz)")
    print(
        f"  median {statistics.median(visible):.3f} s, p90 "
        f"{np.percentile(visible, 90):.3f} s, max {max(visible):.3f} s (target <= 1 s)"
    )


def report_catalog(server: LocalTiled, runs: int) -> None:
    search, fetched, column, read, count = search_and_read(server, runs)
    print(f"Tiled catalog with {count} runs")
    print(
        f"  search Key('start.sample') == ...    median {search * 1e3:.1f} ms (target <= 100)"
    )
    print(
        f"  read a 10k-row column (node fetched) median {fetched * 1e3:.1f} ms (target <= 100)"
    )
    print(f"  same, with the 3 path lookups        median {column * 1e3:.1f} ms")
    print(
        f"  read a 10k-row x 10-column stream    median {read * 1e3:.1f} ms (11 arrays)"
    )


if __name__ == "__main__":
    main()
