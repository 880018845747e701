"""DataPipeline: the ring and its storage worker, started and closed together."""

import os
from pathlib import Path

from labsky.pipeline import DataPipeline


def test_a_closed_pipeline_leaves_no_ring_and_no_pipe_to_its_worker(tmp_path):
    ring = Path(os.environ["LABSKY_RING_DIR"]) / f"labsky-{tmp_path.name}.ring"
    pipeline = DataPipeline.open(ring, tmp_path / "runs")
    assert ring.exists() and pipeline.worker.healthy()
    pipeline.close()
    worker = pipeline.worker.process
    assert worker.returncode == 0
    assert worker.stdin is not None and worker.stdin.closed
    assert worker.stdout is not None and worker.stdout.closed
    assert not ring.exists()
