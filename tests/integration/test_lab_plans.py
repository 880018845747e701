"""Every everyday lab plan runs on `profiles/sim`, called with `labsky run`'s words.

One session serves all the plans (starting one takes ~15 s); each plan is
given the exact words a user types after `labsky run sim PLAN`, parsed by the
same function the CLI uses, and its data is read back through Tiled.
`test_cli.py` runs `labsky run` itself in a subprocess.
"""

import shlex

import numpy as np
import pytest

from labsky.cli import plan_call_arguments
from labsky.session import start
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory):
    session = start(
        REPO / "profiles" / "sim",
        data_dir=tmp_path_factory.mktemp("lab-plans"),
        progress=False,
    )
    assert not session.device_errors, session.device_errors
    yield session
    session.close()


def run_words(session, plan: str, words: str):
    """Run `labsky run sim PLAN WORDS` in this process; return the Tiled run."""
    positional, keywords, metadata = [], [], []
    parts = shlex.split(words)
    while parts:
        word = parts.pop(0)
        if word == "--arg":
            keywords.append(parts.pop(0))
        elif word == "--md":
            metadata.append(parts.pop(0))
        else:
            positional.append(word)
    args, kwargs = plan_call_arguments(positional, keywords, metadata)
    result = session.execute(session.plan(plan, *args, **kwargs))
    assert result.exit_status == "success", result
    session.catalogued()
    return result, session.runs[result.run_start_uids[-1]]


def test_exposure_series(sim_session):
    _, run = run_words(
        sim_session,
        "exposure_series",
        '"[camera]" camera.exposure "[0.002, 0.004]" --arg num=2 --md sample=linearity',
    )
    assert run.start["sample"] == "linearity"
    totals = run["primary"]["camera-total"].read()
    exposures = run["settings"]["camera-exposure"].read()
    np.testing.assert_allclose(exposures, [0.002, 0.002, 0.004, 0.004])
    ratio = totals[2:].mean() / totals[:2].mean()
    assert 1.8 < ratio < 2.2  # signal linear in exposure


def test_polarization_scan(sim_session):
    result, run = run_words(
        sim_session,
        "polarization_scan",
        "meter polarizer --arg stop=180 --arg step=15",
    )
    angles = run["primary"]["polarizer"].read()
    assert len(angles) == 13
    fit = result.plan_result
    assert fit["extinction"] < 0.1  # min / max: crossed polarisers block the beam
    power = run["primary"]["meter-power"].read()
    assert power.max() > 5 * power.min()


def test_network_analyzer_sweep(sim_session):
    result, run = run_words(sim_session, "network_analyzer", "rp.iq 1.46e6 1.54e6 31")
    assert abs(result.plan_result["f0"] - 1.5e6) < 1e3
    gain = run["primary"]["rp-iq-gain_db"].read()
    assert len(gain) == 31 and int(np.argmax(gain)) in range(12, 19)


def test_pid_lock(sim_session):
    result, run = run_words(sim_session, "pid_lock", "rp.pid --arg hold=0.5")
    assert result.plan_result["locked"] is True
    # primary holds the verify readings (the loop settling, then
    # `verify_reads` in a row within tolerance) and then the hold's readings
    errors = run["primary"]["rp-pid-error"].read()
    held = errors[-int(round(0.5 / 0.1)) :]
    assert np.all(np.abs(errors[-10:-5]) < 0.02)  # the confirmed lock
    rms = float(np.sqrt(np.mean(held**2)))
    assert rms < 0.02
    assert result.plan_result["error_rms"] == pytest.approx(rms, rel=1e-3, abs=1e-6)
    sim_session.execute(_disable(sim_session.devices["rp"].pid.enabled))


def _disable(signal):
    import bluesky.plan_stubs as bps

    yield from bps.mv(signal, False)


def test_wavelength_scan(sim_session):
    _, run = run_words(
        sim_session,
        "wavelength_scan",
        '"[meter]" laser 780 820 10 --md sample=tuning',
    )
    table = run["primary"].read()
    np.testing.assert_allclose(table["laser"].values, [780, 790, 800, 810, 820])
    assert np.all(table["meter-power"].values > 0)


def test_camera_raster(sim_session):
    _, run = run_words(
        sim_session,
        "camera_raster",
        "camera sample.x sample.y --arg width=0.4 --arg height=0.2 "
        "--arg num_x=3 --arg num_y=2 --arg exposure=0.002 --md sample=map",
    )
    assert run.start["plan_name"] == "camera_raster"
    table = run["primary"].read()
    x = table["sample-x"].values
    centroid = table["camera-centroid_x"].values
    assert len(x) == 6
    # the sample moves under a fixed beam: the spot crosses the sensor the other way
    assert np.corrcoef(x, centroid)[0, 1] < -0.9
    frame = np.asarray(run["primary"]["camera"][0]).squeeze()
    assert frame.ndim == 2 and frame.max() > frame.mean()
