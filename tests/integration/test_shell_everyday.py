"""The shell as a new user meets it (issue 18): %mov, %wa, the live table, exit."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]  # one IPython start: ~1 min

CELLS = [
    "print('<<1')",
    "%mov stage.x",
    "print('<<2')",
    "%mov stag.x 1",
    "print('<<3')",
    "%mov stage.x 1.5",
    "print('<<4')",
    "%movr stage.x -0.5 rotator 10",
    "print('<<5')",
    "%mov laser 1200",
    "print('<<6')",
    "%wa",
    "print('<<7')",
    "import gc; from labsky.callbacks import RunProgress",
    "print('PROGRESS', [bar._disable for bar in gc.get_objects() if isinstance(bar, RunProgress)])",
]


def between(out, first, second):
    return out.split(f"<<{first}\n", 1)[1].split(f"<<{second}\n", 1)[0].strip()


def test_mov_wa_and_exit_as_a_user_sees_them(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            f"--profile-dir={REPO / 'profiles' / 'sim'}",
            "--no-banner",
            "--simple-prompt",
            "--HistoryManager.enabled=False",
            f"--InteractiveShellApp.exec_lines={CELLS!r}",
            "-c",
            "print('DONE')",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LABSKY_DATA_DIR": str(tmp_path)},
    )
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, err + out
    assert "Traceback" not in out + err
    # a usage error in one line, no run, no traceback
    assert between(out, 1, 2) == ""
    assert between(out, 2, 3) == ""
    usage, typo, refused = (
        line for line in err.splitlines() if line.startswith("UsageError")
    )
    assert usage == (
        "UsageError: %mov: give each device a position (got 'stage.x'); "
        "%mov DEVICE POSITION [DEVICE POSITION ...], e.g. %mov stage.x 1.5"
    )
    assert typo.startswith(
        "UsageError: %mov: no device 'stag.x'; did you mean 'stage.x'"
    )
    assert "outside the tuning range 690-1040 nm" in refused
    # a good move says where the device went
    assert between(out, 3, 4) == "stage.x  0 -> 1.5"
    assert between(out, 4, 5).splitlines() == ["stage.x  1.5 -> 1", "rotator  0 -> 10"]
    # %wa: the laser's setpoint is the wavelength it is set to
    laser = next(r for r in between(out, 6, 7).splitlines() if r.startswith("laser "))
    assert laser.split() == ["laser", "800", "800"]
    # the live table is the progress at the prompt: no progress bar beside it
    progress = next(line for line in out.splitlines() if line.startswith("PROGRESS"))
    assert progress == "PROGRESS [True]"  # the bar of every run is off
    assert "DONE" in out
    # leaving the shell closes every device cleanly (the camera used to fail)
    assert "did not disconnect" not in err, err
