"""The everyday CLI as a new user meets it (issue 18), each command in a subprocess."""

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from tests.conftest import REPO

SIM_DEVICES = REPO / "devices" / "sim.yaml"

PLANS = '''
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

__all__ = ["breaks"]


def breaks(
    detectors: Sequence[Readable], after: int = 2, md: dict[str, Any] | None = None
) -> MsgGenerator:
    """Read `after` points, then fail as a plan with a bug does."""

    @bpp.run_decorator(md=md)
    def inner():
        for _ in range(after):
            yield from bps.trigger_and_read(detectors)
        raise RuntimeError("the sample holder slipped")

    return (yield from inner())
'''


def labsky(*args, timeout=240, env=None, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "labsky", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture
def quick_profile(tmp_path):
    """profiles/sim's in-process devices, a plan that fails, no catalog: seconds."""
    folder = tmp_path / "quick"
    folder.mkdir()
    (folder / "plans.py").write_text(PLANS)
    (folder / "profile.yaml").write_text(
        textwrap.dedent(
            f"""\
            devices: [{SIM_DEVICES}]
            plans: [plans.py]
            data_dir: {tmp_path / "data"}
            tiled: {{uri: null}}
            """
        )
    )
    return folder


def last_line(result):
    return (result.stderr or result.stdout).strip().splitlines()[-1]


# -- 1. negative numbers are plan arguments -----------------------------------


def test_negative_numbers_are_positional_plan_arguments(quick_profile, tmp_path):
    result = labsky(
        "run", str(quick_profile), "scan", "[pdet]", "stage.x", "-2", "2",
        "--arg", "num=21", "--md", "sample=Si",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "data" / "runs").rglob("*.h5")
    assert f"scan: success; stored in {path} (exit_status success, 21 events)" in (
        result.stdout
    )
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(f["primary/data/stage-x"][:], np.linspace(-2, 2, 21))
        assert '"sample": "Si"' in f.attrs["start"]
        counts = f["primary/data/pdet-channel-1-value"][:]
    # the beam (profiles/sim: axis at x = 0.4 mm) is a peak inside the scan
    assert 0.0 <= np.linspace(-2, 2, 21)[counts.argmax()] <= 0.8
    assert counts.max() > 20 * max(counts[0], counts[-1], 1)


def test_real_options_still_work_around_negative_numbers(quick_profile):
    result = labsky("run", str(quick_profile), "scan", "[pdet]", "stage.x", "-2.5e-1",
                    "-1", "-a", "num=five")  # fmt: skip
    assert result.returncode == 2
    assert last_line(result).startswith("scan: argument num='five' does not fit int")
    misspelled = labsky("run", str(quick_profile), "scan", "[pdet]", "-1", "--mokc")
    assert misspelled.returncode == 2
    assert "No such option: --mokc" in misspelled.stderr and "--mock" in (
        misspelled.stderr
    )
    assert "--md" in labsky("run", "--help").stdout


# -- 3. a failure ends with one line: what, stored where, what to do ----------


def test_a_plan_that_fails_mid_run_says_where_its_run_is(quick_profile, tmp_path):
    result = labsky("run", str(quick_profile), "breaks", "[pdet]", "--arg", "after=3")
    assert result.returncode == 1
    (path,) = (tmp_path / "data" / "runs").rglob("*.h5")
    assert last_line(result) == (
        "the plan failed: RuntimeError: the sample holder slipped "
        f"(at {quick_profile / 'plans.py'}:22); stored in {path} (exit_status fail, "
        "3 events); fix the cause and run again (--traceback shows the traceback)"
    )
    assert "Traceback" not in result.stderr
    with h5py.File(path, "r") as f:
        assert '"exit_status": "fail"' in f.attrs["stop"]
        assert len(f["primary/data/pdet-channel-1-value"]) == 3
    shown = labsky("run", str(quick_profile), "breaks", "[pdet]", "--traceback")
    assert "Traceback (most recent call last)" in shown.stderr
    assert last_line(shown).startswith("the plan failed: RuntimeError")


def test_a_device_that_did_not_connect_is_one_line_and_nothing_runs(tmp_path):
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  meter:\n    kind: newport1830c\n"
        f"    params: {{port: {tmp_path / 'ttyNONE'}}}\n"
    )
    (tmp_path / "profile.yaml").write_text(
        f"devices: [devices.yaml]\ndata_dir: {tmp_path / 'data'}\n"
        "tiled: {uri: null}\nconnect_timeout: 2\n"
    )
    result = labsky("run", str(tmp_path), "count", "[meter]")
    assert result.returncode == 1
    line = last_line(result)
    assert line.startswith("count: not run, nothing stored: meter (newport1830c, ")
    assert f"cannot open {tmp_path / 'ttyNONE'}" in line
    assert line.endswith(
        f"once it is fixed, run again (`labsky check {tmp_path.name} --connect` "
        "tries every device)"
    )
    assert not list((tmp_path / "data").rglob("*.h5"))


