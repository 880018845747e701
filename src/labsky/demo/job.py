"""What `labsky demo` does, as a function the tests call too."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import platformdirs

from labsky.config import Profile

SAMPLE = "demo-grating"


@dataclass
class DemoResult:
    """Where the demo left its data.

    Attributes:
        data_dir: Data directory of the demo.
        tiled_url: URL the embedded Tiled server had.
        api_key: Its API key (kept in `data_dir/tiled/api_key`).
        scan_uid: UID of the line scan.
        count_uid: UID of the camera exposure series.
        plot: PNG of the scan read back through Tiled.
    """

    data_dir: Path
    tiled_url: str
    api_key: str
    scan_uid: str
    count_uid: str
    plot: Path


def demo_profile(data_dir: Path) -> Profile:
    """The embedded profile: packaged simulated devices, Tiled in process."""
    devices = Path(str(files("labsky.demo") / "devices.yaml"))
    profile = Profile.model_validate(
        {
            "name": "demo",
            "description": "labsky demo on simulated instruments",
            "devices": [devices],
            "data_dir": data_dir,
            "metadata": {"lab": "labsky-demo"},
            "tiled": {"uri": "embedded"},
        }
    )
    return profile.located(devices.parent)


def default_data_dir() -> Path:
    """The demo's data directory: `$LABSKY_DATA_DIR/demo`, else the user data dir."""
    root = os.environ.get("LABSKY_DATA_DIR") or platformdirs.user_data_dir("labsky")
    return Path(root).expanduser() / "demo"


def run_demo(
    data_dir: Path | None = None,
    echo: Callable[[str], Any] = print,
    progress: bool | None = None,
) -> DemoResult:
    """Run the demo: two real runs on simulators, read back through Tiled.

    Args:
        data_dir: Where to keep the data; the user data directory by default.
        echo: Where to print what happens.
        progress: Show progress bars (default: when on a terminal).

    Returns:
        Where the data is.
    """
    from tiled.queries import Key

    from labsky.session import start

    data_dir = (data_dir or default_data_dir()).resolve()
    echo(f"labsky demo: simulated instruments, data in {data_dir}")
    echo("starting the Tiled catalog on 127.0.0.1 (a few seconds) ...")
    with start(demo_profile(data_dir), progress=progress) as session:
        assert session.tiled is not None
        echo(session.summary())
        stage, pdet, cam = (session.devices[n] for n in ("stage", "pdet", "cam"))
        md = {"sample": SAMPLE, "purpose": "labsky demo"}
        echo("\n1) line scan: stage.x from -5 to 5 mm, 41 points, point detector")
        scan = session.execute(bp.scan([pdet], stage.x, -5, 5, 41, md=md))
        echo("\n2) exposure series: 5 camera frames at the centre")
        count = session.execute(bp.count([pdet, cam], num=5, md=md))
        scan_uid, count_uid = scan.run_start_uids[0], count.run_start_uids[0]

        echo(f"   both runs are stored: {session.runs_dir}")
        echo("\n3) reading back through Tiled over HTTP")
        lag = session.catalogued()
        if lag.runs_behind:  # stored is not catalogued: read the files instead
            echo(f"   {lag}; reading the run file instead")
            x, y, signal, start_doc = _scan_from_file(session.run_file(scan_uid))
        else:
            runs = session.runs
            found = runs.search(Key("start.plan_name") == "scan").search(
                Key("start.sample") == SAMPLE
            )
            run = found[scan_uid]
            table = run["primary"].read()
            signal = _first_signal(table)
            x, y, start_doc = table["stage-x"].values, table[signal].values, run.start
            frames = runs[count_uid]["primary"]["cam"]
            echo(f"   {len(found)} scan run(s) of sample {SAMPLE!r} in the catalog")
            echo(f"   camera frames: shape {frames.shape}, dtype {frames.dtype}")
        echo(
            f"   the scan has {len(x)} points, peak {signal} = {y.max():.3g} "
            f"at x = {x[y.argmax()]:.3g} mm"
        )
        plot = _plot(x, y, signal, start_doc, data_dir / "demo-scan.png")
        echo(f"   plot of the scan: {plot}")
        result = DemoResult(
            data_dir=data_dir,
            tiled_url=session.tiled.url,
            api_key=session.tiled.api_key,
            scan_uid=scan_uid,
            count_uid=count_uid,
            plot=plot,
        )
    echo(_how_to_query(result))
    return result


def _scan_from_file(path: Path | None) -> tuple[Any, Any, str, dict[str, Any]]:
    """The scan's motor, signal and start document, read from its HDF5 file."""
    import json

    import h5py

    assert path is not None
    with h5py.File(path, "r") as f:
        data: Any = f["primary/data"]
        signal = _first_signal(data)
        start = json.loads(str(f.attrs["start"]))
        return data["stage-x"][:], data[signal][:], signal, start


def _first_signal(table: Any) -> str:
    keys = table.data_vars if hasattr(table, "data_vars") else table.keys()
    names = [n for n in keys if n.startswith("pdet") and n.endswith("value")]
    return sorted(names)[0]


def _plot(x: Any, y: Any, signal: str, start: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, y, "o-", ms=3)
    ax.set_xlabel("stage-x (mm)")
    ax.set_ylabel(signal)
    ax.set_title(f"scan {start['scan_id']} · sample {start.get('sample')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _how_to_query(result: DemoResult) -> str:
    return f"""
Done. Each run is one HDF5 file in {result.data_dir / "runs"},
catalogued by Tiled in {result.data_dir / "tiled"}.
Serve the catalog again (its API key is in {result.data_dir / "tiled" / "api_key"}):

    labsky serve --data-dir {result.data_dir}

then, from Python or Jupyter:

    from tiled.client import from_uri
    from tiled.queries import Key
    key = open("{result.data_dir / "tiled" / "api_key"}").read().strip()
    runs = from_uri("http://127.0.0.1:8000", api_key=key)["raw"]
    scans = runs.search(Key("start.plan_name") == "scan")
    run = scans["{result.scan_uid[:8]}"]
    run["primary"].read()                  # the scan as an xarray Dataset
    runs["{result.count_uid[:8]}"]["primary"]["cam"][0]   # a camera frame
"""
