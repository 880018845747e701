"""Frames for the page: shrunk so a small spot stays visible, and their statistics."""

import numpy as np

from labsky.daemon.device_api import downsample
from labsky.gui.hub import frame_statistics


def test_a_large_frame_is_shrunk_to_512_and_a_small_spot_survives():
    frame = np.full((2048, 2048), 100, np.uint16)
    frame[1002:1004, 1002:1004] = 3000  # 2x2 pixels: one in four is sampled
    small, step = downsample(frame)
    assert small.shape == (512, 512) and step == 4 and small.dtype == np.uint16
    assert small.max() == 3000
    assert np.argwhere(small == 3000).tolist() == [[250, 250]]


def test_odd_shapes_and_float_frames():
    small, step = downsample(np.full((241, 321), 7.6), side=100)
    assert (small.shape, step, small.dtype) == ((61, 81), 4, np.uint16)
    assert small.max() == 7  # clipped and truncated to counts
    small, step = downsample(np.zeros((100, 80), np.uint8))
    assert (small.shape, step, small.dtype) == ((100, 80), 1, np.uint8)


def test_statistics_find_the_spot():
    frame = np.full((256, 512), 10, np.uint16)
    frame[100:104, 300:304] = 1010
    header = {"dtype": "uint16", "shape": [256, 512], "step": 4}
    stats = frame_statistics(header, frame.tobytes())
    assert stats["min"] == 10 and stats["max"] == 1010
    cx, cy = stats["centroid"]
    assert abs(cx - 301.5 * 4) < 1e-3 and abs(cy - 101.5 * 4) < 1e-3  # full-frame px
    counts = stats["histogram"]["counts"]
    assert len(counts) == 64 and counts[0] == 256 * 512 - 16 and counts[-1] == 16
    assert abs(stats["mean"] - frame.mean()) < 1e-3
    assert abs(stats["std"] - frame.std()) < 1e-2
