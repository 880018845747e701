"""What `labsky demo` does, as a function the tests call too."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import platformdirs
from bluesky.callbacks.fitting import PeakStats

from labsky.config import Profile
from labsky.demo.fit import BeamFit, fit_beam
from labsky.errors import LabskyError
from labsky.run_report import RunWatch, plan_error, where_stored

SAMPLE = "demo-grating"

#: The simulated table: the laser on, a 1 mm beam whose axis the scan finds.
WORLD = {
    "laser": {"emission": True, "shutter_open": True, "warmup": 0},
    "beam": {"x": 0.7, "y": 0.0, "radius": 0.5, "pointing_jitter": 0.01},
    "pinhole": {"diameter": 0.05},
}
#: The line scan across the beam: start, stop (mm) and points.
SCAN = (-2.0, 2.0, 41)


class DemoError(LabskyError, RuntimeError):
    """The demo failed; the message says what, what is stored, and what to do."""


@dataclass
class DemoResult:
    """Where the demo left its data.

    Attributes:
        data_dir: Data directory of the demo.
        tiled_url: URL the embedded Tiled server had.
        api_key: Its API key (kept in `data_dir/tiled/api_key`).
        scan_uid: UID of the line scan.
        count_uid: UID of the camera exposure series.
        plot: PNG of the scan read back through Tiled, with the fit.
        fit: The beam profile fitted to the scan (centre, radius in mm).
        x: The scan's stage positions (mm).
        y: The power read at each (W).
    """

    data_dir: Path
    tiled_url: str
    api_key: str
    scan_uid: str
    count_uid: str
    plot: Path
    fit: BeamFit
    x: Any = None
    y: Any = None


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
            "simulation": {
                "world": WORLD,
                "instruments": {
                    "esp300": {"kind": "esp300"},
                    "meter": {"kind": "newport1830c"},
                },
            },
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
    """Run the demo: a beam-profile scan and camera frames, read back through Tiled.

    An ESP300 moves a pinhole across the simulated laser beam while the
    1830-C power meter behind it reads the power (real drivers, simulators
    on pseudo-terminals); the profile is fitted with a Gaussian, the camera
    takes frames with the pinhole on the beam's axis.

    Args:
        data_dir: Where to keep the data; the user data directory by default.
        echo: Where to print what happens.
        progress: Show progress bars (default: when on a terminal).

    Returns:
        Where the data is.

    Raises:
        DemoError: Whatever failed, in one line that says what is stored.
    """
    from labsky.session import start

    data_dir = (data_dir or default_data_dir()).resolve()
    echo(f"labsky demo: simulated instruments, data in {data_dir}")
    echo("starting the Tiled catalog on 127.0.0.1 (a few seconds) ...")
    try:
        session = start(demo_profile(data_dir), progress=progress)
    except Exception as exc:
        raise DemoError(
            f"labsky demo failed: the simulated lab did not start "
            f"({type(exc).__name__}: {exc}); "
            f"nothing was stored; fix that and run `labsky demo` again"
        ) from exc
    watch = RunWatch()
    with session:
        session.subscribe(watch)
        if session.device_errors:
            errors = "; ".join(str(e) for e in session.device_errors.values())
            raise DemoError(
                f"labsky demo failed: {errors}; nothing was stored; run "
                "`labsky demo` again (another program may hold a port)"
            )
        try:
            result = _steps(session, data_dir, echo)
        except Exception as exc:
            try:
                lag = session.stored()
            except Exception:  # noqa: BLE001 - say what is known
                lag = None
            stored = where_stored(watch.uids, session.run_file, watch, lag)
            raise DemoError(
                f"labsky demo failed: {plan_error(exc)}; {stored}; run `labsky demo` "
                f"again, or report it with this line"
            ) from exc
    echo(_how_to_query(result))
    return result


def _steps(session: Any, data_dir: Path, echo: Callable[[str], Any]) -> DemoResult:
    """The demo's runs and read-back on a started session."""
    from tiled.queries import Key

    assert session.tiled is not None
    echo(session.summary())
    stage, meter, cam = (session.devices[n] for n in ("stage", "meter", "cam"))
    md = {"sample": SAMPLE, "purpose": "labsky demo"}
    start_x, stop_x, points = SCAN
    echo(
        f"\n1) beam profile: the pinhole on stage.x from {start_x:g} to "
        f"{stop_x:g} mm, {points} points, power meter behind it"
    )
    peak = PeakStats("stage-x", "meter-power")
    scan = session.execute(
        bpp.subs_wrapper(
            bp.scan([meter], stage.x, start_x, stop_x, points, md=md), peak
        )
    )
    centre = peak.cen if peak.cen is not None else 0.0
    echo(f"\n2) exposure series: 5 camera frames on the beam (x = {centre:.3g} mm)")
    session.execute(bps.mv(stage.x, centre))
    count = session.execute(bp.count([meter, cam], num=5, md=md))
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
    fit = fit_beam(x, y)
    echo(
        f"   the scan has {len(x)} points; the beam is at x = {fit.centre:.3f} "
        f"+/- {fit.centre_error:.3f} mm, 1/e^2 radius {fit.radius:.3f} mm "
        f"(FWHM {fit.fwhm:.3f} mm), {fit.peak * 1e3:.3g} mW through the pinhole"
    )
    plot = _plot(x, y, fit, signal, start_doc, data_dir / "demo-scan.png")
    echo(f"   plot of the scan and the fit: {plot}")
    return DemoResult(
        data_dir=data_dir,
        tiled_url=session.tiled.url,
        api_key=session.tiled.api_key,
        scan_uid=scan_uid,
        count_uid=count_uid,
        plot=plot,
        fit=fit,
        x=x,
        y=y,
    )


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
    return next(n for n in keys if n == "meter-power")


def _plot(
    x: Any, y: Any, fit: BeamFit, signal: str, start: dict[str, Any], path: Path
) -> Path:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, np.asarray(y) * 1e3, "o", ms=4, label="measured")
    fine = np.linspace(min(x), max(x), 400)
    ax.plot(
        fine,
        fit(fine) * 1e3,
        "-",
        label=f"Gaussian fit: x0 = {fit.centre:.3f} mm, w = {fit.radius:.3f} mm",
    )
    ax.axvline(fit.centre, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("stage-x (mm)")
    ax.set_ylabel(f"{signal} (mW)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(f"beam profile · scan {start['scan_id']} · {start.get('sample')}")
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
