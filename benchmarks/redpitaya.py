"""Red Pitaya scope traces per second, through the RunEngine into HDF5.

Issue 4's benchmark: both channels (2 x 16384 float32) per event, trigger
NOW at decimation 1, against the simulator over a real TCP socket:

- raw: `controller.acquire()` in a loop (the SCPI sequence alone);
- in process: `bp.count([rp.scope])` bare, and with the data pipeline (ring,
  storage worker, HDF5), as a ratio measured in the same run;
- via the IOC: the same count from a client of `labsky ioc redpitaya`
  (acquisition in the IOC, traces over Channel Access), with the pipeline.

    python benchmarks/redpitaya.py
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bluesky.plans as bp
import h5py
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from labsky.devices.redpitaya import RedPitayaParams, redpitaya
from labsky.pipeline import DataPipeline
from labsky.sim import SimulationConfig, SimulatorHost

TRACES = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counts(
    run_engine: RunEngine, scope: object, pipeline: DataPipeline | None
) -> float:
    """Traces/s of one `count` of TRACES traces."""
    token = run_engine.subscribe(pipeline.writer) if pipeline else None
    start = time.perf_counter()
    run_engine(bp.count([scope], TRACES))
    elapsed = time.perf_counter() - start
    if token is not None and pipeline is not None:
        run_engine.unsubscribe(token)
        pipeline.wait_catalogued()
    return TRACES / elapsed


def paired(
    run_engine: RunEngine, scope: object, pipeline: DataPipeline
) -> tuple[list[float], list[float]]:
    """Alternate bare and piped counts, three pairs; close the pipeline."""
    bare, piped = [], []
    for _ in range(3):
        bare.append(counts(run_engine, scope, None))
        piped.append(counts(run_engine, scope, pipeline))
    pipeline.close()
    return bare, piped


def rows_on_disk(runs: Path) -> list[int]:
    """Traces in each run file."""
    rows = []
    for path in sorted(runs.rglob("*.h5")):
        with h5py.File(path, "r") as f:
            rows.append(f["primary/data/rp-scope-ch1"].shape[0])
    return rows


def in_process(directory: Path) -> None:
    config = SimulationConfig.model_validate(
        {"instruments": {"rp": {"kind": "redpitaya"}}}
    )
    with SimulatorHost(config) as host:
        run_engine = RunEngine({}, call_returns_result=True)
        rp = redpitaya(RedPitayaParams(address=host.endpoints["rp"]))
        rp.set_name("rp")
        call_in_bluesky_event_loop(rp.connect(timeout=5))

        async def raw() -> float:
            start = time.perf_counter()
            for _ in range(TRACES):
                await rp.controller.acquire()
            return TRACES / (time.perf_counter() - start)

        raw_rate = statistics.median(
            call_in_bluesky_event_loop(raw()) for _ in range(3)
        )
        pipeline = DataPipeline.open(directory / "rp.ring", directory / "runs")
        bare, piped = paired(run_engine, rp.scope, pipeline)
        call_in_bluesky_event_loop(rp.disconnect())
    ratios = [p / b for b, p in zip(bare, piped, strict=True)]
    print(f"raw SCPI acquisitions:         {raw_rate:7.1f} traces/s")
    print(f"RunEngine count, bare:         {statistics.median(bare):7.1f} traces/s")
    print(f"RunEngine count, HDF5 pipeline: {statistics.median(piped):6.1f} traces/s")
    print(f"  pipeline / bare:             {statistics.median(ratios):7.2f}")
    print(f"  pipeline / raw acquisition:  {statistics.median(piped) / raw_rate:7.2f}")
    print(f"  traces on disk per run:      {rows_on_disk(directory / 'runs')}")


def via_ioc(directory: Path) -> None:
    os.environ.update(
        EPICS_CA_SERVER_PORT=str(free_port()),
        EPICS_CA_REPEATER_PORT=str(free_port()),
        EPICS_CA_ADDR_LIST="127.0.0.1",
        EPICS_CA_AUTO_ADDR_LIST="NO",
    )
    ioc = subprocess.Popen(
        [sys.executable, "-m", "labsky", "ioc", "redpitaya", "--sim",
         "--prefix", "BENCH:", "--interface", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert ioc.stdout is not None
        while "serving" not in ioc.stdout.readline():
            pass
        run_engine = RunEngine({}, call_returns_result=True)
        rp = redpitaya(RedPitayaParams(ioc_prefix="BENCH:"))
        rp.set_name("rp")
        call_in_bluesky_event_loop(rp.connect(timeout=10))
        pipeline = DataPipeline.open(directory / "ioc.ring", directory / "ioc-runs")
        bare, piped = paired(run_engine, rp.scope, pipeline)
    finally:
        ioc.terminate()
        ioc.wait(10)
    print(f"via the IOC, bare:             {statistics.median(bare):7.1f} traces/s")
    print(f"via the IOC, HDF5 pipeline:    {statistics.median(piped):7.1f} traces/s")
    print(f"  traces on disk per run:      {rows_on_disk(directory / 'ioc-runs')}")


def main() -> None:
    print(f"{TRACES} traces per count, 2 x 16384 float32 each, trigger NOW, dec 1")
    with tempfile.TemporaryDirectory() as tmp:
        in_process(Path(tmp))
        via_ioc(Path(tmp))


if __name__ == "__main__":
    main()
