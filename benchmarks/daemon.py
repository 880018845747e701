"""What the daemon costs: start-up, and plans through the queue vs in process.

Issue 8's benchmark, on `profiles/sim`:

- start-up: `Daemon.start()` to an open environment (Redis, Tiled, the RE
  Manager, the worker building the session);
- per plan: N short plans (`count([pdet], num=5)`) queued at once and run by
  the queue, against the same plans run in process by a session (RunEngine
  and data pipeline, no queue), as plans per second and their ratio;
- catalog lag: how long Tiled registration runs on after the last of the
  in-process runs (the registrar is behind when runs are short);
- feed latency: from a run's start document in the worker to a
  RemoteDispatcher in this process (0MQ Publisher -> Proxy -> SUB).

    python benchmarks/daemon.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import bluesky.plans as bp
from bluesky.callbacks.zmq import RemoteDispatcher

from labsky.client import LabClient
from labsky.daemon import Daemon
from labsky.session import start

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "sim"
PLANS = 30


def in_process(data: Path) -> tuple[float, float]:
    session = start(PROFILE, data_dir=data / "inproc", progress=False)
    try:
        pdet = session.devices["pdet"]
        session.execute(bp.count([pdet], num=5))  # warm up
        began = time.perf_counter()
        for _ in range(PLANS):
            session.run_engine(bp.count([pdet], num=5))
        elapsed = time.perf_counter() - began
        began = time.perf_counter()
        session.catalogued()  # until the catalog has every run
        return PLANS / elapsed, time.perf_counter() - began
    finally:
        session.close()


def through_the_queue(data: Path) -> tuple[float, float, list[float]]:
    os.environ["LABSKY_DATA_DIR"] = str(data / "daemon")
    daemon = Daemon(PROFILE)
    began = time.perf_counter()
    addresses = daemon.start()
    startup = time.perf_counter() - began
    latencies: list[float] = []
    dispatcher = RemoteDispatcher(addresses.documents)
    dispatcher.subscribe(
        lambda name, doc: (
            latencies.append(time.time() - doc["time"]) if name == "start" else None
        )
    )
    threading.Thread(target=dispatcher.start, daemon=True).start()
    time.sleep(1.0)  # noqa: TID251 - no RunEngine here; let the subscription reach the proxy
    try:
        with LabClient(addresses.control, addresses.info, addresses) as lab:
            lab.run("count", ["pdet"], num=5)  # warm up
            for _ in range(PLANS):
                lab.queue("count", ["pdet"], num=5)
            began = time.perf_counter()
            lab.start()
            lab.wait_idle(600)
            rate = PLANS / (time.perf_counter() - began)
    finally:
        daemon.close()
    return startup, rate, latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        direct, lag = in_process(data)
        startup, queued, latencies = through_the_queue(data)
    print(f"daemon start to an open environment: {startup:.1f} s")
    print(f"in process:  {direct:.1f} plans/s (count of 5, RunEngine + pipeline)")
    print(f"via queue:   {queued:.1f} plans/s  ratio {queued / direct:.2f}")
    print(f"catalog lag after {PLANS} in-process runs: {lag:.1f} s more to register")
    if latencies:
        print(
            f"start document to a remote dispatcher: median "
            f"{statistics.median(latencies) * 1e3:.1f} ms over {len(latencies)} runs"
        )


if __name__ == "__main__":
    main()
