"""The `labsky` command, run as a user runs it: in a subprocess."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from tiled.queries import Key

from labsky.demo.fit import fit_beam
from labsky.demo.job import SCAN, WORLD
from labsky.pipeline.server import LocalTiled, runs_container
from tests.conftest import REPO


def labsky(*args, timeout=240, env=None):
    return subprocess.run(
        [sys.executable, "-m", "labsky", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_check_lists_devices_and_passes():
    result = labsky("check", "sim", "--connect")
    assert result.returncode == 0, result.stderr
    assert "pdet             sim_point_detector" in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_example_lab_profile_is_valid_and_builds_in_mock_mode():
    """The real-lab example: real ports and hosts, mock off; checked offline."""
    profile = (REPO / "profiles" / "example-lab" / "profile.yaml").read_text()
    assert "mock: false" in profile
    result = labsky("check", "example-lab", "--connect")
    assert result.returncode == 0, result.stderr
    for line in (
        "sample           esp300",
        "camera           pvcam",
        "psu              scpi",
        "rp               redpitaya",
    ):
        assert line in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_check_reports_file_and_line(tmp_path):
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  m:\n    kind: sim_motor\n    params: {velocty: 2}\n"
    )
    (tmp_path / "profile.yaml").write_text("devices: [devices.yaml]\n")
    result = labsky("check", str(tmp_path))
    assert result.returncode == 1
    assert (
        f"{tmp_path / 'devices.yaml'}:4: devices.m.params.velocty: unknown field"
        in (result.stderr)
    )


def test_check_kinds():
    from labsky.kind_registry import device_kinds

    result = labsky("check", "--kinds")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    listed = [line.split()[0] for line in lines if line and not line[0].isspace()]
    assert listed == list(device_kinds())  # every kind, each once
    (stage,) = [line for line in lines if line.startswith("sim_stage ")]
    assert stage.split()[1:3] == ["needs:", "pattern_generator"]  # what to wire
    assert "    params.velocity = 0.0: Speed of both axes in mm/s" in result.stdout


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["count", "[pdet, nosuch]"], "count: argument detectors[1]='nosuch' is not"),
        (["cuont", "[pdet]"], "no plan named 'cuont'; did you mean 'count'?"),
        (["count", "[pdet]", "-a", "num=many"], "count: argument num='many' does not"),
        (["scan", "-a", "num=3", "--", "[pdet]", "stag.x", "-1", "1"], "'stage.x'?"),
    ],
)
def test_run_refuses_a_bad_plan_or_argument_before_anything_starts(
    tmp_path, words, message
):
    result = labsky("run", "sim", *words, env={"LABSKY_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert message in line
    # refused from the profile and its declarations: no simulator, no Tiled,
    # not even the data directory
    assert not (tmp_path / "sim").exists()


def test_run_refuses_a_missing_axis_in_one_line(tmp_path):
    """A device's part is checked once it is built; it used to be two tracebacks."""
    (tmp_path / "profile.yaml").write_text(
        f"devices: [{REPO / 'devices' / 'sim.yaml'}]\ntiled: {{uri: null}}\n"
    )
    result = labsky(
        "run", str(tmp_path), "scan", "--arg", "num=3", "--", "[pdet]", "stage.z",
        "-1", "1", env={"LABSKY_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "scan: argument args[0] (motor)='stage.z' is not a device of this session: "
        "stage has no part 'z' (its parts: x, y); did you mean 'stage.y' or "
        "'stage.x'?"
    ]
    assert "run uids" not in result.stdout  # no run was opened


@pytest.mark.slow
def test_run_a_plan_and_find_it_in_tiled(tmp_path):
    result = labsky(
        "run",
        "sim",
        "angle_scan",
        "[pdet]",
        "rotator",
        "--arg",
        "stop=90",
        "--arg",
        "step=15",
        "--md",
        "sample=quartz",
        env={"LABSKY_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "angle_scan: success" in result.stdout
    server = LocalTiled(tmp_path / "sim")
    try:
        # in its own session: a Ctrl-C at the prompt must not stop the catalog
        assert os.getsid(server._process.pid) != os.getsid(0)
        runs = runs_container(server.client(), "raw")
        (run,) = runs.search(Key("start.sample") == "quartz").values()
        assert run.start["plan_name"] == "angle_scan"
        table = run["primary"].read()
        np.testing.assert_allclose(table["rotator"].values, np.arange(0, 91, 15))
    finally:
        server.close()


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    result = labsky("demo", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "labsky serve --data-dir" in result.stdout
    assert (tmp_path / "demo-scan.png").read_bytes()[:4] == b"\x89PNG"

    # Serve the catalog the demo left behind, as the printed instructions say.
    server = LocalTiled(tmp_path)
    try:
        runs = runs_container(server.client(), "raw")
        scans = runs.search(Key("start.plan_name") == "scan")
        assert len(scans) == 1
        scan = scans.values().first()
        assert scan.start["sample"] == "demo-grating"
        assert scan.stop["exit_status"] == "success"
        table = scan["primary"].read()
        x, power = table["stage-x"].values, table["meter-power"].values
        np.testing.assert_allclose(x, np.linspace(*SCAN))
        assert "baseline" in scan  # the stage is in the baseline group
        # a real peak inside the scan, where the simulated beam is
        beam = WORLD["beam"]
        assert x[0] < x[power.argmax()] < x[-1]
        assert abs(x[power.argmax()] - beam["x"]) < beam["radius"]
        assert power.max() > 100 * power[0]
        fit = fit_beam(x, power)
        assert abs(fit.centre - beam["x"]) < beam["radius"] / 10
        assert fit.radius == pytest.approx(beam["radius"], rel=0.1)
        assert (
            f"the beam is at x = {fit.centre:.3f} +/- {fit.centre_error:.3f} mm, "
            f"1/e^2 radius {fit.radius:.3f} mm" in result.stdout
        )
        # the plot's curve is the fit of these points (within the noise)
        residual = np.abs(fit(x) - power).max()
        assert residual < 0.1 * fit.peak

        (count,) = runs.search(Key("start.plan_name") == "count").values()
        frames = count["primary"]["cam"]
        assert frames.shape == (5, 1, 240, 320)
        # frames served by Tiled are the bytes the detector wrote to HDF5
        (h5file,) = (tmp_path / "detectors").glob("*.h5")
        with h5py.File(h5file, "r") as f:
            on_disk = f["/entry/data/data"][:]
        np.testing.assert_array_equal(frames.read()[:, 0], on_disk)
    finally:
        server.close()


def test_check_finds_placeholders_naming_no_simulator(tmp_path):
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  meter:\n    kind: newport1830c\n    params: {port: '${sim.metre}'}\n"
    )
    (tmp_path / "profile.yaml").write_text(
        "devices: [devices.yaml]\nsimulation:\n  instruments: {meter: {kind: newport1830c}}\n"
    )
    result = labsky("check", str(tmp_path))
    assert result.returncode == 1
    assert (
        f"{tmp_path / 'devices.yaml'}:2: devices.meter.params: ${{sim.metre}}"
        in result.stderr
    )


def test_sim_serves_a_profiles_instruments_to_other_processes(tmp_path):
    import serial

    links = tmp_path / "ports"
    process = subprocess.Popen(
        [sys.executable, "-m", "labsky", "sim", "sim", "--links", str(links)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        assert lines[-1].startswith("simulating")
        assert lines[3].split() == ["meter", str(links / "meter")]
        assert lines[4].split()[0] == "rp" and "tcp://127.0.0.1:" in lines[4]
        with serial.Serial(
            str(links / "esp300"), 19200, rtscts=True, timeout=2
        ) as port:
            port.write(b"VE?\r\n")
            assert port.readline().startswith(b"ESP300 Version")
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
    assert not (links / "meter").exists()  # links removed on the way out
