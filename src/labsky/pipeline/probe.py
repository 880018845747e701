"""Check that run files left open by a dead process can be read, without hanging.

A damaged HDF5 file can make h5py hang or crash the interpreter, so recovery
reads each file in a child process (`python -m labsky.pipeline.probe FILE`)
with a time limit, before it changes anything. The child opens the file the
way recovery will (SWMR read) and reads every committed row.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labsky.pipeline.format import ATTR_START, stored_keys, stream_groups

#: Seconds a probe may take, plus one per 50 MB of file.
PROBE_SECONDS = 30.0

_NEEDS_H5CLEAR = "needs h5clear"


@dataclass(frozen=True)
class ProbeResult:
    """What reading a run file found.

    Attributes:
        path: The file.
        problem: What is wrong, for a message naming the file ("" if fine).
        rows: Committed rows by stream.
    """

    path: Path
    problem: str = ""
    rows: dict[str, int] | None = None


def _read(path: Path) -> dict[str, Any]:
    """Read a run file as recovery will (in the child)."""
    import h5py

    from labsky.pipeline.run_file import committed_rows

    try:
        with h5py.File(path, "r", swmr=True) as f:
            json.loads(str(f.attrs[ATTR_START]))
            rows = {}
            for name, group in stream_groups(f):
                descriptor = json.loads(str(group.attrs["descriptor"]))
                committed = committed_rows(group, stored_keys(descriptor))
                rows[name] = len(committed["seq_num"])
            return {"rows": rows}
    except OSError as exc:
        return {"problem": _describe(str(exc))}
    except (KeyError, ValueError) as exc:
        return {"problem": f"does not have the run-file layout ({exc})"}


def _describe(message: str) -> str:
    lowered = message.lower()
    if "signature" in lowered:
        return "is not a readable HDF5 file (its superblock is damaged or missing)"
    if "already open for write" in lowered or "file close degree" in lowered:
        return _NEEDS_H5CLEAR
    if "truncated" in lowered or "eof" in lowered:
        return f"is truncated ({message})"
    return f"cannot be read: {message}"


def probe(path: Path, timeout: float | None = None) -> ProbeResult:
    """Read one run file in a child process, within a time limit.

    A file a writer left marked open outside SWMR mode is cleared with HDF5's
    `h5clear -s` when it is installed, then read again.
    """
    result = _probe_once(path, timeout)
    if result.problem != _NEEDS_H5CLEAR:
        return result
    h5clear = shutil.which("h5clear")
    if h5clear is None:
        return ProbeResult(
            path,
            "was left marked open for writing (the writer died while it was outside "
            "SWMR mode); install HDF5's tools (Debian: apt install hdf5-tools) so "
            f"recovery can run 'h5clear -s {path}', or run it yourself",
        )
    subprocess.run([h5clear, "-s", str(path)], check=False, timeout=60)
    result = _probe_once(path, timeout)
    if result.problem == _NEEDS_H5CLEAR:
        return ProbeResult(path, "stays marked open for writing after h5clear -s")
    return result


def _probe_once(path: Path, timeout: float | None) -> ProbeResult:
    if not path.exists():
        return ProbeResult(path, "is missing")
    limit = timeout or PROBE_SECONDS + path.stat().st_size / 50e6
    try:
        done = subprocess.run(
            [sys.executable, "-m", "labsky.pipeline.probe", str(path)],
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(
            path, f"could not be read within {limit:.0f} s (it is probably damaged)"
        )
    try:
        reply = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return ProbeResult(path, f"crashed the HDF5 library when read ({tail[0]})")
    if "problem" in reply:
        return ProbeResult(path, reply["problem"])
    return ProbeResult(path, rows=reply["rows"])


def main() -> None:
    """Entry point of `python -m labsky.pipeline.probe FILE`: one JSON line."""
    print(json.dumps(_read(Path(sys.argv[1]))), flush=True)


if __name__ == "__main__":
    main()
