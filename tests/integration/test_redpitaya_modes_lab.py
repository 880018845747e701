"""Sweep, deep memory and split trigger in a session: into HDF5 and Tiled.

profiles/sim's board: OUT1 drives a 1.5 MHz resonator (Q 250) seen on IN1,
OUT2 a cavity piezo whose transmission is on IN2.
"""

import json

import bluesky.plan_stubs as bps
import h5py
import numpy as np
import pytest

from labsky.devices.redpitaya.mode_plans import (
    deep_traces,
    generator_sweep,
    split_traces,
)
from tests.conftest import REPO

SIM = REPO / "profiles" / "sim"

pytestmark = pytest.mark.slow


def run_file(session, uid):
    return next(session.runs_dir.rglob(f"*{uid[:8]}.h5"))


def start_asg1(session, rp, frequency):
    session.execute(bps.mv(rp.asg1.frequency, frequency))
    session.execute(bps.mv(rp.asg1.output, True))
    session.execute(bps.trigger(rp.asg1.start, wait=True))


def test_a_sweep_through_the_resonance_lands_in_hdf5_and_tiled(labsky_session):
    session = labsky_session(SIM)
    rp = session.devices["rp"]
    start_asg1(session, rp, 1.48e6)
    # 20 kHz/s: 15 readings about 0.1 s apart cross the resonance once
    plan = generator_sweep(
        rp.asg1, 1.48e6, 1.52e6, 2.0, detectors=[rp.scope], num=15, delay=0.08
    )
    result = session.execute(plan)
    uid = result.run_start_uids[0]
    with h5py.File(run_file(session, uid), "r") as f:
        frequency = f["primary/data/rp-asg1-frequency"][:]
        read_at = f["primary/timestamps/rp-asg1-frequency"][:]
        traces = f["primary/data/rp-scope-ch1"][:]
        start = json.loads(f.attrs["start"])
        config = json.loads(f["primary"].attrs["descriptors"])[0]["configuration"]
    assert start["plan_name"] == "generator_sweep"
    assert start["sweep"]["mode"] == "LINEAR"
    sweep = config["rp-asg1"]["data"]
    assert sweep["rp-asg1-sweep-time"] == 2_000_000
    assert sweep["rp-asg1-sweep-start_frequency"] == 1.48e6
    assert np.all((frequency >= 1.48e6) & (frequency <= 1.52e6))
    # upwards; a loaded host may take longer than the 2 s sweep, which then
    # starts again from 1.48 MHz (UP repeats)
    steps = np.diff(frequency)
    again = steps < 0
    # from the start, during this run: every reading before a new sweep says
    # when the sweep began (1.48 MHz + 20 kHz/s x t), and they agree
    first = int(np.argmax(again)) + 1 if again.any() else len(frequency)
    began = read_at[:first] - (frequency[:first] - 1.48e6) / 20e3
    assert np.ptp(began) < 0.1  # s: 2 kHz
    assert start["time"] - 0.1 < began.mean() < read_at[0]
    assert np.all(steps[~again] > 0) and again.sum() <= 2
    assert np.all(frequency[1:][again] < 1.49e6)
    rms = traces.std(axis=1)
    peak = int(np.argmax(rms))
    assert frequency[peak] == pytest.approx(1.5e6, abs=3e3)  # the resonance
    assert rms[peak] > 4 * rms[0]
    # the sweep was stopped when the run ended
    assert session.execute(bps.rd(rp.asg1.sweep.enabled)).plan_result is False
    node = session.runs[uid]["primary"]
    np.testing.assert_allclose(node["rp-asg1-frequency"].read(), frequency)


def test_deep_traces_land_in_hdf5_and_tiled(labsky_session):
    session = labsky_session(SIM)
    rp = session.devices["rp"]
    start_asg1(session, rp, 1.5e6)
    samples = 131072
    result = session.execute(deep_traces(rp.scope, 2, samples=samples, decimation=8))
    uid = result.run_start_uids[0]
    with h5py.File(run_file(session, uid), "r") as f:
        ch1 = f["primary/data/rp-scope-deep_ch1"][:]
        means = f["primary/data/rp-scope-deep_ch2_mean"][:]
        config = json.loads(f["primary"].attrs["descriptors"])[0]["configuration"]
    assert ch1.reshape(2, samples).dtype == np.float32
    assert config["rp-scope"]["data"]["rp-scope-mode"] == "DEEP"
    assert config["rp-scope"]["data"]["rp-scope-deep_samples"] == samples
    assert np.asarray(means).size == 2
    # the plan put the scope back in the mode it was in
    assert session.execute(bps.rd(rp.scope.mode)).plan_result == "NORMAL"
    node = session.runs[uid]["primary"]["rp-scope-deep_ch1"]
    from_tiled = np.asarray(node.read()).reshape(2, samples)
    np.testing.assert_array_equal(from_tiled, ch1.reshape(2, samples))


def test_split_traces_land_in_hdf5_with_two_time_bases(labsky_session):
    session = labsky_session(SIM, tiled=False)
    rp = session.devices["rp"]
    start_asg1(session, rp, 1.5e6)
    plan = split_traces(
        rp.scope,
        3,
        trigger1="CH1_PE",
        level1=0.1,
        decimation1=1,
        trigger2="NOW",
        decimation2=4096,
        delay2=8192,
    )
    result = session.execute(plan)
    uid = result.run_start_uids[0]
    with h5py.File(run_file(session, uid), "r") as f:
        ch1 = f["primary/data/rp-scope-ch1"][:]
        ch2 = f["primary/data/rp-scope-ch2"][:]
        config = json.loads(f["primary"].attrs["descriptors"])[0]["configuration"]
    data = config["rp-scope"]["data"]
    assert data["rp-scope-mode"] == "SPLIT"
    assert data["rp-scope-ch2_dt"] == pytest.approx(4096 / 125e6)
    assert data["rp-scope-ch2_t0"] == 0.0  # NOW with the whole trace after it
    assert ch1.shape == ch2.shape == (3, 16384)
    # IN1: 0.5 V at 1.5 MHz through the resonance, rising through 0.1 V at 8192
    assert np.all(np.abs(ch1[:, 8192] - 0.1) < 0.1)
    assert np.all(ch1[:, 8193] > ch1[:, 8191])
    assert session.execute(bps.rd(rp.scope.mode)).plan_result == "NORMAL"
