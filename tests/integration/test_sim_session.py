import pytest

from labsky.plans.signature import PlanArgumentError
from tests.conftest import REPO

SIM = REPO / "profiles" / "sim"


def test_sim_session_runs_a_scan_with_baseline(labsky_session, collect_documents):
    session = labsky_session(SIM, tiled=False)
    assert session.device_errors == {}
    assert {"stage", "rotator", "pdet", "cam", "world"} <= set(session.devices)
    assert session.groups["detectors"] == ["pdet", "cam", "meter", "camera"]
    assert {"raster", "angle_scan", "count", "peak_scan"} <= set(session.plans)

    session.run_engine.subscribe(collect_documents)
    result = session.run("scan", ["pdet"], "stage.x", -1, 1, num=5, md={"sample": "Si"})
    assert result.exit_status == "success"
    (start,) = collect_documents.of("start")
    assert start["sample"] == "Si" and start["profile"] == "sim"
    streams = {d["name"] for d in collect_documents.of("descriptor")}
    assert streams == {"primary", "baseline"}
    primary = next(
        d for d in collect_documents.of("descriptor") if d["name"] == "primary"
    )
    events = [
        e for e in collect_documents.of("event") if e["descriptor"] == primary["uid"]
    ]
    assert [e["data"]["stage-x"] for e in events] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    baseline = next(
        d for d in collect_documents.of("descriptor") if d["name"] == "baseline"
    )
    # every instrument of the simulated table is in the baseline
    assert {"rotator", "polarizer", "sample-x", "laser", "meter-power"} <= set(
        baseline["data_keys"]
    )


def test_camera_frames_reach_hdf5(labsky_session, collect_documents):
    import h5py

    session = labsky_session(SIM, tiled=False)
    session.run_engine.subscribe(collect_documents)
    session.run("count", ["cam"], num=3)
    (resource,) = [
        r for r in collect_documents.of("stream_resource") if r["data_key"] == "cam"
    ]
    path = resource["uri"].removeprefix("file://localhost")
    assert path.startswith(str(session.data_dir / "detectors"))
    with h5py.File(path, "r") as f:
        assert f[resource["parameters"]["dataset"]].shape == (3, 240, 320)


def test_bad_argument_fails_before_the_run_opens(labsky_session, collect_documents):
    session = labsky_session(SIM, tiled=False)
    session.run_engine.subscribe(collect_documents)
    with pytest.raises(PlanArgumentError, match="'pdt' is not a device"):
        session.run("count", ["pdt"])
    with pytest.raises(KeyError, match="no plan named 'cuont'"):
        session.run("cuont", ["pdet"])
    with pytest.raises(ValueError, match="step=-5.0; give a positive step"):
        session.run("angle_scan", ["pdet"], "rotator", step=-5.0)
    assert collect_documents.documents == []


def test_scan_id_survives_a_restart(labsky_session, tmp_path):
    first = labsky_session(SIM, tiled=False, data_dir=tmp_path / "d")
    first.run("count", ["pdet"])
    first.run("count", ["pdet"])
    last = first.run_engine.md["scan_id"]
    first.close()
    second = labsky_session(SIM, tiled=False, data_dir=tmp_path / "d")
    result = second.run("count", ["pdet"])
    assert result.exit_status == "success"
    assert second.run_engine.md["scan_id"] == last + 1


def test_peak_scan_moves_to_the_peak(labsky_session):
    session = labsky_session(SIM, tiled=False)
    result = session.run("peak_scan", ["pdet"], "stage.x", -1.5, 1.5, 31, move_to="max")
    stats = result.plan_result
    position = session.devices["stage"].x.user_readback
    from bluesky.run_engine import call_in_bluesky_event_loop

    assert call_in_bluesky_event_loop(position.get_value()) == pytest.approx(
        stats["moved_to"]
    )
    assert -1.5 <= stats["max"] <= 1.5


def test_namespace_for_the_prompt(labsky_session):
    session = labsky_session(SIM, tiled=False)
    ns = session.namespace()
    assert ns["RE"] is session.run_engine
    assert ns["pdet"] is session.devices["pdet"]
    assert ns["raster"] is session.plans["raster"]
    assert {"bp", "bps", "bpp", "session"} <= set(ns)
