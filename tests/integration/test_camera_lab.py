"""The simulated Prime BSI in the sim profile: frames through HDF5 and Tiled."""

import h5py
import numpy as np
import pytest

from tests.conftest import REPO

SIM = REPO / "profiles" / "sim"

pytestmark = pytest.mark.slow


def frames_of(session, uid):
    path = next(session.runs_dir.rglob(f"*{uid[:8]}.h5"))
    with h5py.File(path, "r") as f:
        return f["primary/data/camera"][:], {
            k: f[f"primary/data/{k}"][:] for k in f["primary/data"] if k != "camera"
        }


def test_frames_read_through_tiled_are_the_frames_on_disk(labsky_session):
    session = labsky_session(SIM)
    result = session.run("count", ["camera"], num=3, md={"sample": "frames"})
    uid = result.run_start_uids[0]
    frames, _ = frames_of(session, uid)
    assert frames.shape == (3, 2048, 2048) and frames.dtype == np.uint16
    node = session.runs[uid]["primary"]["camera"]
    assert node.shape[0] == 3
    np.testing.assert_array_equal(np.asarray(node[1]).reshape(2048, 2048), frames[1])


def test_a_stage_raster_moves_the_spot_on_the_camera(labsky_session):
    session = labsky_session(SIM, tiled=False)
    result = session.run(
        "raster",
        ["camera", "meter"],
        "sample.x",
        "sample.y",
        width=2,
        height=1,
        num_x=3,
        num_y=2,
    )
    _, data = frames_of(session, result.run_start_uids[0])
    x, y = data["sample-x"], data["sample-y"]
    cx, cy = data["camera-centroid_x"], data["camera-centroid_y"]
    # the sample moves under a fixed beam: +1 mm of stage is -154 px of spot
    np.testing.assert_allclose(cx - 1024, -154 * x, atol=2)
    np.testing.assert_allclose(cy - 1024, -154 * y, atol=2)
    assert (data["meter-power"] > 0).all()


def test_a_hardware_triggered_fly_scan_through_the_profile(labsky_session):
    session = labsky_session(SIM)
    result = session.run(
        "fly_frames",
        "camera",
        25,
        0.002,
        trigger_source="pulser",
        period=0.02,
        trigger="edge",
    )
    uid = result.run_start_uids[0]
    # bluesky-tiled-plugins keeps the collections-per-event axis: (N, 1, H, W)
    assert session.runs[uid]["primary"]["camera"].shape == (25, 1, 2048, 2048)
    frames, data = frames_of(session, uid)
    assert frames.shape[0] == 25 and data["camera-total"].shape == (25,)
