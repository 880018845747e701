"""The catalog against stock bluesky + TiledWriter, side by side in one run (issue 15).

Every labsky figure is printed beside the same measure of a plain bluesky
setup: a RunEngine with bluesky-tiled-plugins' `TiledWriter` subscribed,
writing into `tiled serve catalog` (SQLite catalog, DuckDB tables), read with
the same stock client calls. Measures alternate between the two (the machine
is shared and noisy) and medians are printed with their ratios.

- 30 short runs (`count`, 5 points, with the sim profile's baseline): first
  start to all readable through Tiled (goal: ratio <= 1.0);
- `run["primary"].read()` of a 10k-row x 10-column stream (goal <= 1.0);
- search over 10,000 runs (goal <= 100 ms);
- step-scan events/s: bare RunEngine, labsky's pipeline (goal >= 0.95 of
  bare), stock TiledWriter;
- bytes per run file of a 5-point count, and what the scalars cost again in
  the catalog's tables;
- HDF5 compression of scalar columns: sink rate and bytes, none/lzf/gzip.

    python benchmarks/catalog.py [--rounds 3] [--runs 30] [--search-runs 10000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import h5py
import numpy as np
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from event_model import compose_run
from ophyd_async.core import init_devices, soft_signal_rw
from tiled.queries import Key

from labsky.pipeline.server import LocalTiled, runs_container
from labsky.testing.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]


def readable(runs: Any, uid: str, rows: int) -> bool:
    """Whether a run is complete in a catalog: its stop, and `rows` primary rows."""
    try:
        run = runs[uid]
        if not run.metadata.get("stop"):
            return False
        return len(run["primary"].base["internal"].read()) == rows
    except Exception:  # noqa: BLE001 - any part not there yet
        return False


def until_readable(runs: Any, uids: list[str], rows: int) -> None:
    pending = list(uids)

    def all_readable() -> bool:
        pending[:] = [u for u in pending if not readable(runs, u, rows)]
        return not pending

    wait_until(all_readable, "every run readable", timeout=3600, every=0.05)


def short_runs(
    session: Any, stock: Any, rounds: int, count: int
) -> dict[str, list[float]]:
    """Seconds from the first start to all `count` runs readable, per round."""
    engine = session.run_engine
    writer_token = session._tokens[-1]  # the RingWriter: subscribed last by start()
    writer = session.pipeline.writer
    mine = session.runs
    pdet = session.devices["pdet"]
    times: dict[str, list[float]] = {"labsky": [], "stock": []}

    def one(kind: str) -> None:
        nonlocal writer_token
        token = None
        if kind == "stock":
            engine.unsubscribe(writer_token)
            token = engine.subscribe(TiledWriter(stock))
        start = time.perf_counter()
        uids = [engine(bp.count([pdet], num=5)).run_start_uids[0] for _ in range(count)]
        until_readable(mine if kind == "labsky" else stock, uids, 5)
        times[kind].append(time.perf_counter() - start)
        if token is not None:
            engine.unsubscribe(token)
            writer_token = engine.subscribe(writer)

    for i in range(rounds):
        for kind in ("labsky", "stock") if i % 2 == 0 else ("stock", "labsky"):
            one(kind)
    return times


def ten_k_documents() -> list[tuple[str, dict[str, Any]]]:
    """A run of 10,000 rows x 10 number columns, as event-model documents."""
    bundle = compose_run(metadata={"purpose": "read", "scan_id": 1})
    keys = [f"c{i}" for i in range(10)]
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"source": "b", "dtype": "number", "shape": []} for k in keys},
    )
    values = np.random.default_rng(0).random(10_000)
    n = len(values)
    page = desc.compose_event_page(
        data={k: values.tolist() for k in keys},
        timestamps={k: values.tolist() for k in keys},
        seq_num=list(range(1, n + 1)),
        time=values.tolist(),
        validate=False,
    )
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("event_page", page),
        ("stop", bundle.compose_stop()),
    ]


def reads(session: Any, stock: Any, repeat: int) -> dict[str, list[float]]:
    """Seconds for `run["primary"].read()` of a 10k x 10 stream in each catalog."""
    docs = ten_k_documents()
    for name, doc in docs:
        session.pipeline.writer(name, doc)
    stock_writer = TiledWriter(stock)
    for name, doc in docs:
        stock_writer(name, doc)
    session.catalogued()
    uid = docs[0][1]["uid"]
    mine = session.runs
    times: dict[str, list[float]] = {"labsky": [], "stock": []}
    for i in range(repeat):
        for kind, runs in (("labsky", mine), ("stock", stock))[:: 1 if i % 2 else -1]:
            start = time.perf_counter()
            table = runs[uid]["primary"].read()
            times[kind].append(time.perf_counter() - start)
            assert table["c0"].shape == (10_000,)
    return times


def searches(server: LocalTiled, total: int) -> tuple[float, int]:
    """Median seconds of a metadata search over `total` runs in a catalog."""
    from tiled.structures.core import Spec

    runs = runs_container(server.client(), "raw")

    def make(index: int) -> None:
        client = runs_container(server.client(), "raw")
        for i in range(index, total, 8):
            start = {"uid": f"bench-{i:06d}", "time": 1.7e9 + i, "scan_id": i}
            start.update(sample=f"S{i % 500}", plan_name="count")
            client.create_container(
                key=start["uid"],
                metadata={"start": start},
                specs=[Spec("BlueskyRun", version="3.0")],
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(8)))
    found = []
    for i in range(20):
        start = time.perf_counter()
        list(runs.search(Key("start.sample") == f"S{i * 7}").keys()[:50])
        found.append(time.perf_counter() - start)
    return statistics.median(found), len(runs)


def scan_rates(
    session: Any, stock: Any, pairs: int, num: int = 2000
) -> dict[str, list[float]]:
    """Events/s of `count` over a soft signal: bare, labsky's pipeline, stock TiledWriter."""
    engine = RunEngine({}, call_returns_result=True, loop=session.run_engine.loop)
    with init_devices():
        sig = soft_signal_rw(float, 0.0)
    writer = session.pipeline.writer

    def rate(callback: Callable | None) -> float:
        token = engine.subscribe(callback) if callback is not None else None
        start = time.perf_counter()
        engine(bp.count([sig], num=num))
        elapsed = time.perf_counter() - start
        if token is not None:
            engine.unsubscribe(token)
        return num / elapsed

    rates: dict[str, list[float]] = {"bare": [], "labsky": [], "stock": []}
    for _ in range(pairs):
        rates["bare"].append(rate(None))
        rates["labsky"].append(rate(writer))
        session.stored()
        rates["stock"].append(rate(TiledWriter(stock)))
    return rates


