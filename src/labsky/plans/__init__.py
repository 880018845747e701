"""General, hardware-agnostic plans every session offers.

Lab and experiment plans live in the top-level `plans/` folder and are loaded
by the session from the profile; these are the reusable ones, typed with
bluesky protocols so they work with any device that fits. Instrument plans
live beside their devices (`labsky.devices.redpitaya.plans`); every session
offers them too (`LABSKY_PLANS`).

`labsky.plans.signature` is the one model of a plan's arguments that every
front end checks calls with.
"""

from collections.abc import Callable
from typing import Any

import bluesky.plans as bp

from labsky.devices.redpitaya.mode_plans import (
    deep_traces,
    generator_sweep,
    split_traces,
)
from labsky.devices.redpitaya.plans import (
    fit_resonance,
    network_analyzer,
    pid_lock,
    scope_series,
)
from labsky.plans.alignment import peak_scan
from labsky.plans.camera import exposure_series, fly_frames
from labsky.plans.optics import fit_malus, polarization_scan, wavelength_scan

#: bluesky's standard plans exposed by name in every session.
BLUESKY_PLANS: dict[str, Callable[..., Any]] = {
    name: getattr(bp, name)
    for name in (
        "count",
        "scan",
        "rel_scan",
        "list_scan",
        "grid_scan",
        "rel_grid_scan",
        "adaptive_scan",
        "tune_centroid",
    )
}

#: labsky's own general plans.
LABSKY_PLANS: dict[str, Callable[..., Any]] = {
    "deep_traces": deep_traces,
    "exposure_series": exposure_series,
    "fly_frames": fly_frames,
    "generator_sweep": generator_sweep,
    "network_analyzer": network_analyzer,
    "peak_scan": peak_scan,
    "pid_lock": pid_lock,
    "polarization_scan": polarization_scan,
    "scope_series": scope_series,
    "split_traces": split_traces,
    "wavelength_scan": wavelength_scan,
}

__all__ = [
    "BLUESKY_PLANS",
    "LABSKY_PLANS",
    "exposure_series",
    "fit_malus",
    "fit_resonance",
    "fly_frames",
    "network_analyzer",
    "peak_scan",
    "pid_lock",
    "polarization_scan",
    "scope_series",
    "wavelength_scan",
]
