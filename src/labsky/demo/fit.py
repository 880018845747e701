"""Fit a beam profile: a Gaussian on a background, as a lab fits a pinhole scan."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: FWHM of a Gaussian beam over its 1/e^2 radius.
FWHM_PER_RADIUS = math.sqrt(2 * math.log(2))


@dataclass(frozen=True)
class BeamFit:
    """A fitted profile `peak * exp(-2 (x - centre)^2 / radius^2) + background`.

    Attributes:
        centre: Beam axis, in the scan's units.
        centre_error: One standard error of `centre`.
        radius: The 1/e^2 intensity radius.
        peak: Height above the background.
        background: The level far from the beam.
    """

    centre: float
    centre_error: float
    radius: float
    peak: float
    background: float

    @property
    def fwhm(self) -> float:
        """Full width at half maximum."""
        return self.radius * FWHM_PER_RADIUS

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """The fitted profile at `x`."""
        x = np.asarray(x, dtype=float)
        profile = np.exp(-2 * (x - self.centre) ** 2 / self.radius**2)
        return self.peak * profile + self.background


def gaussian_beam(
    x: np.ndarray, peak: float, centre: float, radius: float, background: float
) -> np.ndarray:
    """A Gaussian beam's intensity across `x` (1/e^2 `radius`) on a background."""
    return peak * np.exp(-2 * (x - centre) ** 2 / radius**2) + background


def fit_beam(x: ArrayLike, y: ArrayLike) -> BeamFit:
    """Fit a Gaussian beam profile to a scan, starting from its moments.

    Raises:
        ValueError: If the scan holds no peak to fit (too few points, flat,
            or the fit does not converge).
    """
    from scipy.optimize import curve_fit

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 5 or not np.ptp(y) > 0:
        raise ValueError(f"no peak to fit in {x.size} points")
    background = float(np.percentile(y, 10))
    weights = np.clip(y - background, 0, None)
    centre = float(np.sum(weights * x) / np.sum(weights))
    spread = math.sqrt(float(np.sum(weights * (x - centre) ** 2) / np.sum(weights)))
    radius = 2 * spread or float(np.ptp(x)) / 4
    guess = (float(y.max()) - background, centre, radius, background)
    try:
        values, covariance = curve_fit(gaussian_beam, x, y, p0=guess, maxfev=5000)
    except RuntimeError as exc:  # no convergence
        raise ValueError(f"the profile fit did not converge: {exc}") from None
    peak, centre, radius, background = (float(v) for v in values)
    error = float(np.sqrt(covariance[1, 1])) if np.isfinite(covariance[1, 1]) else 0.0
    return BeamFit(centre, error, abs(radius), peak, background)