def tiled_bytes(directory: Path) -> int:
    return sum(
        p.stat().st_size for p in (directory / "tiled").rglob("*") if p.is_file()
    )


def compression(directory: Path, rows: int = 1_000_000) -> dict[str, tuple[float, int]]:
    """Rows/s and bytes writing 10 float64 scalar columns in 65536-row blocks."""
    rng = np.random.default_rng(1)
    columns = {
        "position": np.cumsum(rng.normal(0, 1e-3, rows)),  # a motor: smooth
        "time": 1.7e9 + np.arange(rows) * 1e-3,  # timestamps: regular
        **{f"signal{i}": rng.normal(1.0, 0.01, rows) for i in range(8)},  # noise
    }
    results = {}
    for name, options in (
        ("none", {}),
        ("lzf", {"compression": "lzf"}),
        ("gzip-1", {"compression": "gzip", "compression_opts": 1}),
        ("shuffle+lzf", {"compression": "lzf", "shuffle": True}),
    ):
        path = directory / f"compress-{name}.h5"
        start = time.perf_counter()
        with h5py.File(path, "w", libver="latest") as f:
            for key, values in columns.items():
                dataset = f.create_dataset(
                    key,
                    shape=(0,),
                    maxshape=(None,),
                    chunks=(65536,),
                    dtype="f8",
                    **options,
                )
                for begin in range(0, rows, 65536):
                    block = values[begin : begin + 65536]
                    dataset.resize(begin + len(block), axis=0)
                    dataset[begin : begin + len(block)] = block
        results[name] = (rows / (time.perf_counter() - start), path.stat().st_size)
    return results


def ratio(mine: list[float], theirs: list[float]) -> float:
    return statistics.median(mine) / statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--search-runs", type=int, default=10_000)
    options = parser.parse_args()
    from labsky.session import start

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        session = start(
            REPO / "profiles" / "sim", data_dir=root / "labsky", progress=False
        )
        stock_server = LocalTiled(
            root / "stock", readable=(root / "labsky" / "detectors",)
        )
        try:
            session.catalogued()
            stock = runs_container(stock_server.client(), "raw")
            print(f"labsky {session.tiled.url} vs stock TiledWriter {stock_server.url}")

            tables_before = tiled_bytes(root / "labsky")
            times = short_runs(session, stock, options.rounds, options.runs)
            print(
                f"{options.runs} short runs, first start to all readable: labsky median "
                f"{statistics.median(times['labsky']):.1f} s, stock "
                f"{statistics.median(times['stock']):.1f} s, ratio "
                f"{ratio(times['labsky'], times['stock']):.2f} (goal <= 1.0); "
                f"all: labsky {[round(t, 1) for t in times['labsky']]}, "
                f"stock {[round(t, 1) for t in times['stock']]}"
            )
            files = sorted(session.runs_dir.rglob("*.h5"))
            sizes = [p.stat().st_size for p in files]
            tables = (tiled_bytes(root / "labsky") - tables_before) / max(1, len(files))
            print(
                f"run file of a 5-point count with the sim baseline: median "
                f"{statistics.median(sizes) / 1024:.1f} KiB ({len(files)} files); "
                f"catalog growth per run (SQL + tables): {tables / 1024:.1f} KiB"
            )

            read = reads(session, stock, repeat=5)
            print(
                f"read() of 10k x 10: labsky median {statistics.median(read['labsky']):.3f} s,"
                f" stock {statistics.median(read['stock']):.3f} s, ratio "
                f"{ratio(read['labsky'], read['stock']):.2f} (goal <= 1.0)"
            )

            rates = scan_rates(session, stock, pairs=5)
            bare = statistics.median(rates["bare"])
            print(
                f"step scan events/s: bare {bare:.0f}, labsky "
                f"{statistics.median(rates['labsky']):.0f} "
                f"({ratio(rates['labsky'], rates['bare']):.3f} of bare, goal >= 0.95), "
                f"stock TiledWriter {statistics.median(rates['stock']):.0f} "
                f"({ratio(rates['stock'], rates['bare']):.3f} of bare)"
            )
            found, total = searches(session.tiled, options.search_runs)
            print(
                f"search over {total} runs: median {found * 1e3:.0f} ms (goal <= 100)"
            )
            for name, (rows_per_s, size) in compression(root).items():
                print(
                    f"HDF5 scalars, {name:<12} {rows_per_s / 1e6:5.2f} M rows/s  "
                    f"{size / 1e6:6.1f} MB for 1 M rows x 10 columns"
                )
        finally:
            session.close()
            stock_server.close()


if __name__ == "__main__":
    main()
