"""LiveRuns: a second process's view of the runs in a ring."""

import bluesky.plans as bp
import numpy as np
from ophyd_async.core import init_devices
from ophyd_async.sim import SimMotor

from labsky.pipeline.live import LiveRuns, wait_for_ring
from labsky.pipeline.ring import RingBuffer
from labsky.pipeline.writer import RingWriter


def test_live_runs_follow_runs_and_streams(tmp_path, run_engine):
    with init_devices():
        motor = SimMotor()
    path = tmp_path / "ring"
    ring = RingBuffer(path, slot_count=64, slot_size=64 * 1024)
    run_engine.subscribe(RingWriter(ring, flush_rows=1000, flush_seconds=0.0))
    live = LiveRuns(wait_for_ring(path, timeout=5), start="latest")
    assert live.poll() == 0 and live.latest is None and not live.done()

    run_engine(bp.scan([], motor, 0, 4, 5, md={"sample": "Si"}))
    assert live.poll() == 5
    assert live.done() and live.latest is not None
    assert live.latest.start["sample"] == "Si"
    assert live.latest.stop is not None and live.latest.stop["exit_status"] == "success"
    table = live.table()
    np.testing.assert_allclose(table["motor"], [0, 1, 2, 3, 4])
    assert list(table["seq_num"]) == [1, 2, 3, 4, 5]

    run_engine(bp.count([motor], num=2))
    assert live.poll() == 2
    assert len(live.runs) == 2 and len(live.table()) == 2
    assert live.table(run=next(iter(live.runs)))["motor"].iloc[-1] == 4
    assert live.missed == 0
    live.close()


def test_wait_for_ring_names_the_file(tmp_path):
    import pytest

    with pytest.raises(TimeoutError, match="no session is writing .*ring"):
        wait_for_ring(tmp_path / "ring", timeout=0.2)
