"""A real PVCAM camera through pyvcam (run on the lab PC: `pytest -m hardware`)."""

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider

from labsky.devices.pvcam import PvcamDetector, PyVcamBackend

pytestmark = pytest.mark.hardware
pyvcam = pytest.importorskip(
    "pyvcam.camera", reason="needs pyvcam and the PVCAM runtime"
)


def test_count_writes_the_cameras_frames(
    tmp_path, run_engine, connect_devices, collect_documents
):
    camera = PvcamDetector(
        PyVcamBackend(),
        StaticPathProvider(UUIDFilenameProvider(), tmp_path),
        name="cam",
    )
    connect_devices(camera, timeout=30)
    run_engine(bp.count([camera], num=5), collect_documents)
    resource = next(
        d for d in collect_documents.of("stream_resource") if d["data_key"] == "cam"
    )
    with h5py.File(resource["uri"].removeprefix("file://localhost"), "r") as f:
        frames = f["/entry/data/data"][:]
        numbers = f["/entry/frame_number"][:]
    assert frames.shape[0] == 5 and frames.any()
    assert (np.diff(numbers) > 0).all()
