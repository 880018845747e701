"""RingWriter cost: event_page packing rate, and step-scan rate vs a bare RunEngine.

Figures are ratios to baselines measured in the same run (machines are shared
and noisy). Issue 3's targets: >= 2 million rows/s of 10 float64 columns via
event pages; step-scan rate with the writer >= 0.95 of the bare RunEngine.

    python benchmarks/ring_writer.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import bluesky.plans as bp
import numpy as np
from bluesky import RunEngine
from ophyd_async.core import init_devices, soft_signal_rw

from labsky.callbacks.ring_writer import RingWriter
from labsky.ring import RingBuffer

COLUMNS, PAGE_ROWS, PAGES = 10, 1000, 200


def page_rate(directory: Path) -> float:
    ring = RingBuffer(directory / "pages.ring", slot_count=256, slot_size=256 * 1024)
    writer = RingWriter(
        ring, flush_rows=1000, flush_seconds=60, min_interval=float("inf")
    )
    keys = [f"c{i}" for i in range(COLUMNS)]
    writer("start", {"uid": "r", "time": 0.0})
    writer(
        "descriptor",
        {
            "uid": "d",
            "run_start": "r",
            "time": 0.0,
            "name": "primary",
            "data_keys": {
                k: {"source": "b", "dtype": "number", "shape": []} for k in keys
            },
        },
    )
    rng = np.random.default_rng(0)
    pages = []
    for p in range(4):
        data = {k: rng.random(PAGE_ROWS).tolist() for k in keys}
        pages.append(
            {
                "descriptor": "d",
                "uid": [f"u{p}-{i}" for i in range(PAGE_ROWS)],
                "seq_num": list(range(PAGE_ROWS)),
                "time": [0.0] * PAGE_ROWS,
                "data": data,
                "timestamps": data,
                "filled": {},
            }
        )
    start = time.perf_counter()
    for i in range(PAGES):
        writer.event_page(pages[i % 4])  # type: ignore[arg-type]
    writer.flush()
    elapsed = time.perf_counter() - start
    ring.close()
    return PAGES * PAGE_ROWS / elapsed


def scan_rate(run_engine: RunEngine, num: int) -> float:
    with init_devices():
        sig = soft_signal_rw(float, 0.0)
    start = time.perf_counter()
    run_engine(bp.count([sig], num=num))
    return num / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory(
        dir="/dev/shm" if Path("/dev/shm").is_dir() else None
    ) as tmp:
        directory = Path(tmp)
        pages = [page_rate(directory) for _ in range(3)]
        run_engine = RunEngine({}, call_returns_result=True)
        ring = RingBuffer(directory / "scan.ring", slot_count=256, slot_size=256 * 1024)
        bare, piped = [], []
        for _ in range(3):
            bare.append(scan_rate(run_engine, 1000))
            token = run_engine.subscribe(RingWriter(ring))
            piped.append(scan_rate(run_engine, 1000))
            run_engine.unsubscribe(token)
    p, b, w = (statistics.median(v) for v in (pages, bare, piped))
    print("RingWriter (median of 3):")
    print(
        f"  event_page packing: {p / 1e6:6.2f} M rows/s of {COLUMNS} float64 "
        "(target >= 2.00)"
    )
    print(f"  step scan, bare RunEngine:      {b:8.0f} events/s")
    print(f"  step scan, with RingWriter:     {w:8.0f} events/s")
    print(f"  ratio with/bare: {w / b:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