def test_a_profile_held_by_an_open_session_is_refused_before_anything_starts(
    quick_profile, tmp_path
):
    script = tmp_path / "holder.py"
    script.write_text(
        "import sys\nfrom labsky.session import start\n"
        f"s = start({str(quick_profile)!r})\nprint('READY', flush=True)\n"
        "sys.stdin.readline()\ns.close()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "READY"
        result = labsky("run", str(quick_profile), "count", "[pdet]")
    finally:
        holder.communicate("\n", timeout=60)
    assert result.returncode == 1
    assert last_line(result).startswith(
        "count: not run, nothing stored: a session of quick is open in process "
        f"{holder.pid} (holder.py); run the plan at its prompt, or close it"
    )
    assert "labsky session" not in result.stdout  # no session was started


def test_the_demo_fails_in_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = labsky("demo", "--data-dir", str(tmp_path / "a-file"))
    assert result.returncode == 1
    assert last_line(result).startswith(
        "labsky demo failed: the simulated lab did not start (FileExistsError"
    )
    assert last_line(result).endswith(
        "nothing was stored; fix that and run `labsky demo` again"
    )


# -- 5. help text and messages -------------------------------------------------


def test_help_shows_the_examples_and_plain_usage():
    top = labsky("--help").stdout
    assert 'e.g. `labsky run sim count "[pdet]" --arg num=5`' in top
    assert "<bool>" not in top
    run = labsky("run", "--help").stdout
    assert "labsky run [OPTIONS] PROFILE PLAN [ARGS]..." in run
    assert "{profile}" not in run and "<bool>" not in run
    assert '`labsky run sim count "[pdet]" --arg num=5`' in run
    assert "NAME=VALUE" in run and "KEY=VALUE" in run and "--traceback" in run
    assert "labsky serve [OPTIONS] [PROFILE]" in labsky("serve", "--help").stdout


def test_check_kinds_says_which_parameters_are_required():
    out = labsky("check", "--kinds").stdout
    assert "PydanticUndefined" not in out
    assert "    params.port (required): Serial port (19200 8N1, RTS/CTS)" in out
    assert "    params.axes = {x: 1, y: 2, z: 3}: " in out
    assert "    params.baudrate = 9600: " in out


def test_a_misspelled_parameter_gets_a_did_you_mean(tmp_path):
    (tmp_path / "devices.yaml").write_text(
        "devices:\n  m:\n    kind: sim_motor\n    params: {unts: mm}\n"
    )
    (tmp_path / "profile.yaml").write_text("devices: [devices.yaml]\n")
    result = labsky("check", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{tmp_path / 'devices.yaml'}:4: devices.m.params.unts: unknown field "
        "'unts'; did you mean 'units'? (it takes: units, initial_value, velocity)"
    )


def test_ring_tail_says_where_it_looked(tmp_path):
    result = labsky("ring", "tail", "nosuch", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"nosuch is neither a ring file (no file {tmp_path / 'nosuch'}) nor a "
        "profile (no profile 'nosuch' (looked in nosuch, profiles/nosuch)); "
        "`labsky ring path PROFILE` prints a profile's ring file"
    )


def test_serve_takes_a_profile_and_refuses_its_empty_data_dir(quick_profile, tmp_path):
    result = labsky("serve", str(quick_profile))
    assert result.returncode == 2
    assert f"{tmp_path / 'data'} holds no labsky runs" in result.stderr
    assert "--create" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_plan_that_is_not_offered_says_why(quick_profile):
    plans = quick_profile / "plans.py"
    plans.write_text(
        plans.read_text().replace(", md: dict[str, Any] | None = None", "")
    )
    result = labsky("run", str(quick_profile), "breaks", "[pdet]")
    assert result.returncode == 2
    assert last_line(result) == (
        f"plan 'breaks' is not offered: {plans}:13: breaks: add "
        "`md: dict[str, Any] | None = None` and pass it to the run so callers can "
        "record metadata"
    )
