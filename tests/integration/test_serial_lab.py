"""The simulated optical table in a session: plans, baseline, and failures."""

import json
import math
import textwrap

import h5py
import pytest

from labsky.testing.documents import AfterEvents
from tests.conftest import REPO

SIM = REPO / "profiles" / "sim"
TABLE = REPO / "devices" / "sim-table.yaml"


def run_file(session, uid):
    return next(session.runs_dir.rglob(f"*{uid[:8]}.h5"))


def test_polarization_scan_finds_the_polarisers_axis(labsky_session):
    session = labsky_session(SIM, tiled=False)
    result = session.run(
        "polarization_scan", "meter", "polarizer", 0, 180, 15, md={"sample": "pol"}
    )
    fit = result.plan_result
    assert min(fit["angle_max"], 180 - fit["angle_max"]) < 1.0
    assert fit["extinction"] == pytest.approx(1e-4, abs=5e-4)
    assert fit["power_max"] == pytest.approx(0.025, rel=0.05)
    with h5py.File(run_file(session, result.run_start_uids[0]), "r") as f:
        assert f["primary/data/polarizer"].shape == (13,)
        assert f["primary/data/meter-power"][0] == pytest.approx(0.025, rel=0.05)
        baseline = set(f["baseline/data"])
    assert {"laser", "laser-power", "sample-x", "sample-z", "meter-power"} <= baseline


def test_wavelength_scan_moves_the_meter_with_the_laser(labsky_session):
    session = labsky_session(SIM, tiled=False)
    result = session.run(
        "wavelength_scan", ["meter"], "laser", 700, 900, 100, track=["meter.wavelength"]
    )
    assert result.exit_status == "success"
    with h5py.File(run_file(session, result.run_start_uids[0]), "r") as f:
        laser = f["primary/data/laser"][:]
        power = f["primary/data/meter-power"][:]
        meter_nm = f["tracking/data/meter-wavelength"][:].tolist()
    assert laser.tolist() == pytest.approx([700, 800, 900], abs=1)
    # the meter follows the laser, so it reads the gain curve, peak at 800 nm
    assert power[1] > 1.02 * power[0] and power[1] > 1.02 * power[2]
    assert meter_nm == [700, 800, 900]  # recorded with every point


def test_unplugging_the_meter_mid_scan_fails_the_run_and_keeps_its_data(labsky_session):
    session = labsky_session(SIM, tiled=False)
    unplug = AfterEvents(
        10, lambda: session.simulators.set_fault("meter", "disconnect")
    )
    token = session.run_engine.subscribe(unplug)  # mid-run, however loaded we are
    try:
        with pytest.raises(Exception, match="meter: the connection to .* was lost"):
            session.run(
                "count", ["meter"], num=200, delay=0.02, md={"sample": "unplug"}
            )
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
        taken = f["primary/data/meter-power"][:]
    assert stop["exit_status"] == "fail" and "meter" in stop["reason"]
    assert 10 <= len(taken) < 200 and not any(math.isnan(p) for p in taken)


def test_a_wrong_port_and_a_silent_instrument_are_reported_by_name(
    tmp_path, labsky_session
):
    (tmp_path / "lab.yaml").write_text(
        textwrap.dedent(
            """\
            devices:
              meter:
                kind: newport1830c
                params: {port: /dev/ttyUSB-gone}
              quiet:
                kind: newport1830c
                params: {port: "${sim.quiet}", timeout: 0.2}
              laser:
                kind: maitai
                params: {port: "${sim.laser}"}
            """
        )
    )
    (tmp_path / "profile.yaml").write_text(
        textwrap.dedent(
            """\
            devices: [lab.yaml]
            connect_timeout: 3
            tiled: {uri: null}
            simulation:
              instruments:
                quiet: {kind: newport1830c, params: {fault: silent}}
                laser: {kind: maitai}
            """
        )
    )
    session = labsky_session(tmp_path, tiled=False)
    assert set(session.devices) == {"laser"}
    gone = str(session.device_errors["meter"])
    assert f"declared at {tmp_path / 'lab.yaml'}:2" in gone
    assert "cannot open /dev/ttyUSB-gone" in gone
    quiet = str(session.device_errors["quiet"])
    assert "quiet" in quiet and "no reply to 'W?'" in quiet


def test_a_placeholder_without_its_simulator_names_what_is_missing(
    tmp_path, labsky_session
):
    (tmp_path / "lab.yaml").write_text(
        "devices:\n  meter: {kind: newport1830c, params: {port: '${sim.metre}'}}\n"
    )
    (tmp_path / "profile.yaml").write_text(
        "devices: [lab.yaml]\ntiled: {uri: null}\nsimulation:\n"
        "  instruments: {meter: {kind: newport1830c}}\n"
    )
    session = labsky_session(tmp_path, tiled=False)
    error = str(session.device_errors["meter"])
    assert "${sim.metre} is not defined" in error and "it has: meter" in error
