"""The simulated Red Pitaya in a session: plans into HDF5, and a lost board."""

import json
import math

import h5py
import numpy as np
import pytest

from labsky.testing.documents import AfterEvents
from tests.conftest import REPO

SIM = REPO / "profiles" / "sim"

pytestmark = pytest.mark.slow


def run_file(session, uid):
    return next(session.runs_dir.rglob(f"*{uid[:8]}.h5"))


def test_bode_sweep_and_traces_land_in_hdf5_with_the_resonance(labsky_session):
    session = labsky_session(SIM, tiled=False)
    result = session.run("network_analyzer", "rp.iq", 1.49e6, 1.51e6, 41)
    assert result.plan_result["f0"] == pytest.approx(1.5e6, rel=1e-4)
    with h5py.File(run_file(session, result.run_start_uids[0]), "r") as f:
        frequency = f["primary/data/rp-asg1-frequency"][:]
        amplitude = f["primary/data/rp-iq-amplitude"][:]
        start = json.loads(f.attrs["start"])
    assert start["plan_name"] == "network_analyzer"
    assert frequency[np.argmax(amplitude)] == pytest.approx(1.5e6, abs=600)
    assert amplitude.max() == pytest.approx(0.5, rel=0.03)  # settings: 0.5 V
    series = session.run("scope_series", "rp.scope", 4, trigger="NOW", decimation=64)
    with h5py.File(run_file(session, series.run_start_uids[0]), "r") as f:
        traces = f["primary/data/rp-scope-ch1"]
        assert traces.shape == (4, 16384) and traces.dtype == np.float32
        config = json.loads(f["primary"].attrs["descriptors"])[0]["configuration"]
    assert config["rp-scope"]["data"]["rp-scope-decimation"] == 64


def test_a_board_lost_mid_series_fails_the_run_and_keeps_its_traces(labsky_session):
    session = labsky_session(SIM, tiled=False)
    unplug = AfterEvents(5, lambda: session.simulators.set_fault("rp", "disconnect"))
    token = session.run_engine.subscribe(unplug)  # mid-run, however loaded we are
    try:
        with pytest.raises(Exception, match="rp"):
            session.run("scope_series", "rp.scope", 2000, md={"sample": "unplug"})
    finally:
        session.run_engine.unsubscribe(token)
    assert unplug.fired.wait(10)
    session.catalogued()
    [path] = [
        p
        for p in session.runs_dir.rglob("*.h5")
        if json.loads(h5py.File(p, "r").attrs["start"]).get("sample") == "unplug"
    ]
    with h5py.File(path, "r") as f:
        stop = json.loads(f.attrs["stop"])
        means = f["primary/data/rp-scope-ch1_mean"][:]
        traces = f["primary/data/rp-scope-ch1"].shape
    assert stop["exit_status"] == "fail" and "rp" in stop["reason"]
    assert 3 < len(means) < 2000 and traces == (len(means), 16384)
    assert not any(math.isnan(m) for m in means)
