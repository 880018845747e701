"""Ring append rate: rows/s of 10 float64 columns published as Arrow batches.

Prints the figure and its ratio to a baseline measured in the same run (a
plain numpy copy of the same bytes into a memory map of the same size), because
the machines are shared and noisy. Issue 3's target: >= 2 million rows/s.

    python benchmarks/ring_append.py [--rows-per-batch 1000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from labsky.pipeline.ring import RingBuffer, RingReader

COLUMNS = 10


def make_batch(rows: int) -> pa.RecordBatch:
    data = np.random.default_rng(0).random((COLUMNS, rows))
    return pa.RecordBatch.from_arrays(
        [pa.array(col) for col in data], names=[f"c{i}" for i in range(COLUMNS)]
    )


def ring_rate(directory: Path, rows: int, seconds: float) -> float:
    writer = RingBuffer(directory / "bench.ring", slot_count=256, slot_size=256 * 1024)
    batch = make_batch(rows)
    published, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            writer.publish(batch)
        published += 100
    elapsed = time.perf_counter() - start
    reader = RingReader(directory / "bench.ring")
    assert reader.read_next() is not None  # what was written reads back
    reader.close()
    writer.close()
    return published * rows / elapsed


def memcpy_rate(directory: Path, rows: int, seconds: float) -> float:
    payload = make_batch(rows).nbytes
    size = 256 * 256 * 1024
    path = directory / "bench.raw"
    path.write_bytes(b"\0" * size)
    with path.open("r+b") as f:
        mm = mmap.mmap(f.fileno(), size)
    target = np.frombuffer(mm, dtype=np.uint8)
    source = np.random.default_rng(0).integers(0, 255, payload, dtype=np.uint8)
    slots = size // (256 * 1024)
    copies, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        offset = (copies % slots) * 256 * 1024
        target[offset : offset + payload] = source
        copies += 1
    elapsed = time.perf_counter() - start
    del target
    mm.close()
    return copies * rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        ring, raw = [], []
        for _ in range(args.repeats):
            ring.append(ring_rate(directory, args.rows_per_batch, args.seconds))
            raw.append(memcpy_rate(directory, args.rows_per_batch, args.seconds))
    r, b = statistics.median(ring), statistics.median(raw)
    print(
        f"ring append, {args.rows_per_batch}-row batches x {COLUMNS} float64 "
        f"(median of {args.repeats}, in {args.dir or 'tmp'}):"
    )
    print(f"  ring:     {r / 1e6:8.2f} M rows/s   (target >= 2.00)")
    print(f"  memcpy:   {b / 1e6:8.2f} M rows/s   (same bytes into a mapped file)")
    print(f"  ratio ring/memcpy: {r / b:.3f}")


if __name__ == "__main__":
    main()
