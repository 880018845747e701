"""Start-up and first-error times, measured as a new user meets them.

Issue 17's targets, each timed in a fresh process (median of `--repeat`):

- `python -c "import labsky.session"` <= 2 s (Channel Access is not imported
  unless a CA device is declared);
- `labsky --help` <= 1 s;
- `labsky run sim <misspelled plan>` and a misspelled device or a wrong
  number are refused (exit 2) before any simulator or server starts, <= 5 s.

The machine is shared, so each figure is also given as a ratio to a baseline
measured in the same run: a bare interpreter, and `import bluesky`.

    python benchmarks/startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABSKY = [sys.executable, "-m", "labsky"]


def timed(
    command: Sequence[str], repeat: int, env: dict[str, str]
) -> tuple[float, int, str]:
    """Median wall time of `command` in a fresh process, its exit code and stderr."""
    times, code, stderr = [], 0, ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        times.append(time.perf_counter() - start)
        code, stderr = done.returncode, done.stderr.strip()
    return statistics.median(times), code, stderr


def loads_channel_access(env: dict[str, str]) -> bool:
    """Whether `import labsky.session` imports aioca / the EPICS libraries."""
    probe = "import sys, labsky.session; print('aioca' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True
    )
    return done.stdout.strip() == "True"


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description="Start-up and first-error times.")
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    data = tempfile.mkdtemp(prefix="labsky-startup-")
    env = {**os.environ, "LABSKY_DATA_DIR": data}
    python = [sys.executable, "-c"]
    bare, *_ = timed([*python, "pass"], repeat, env)
    bluesky, *_ = timed([*python, "import bluesky"], repeat, env)
    run = [*LABSKY, "run", "sim"]
    cases = [  # what, command, goal (s), expected exit code
        ("import labsky.session", [*python, "import labsky.session"], 2.0, 0),
        ("labsky --help", [*LABSKY, "--help"], 1.0, 0),
        ("labsky run sim cuont [pdet]", [*run, "cuont", "[pdet]"], 5.0, 2),
        ("labsky run sim count [pdte]", [*run, "count", "[pdte]"], 5.0, 2),
        (
            "labsky run sim count [pdet] -a num=many",
            [*run, "count", "[pdet]", "-a", "num=many"],
            5.0,
            2,
        ),
    ]
    print(f"baselines (median of {repeat}): python -c pass {bare:.2f} s, "
          f"import bluesky {bluesky:.2f} s")  # fmt: skip
    print(f"{'what':<42} {'s':>6} {'goal':>6} {'x bluesky':>10}  exit")
    for label, command, goal, expected in cases:
        seconds, code, stderr = timed(command, repeat, env)
        mark = "ok" if seconds <= goal and code == expected else "OVER"
        print(
            f"{label:<42} {seconds:6.2f} {goal:6.1f} {seconds / bluesky:10.2f}  "
            f"{code} {mark}"
        )
        if code != expected:
            print(f"    expected exit {expected}; stderr: {stderr[-300:]}")
    started = Path(data, "sim").exists()
    print(f"refusals started the session (data directory made): {started}")
    print(f"import labsky.session loads Channel Access: {loads_channel_access(env)}")


if __name__ == "__main__":
    main()
