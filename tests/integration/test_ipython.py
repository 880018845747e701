"""The IPython profile: `ipython --profile-dir=profiles/sim` gives a working prompt."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

CELLS = [
    "r = await pdet.read()",
    'print("READ", sorted(r))',
    "%wa motors",
    "res = RE(count([pdet], num=2))",
    'print("RESULT", res.exit_status)',
    "%mov rotator 12.5",
    'print("ROT", await rotator.user_readback.get_value())',
    "%mov polarizer 30",
    'print("POL", round(await polarizer.position.get_value(), 2))',
    'print("NAMES", sorted(set(devices) & set(globals())), "raster" in plans)',
    "%md sample=quartz operator='A. Student'",
    'print("MD", RE.md["sample"], RE.md["operator"])',
    "%md -d operator",
    'print("MDFILE", open(session.data_dir / "runengine-metadata.json").read())',
]


def test_sim_profile_prompt(tmp_path):
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
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert (
        "READ ['pdet-channel-1-value', 'pdet-channel-2-value', 'pdet-channel-3-value']"
        in out
    )
    assert "stage.x" in out and "rotator" in out  # %wa table
    assert "RESULT success" in out
    assert "Transient Scan ID:" in out  # the live table (BestEffortCallback)
    assert "pdet-channel-1-value" in out.split("Transient Scan ID:")[1]
    assert "MD quartz A. Student" in out
    saved = out.split("MDFILE", 1)[1]  # persisted for the next session
    assert '"sample": "quartz"' in saved and "operator" not in saved
    assert "ROT 12.5" in out
    assert "POL 30.0" in out  # the ELL14 driver, through its simulator's pty
    assert (
        "NAMES ['cam', 'camera', 'elliptec', 'laser', 'meter', 'pdet', 'polarizer', "
        "'pulser', 'rotator', 'rp', 'sample', 'stage', 'world'] True" in out
    )
    assert "DONE" in out
