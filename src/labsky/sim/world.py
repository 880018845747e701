"""The simulated optical table every simulator shares.

A Ti:sapphire laser (the MaiTai simulator drives it) sends a linearly
polarised beam through a shutter and a chain of polarisation optics, some on
ELL14 rotation mounts, to a pick-off that feeds the 1830-C power meter; the
rest of the beam goes to the camera, whose view the ESP300 stage moves. So
turning a rotator changes what the power meter reads (Malus's law), tuning
the laser changes the power and the meter's wavelength correction, and moving
the stage moves the spot on the camera. For a beam-profile measurement
(`pinhole`) the meter sits behind a pinhole on the stage instead, in the main
beam, and a stage scan across the beam reads its Gaussian profile.

The world holds the physical state; simulators are the instruments' wire
protocols on top of it. It is read from several threads (simulators, the
camera backend), so its state is plain floats and immutable moves.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from labsky.sim.motion import Axis

#: Responsivity of a silicon photodiode (A/W) by wavelength (nm): what the
#: 1830-C corrects for with its wavelength setting.
SILICON_RESPONSIVITY = (
    (400, 0.12),
    (500, 0.25),
    (600, 0.36),
    (700, 0.46),
    (800, 0.55),
    (900, 0.62),
    (950, 0.63),
    (1000, 0.55),
    (1050, 0.35),
    (1100, 0.10),
)


def silicon_responsivity(wavelength_nm: float) -> float:
    """A silicon photodiode's responsivity (A/W) at a wavelength."""
    nm, amps = zip(*SILICON_RESPONSIVITY, strict=True)
    return float(np.interp(wavelength_nm, nm, amps))


class LaserParams(BaseModel):
    """The simulated Ti:sapphire laser."""

    model_config = ConfigDict(extra="forbid")

    peak_power: float = Field(
        default=2.5, gt=0, description="Output at the gain peak, W."
    )
    peak_wavelength: float = Field(default=800.0, description="Gain peak, nm.")
    gain_width: float = Field(
        default=220.0, gt=0, description="Half width of the gain curve, nm."
    )
    min_wavelength: float = Field(
        default=690.0, description="Shortest tunable wavelength, nm."
    )
    max_wavelength: float = Field(
        default=1040.0, description="Longest tunable wavelength, nm."
    )
    start_wavelength: float = Field(
        default=800.0, description="Wavelength at power-up, nm."
    )
    tune_rate: float = Field(default=100.0, gt=0, description="Tuning speed, nm/s.")
    warmup: float = Field(
        default=1.0, ge=0, description="Seconds from power-up to ready."
    )
    emission: bool = Field(
        default=False,
        description="Already emitting (and warmed up) when the simulation starts.",
    )
    shutter_open: bool = Field(
        default=False, description="Shutter open when the simulation starts."
    )
    noise: float = Field(
        default=0.003, ge=0, description="Relative power noise (1 sigma)."
    )


class OpticParams(BaseModel):
    """One element of the polarisation optics, in beam order."""

    model_config = ConfigDict(extra="forbid")

    element: Literal["polarizer", "half_wave_plate"] = "polarizer"
    rotator: str | None = Field(
        default="2", description="ELL14 address of the mount it sits in; null: fixed."
    )
    angle: float = Field(
        default=0.0, description="Fixed angle (deg) when not on a rotator."
    )
    extinction: float = Field(default=1e-4, ge=0, le=1, description="Polariser leak.")


class StageParams(BaseModel):
    """How the ESP300 stage moves the spot on the camera."""

    model_config = ConfigDict(extra="forbid")

    travel: float = Field(
        default=25.0, gt=0, description="Travel of each axis, +/- mm."
    )
    spot_sigma: float = Field(
        default=0.08, gt=0, description="Spot radius (1/e^2 / 2) at focus, mm."
    )
    focus: float = Field(default=0.0, description="Axis 3 position of best focus, mm.")
    rayleigh: float = Field(
        default=0.5, gt=0, description="Rayleigh range along axis 3, mm."
    )


class BeamParams(BaseModel):
    """The beam where the sample sits: a Gaussian spot a stage scan crosses."""

    model_config = ConfigDict(extra="forbid")

    x: float = Field(
        default=0.4, description="Beam axis on the sample stage's x (axis 1), mm."
    )
    y: float = Field(
        default=-0.2, description="Beam axis on the sample stage's y (axis 2), mm."
    )
    radius: float = Field(
        default=0.6, gt=0, description="1/e^2 intensity radius of the beam, mm."
    )
    pointing_jitter: float = Field(
        default=0.01, ge=0, description="Beam pointing noise (1 sigma), mm."
    )


class PinholeParams(BaseModel):
    """A pinhole on the sample stage with the power meter behind it."""

    model_config = ConfigDict(extra="forbid")

    diameter: float = Field(default=0.05, gt=0, description="Pinhole diameter, mm.")


class WorldParams(BaseModel):
    """The simulated table (profile `simulation.world`)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Seed of the noise generators.")
    laser: LaserParams = Field(default_factory=lambda: LaserParams())
    optics: list[OpticParams] = Field(
        default_factory=lambda: [OpticParams()],
        description="Polarisation optics in beam order (default: a polariser "
        "on the ELL14 at address 2).",
    )
    pickoff: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="Fraction of the beam sent to the power meter.",
    )
    stage: StageParams = Field(default_factory=lambda: StageParams())
    beam: BeamParams = Field(default_factory=lambda: BeamParams())
    pinhole: PinholeParams | None = Field(
        default=None,
        description="A pinhole on the ESP300 sample stage (axes 1 and 2) in the "
        "main beam, the power meter behind it: a beam-profile measurement. "
        "null: the meter reads the pick-off.",
    )


class Laser:
    """The laser's state: wavelength, shutter, emission and warm-up."""

    def __init__(self, params: LaserParams):
        self.params = params
        self.wavelength = Axis(params.start_wavelength, velocity=params.tune_rate)
        self.emission = params.emission
        self.shutter_open = params.shutter_open
        warm = params.warmup if params.emission else 0.0
        self.powered_at = time.monotonic() - warm

    def warmed_up(self, now: float | None = None) -> float:
        """Warm-up progress, 0 to 1."""
        if self.params.warmup == 0:
            return 1.0
        now = time.monotonic() if now is None else now
        return min(1.0, (now - self.powered_at) / self.params.warmup)

    def power(self, now: float | None = None) -> float:
        """Output power of the laser head (W), shutter or not."""
        if not self.emission:
            return 0.0
        p = self.params
        offset = (self.wavelength.position(now) - p.peak_wavelength) / p.gain_width
        return p.peak_power * math.exp(-(offset**4))

    def beam(self, now: float | None = None) -> float:
        """Power past the shutter (W)."""
        return self.power(now) if self.shutter_open else 0.0


class TriggerLine:
    """A TTL line: pulses (start time, width) that a camera waits for.

    A pulse generator (or a test) schedules pulses; one listener takes them
    in order, each once its start time has come.
    """

    def __init__(self) -> None:
        self._pulses: deque[tuple[float, float]] = deque()
        self._cond = threading.Condition()

    def schedule(self, start: float, period: float, width: float, count: int) -> float:
        """Add `count` pulses every `period` from `start` (monotonic s).

        Returns:
            When the last pulse ends.
        """
        with self._cond:
            for i in range(count):
                self._pulses.append((start + i * period, width))
            self._cond.notify_all()
        return start + (count - 1) * period + width

    def clear(self) -> None:
        """Forget pulses not taken yet."""
        with self._cond:
            self._pulses.clear()

    def take(self, timeout: float, stop: threading.Event) -> tuple[float, float] | None:
        """Wait for the next pulse to start; None on timeout or when `stop` is set."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                if self._pulses and self._pulses[0][0] <= now:
                    return self._pulses.popleft()
                wake = self._pulses[0][0] if self._pulses else deadline
                if now >= deadline:
                    return None
                self._cond.wait(min(wake, deadline) - now + 1e-4)
        return None


class World:
    """The shared physical state of a simulated lab.

    Args:
        params: The table's description.
    """

    def __init__(self, params: WorldParams | None = None):
        self.params = params or WorldParams()
        self.rng = np.random.default_rng(self.params.seed)
        self.laser = Laser(self.params.laser)
        self._rotators: dict[str, Axis] = {}
        self._stage: dict[int, Axis] = {}
        self._lines: dict[str, TriggerLine] = {}

    def trigger_line(self, name: str) -> TriggerLine:
        """The trigger line `name`, created on first use."""
        return self._lines.setdefault(name, TriggerLine())

    def rotator(self, address: str) -> Axis:
        """The rotation mount at an ELL14 address (degrees), created on first use."""
        return self._rotators.setdefault(address.upper(), Axis(0.0, velocity=430.0))

    def stage_axis(self, number: int) -> Axis:
        """ESP300 axis `number` (mm), created on first use."""
        return self._stage.setdefault(
            number, Axis(0.0, velocity=20.0, acceleration=80.0)
        )

    def _transmission(self, now: float) -> float:
        polarization = 0.0  # the laser's polarisation, horizontal
        transmitted = 1.0
        for optic in self.params.optics:
            angle = (
                self.rotator(optic.rotator).position(now)
                if optic.rotator is not None
                else optic.angle
            )
            if optic.element == "polarizer":
                c = math.cos(math.radians(angle - polarization)) ** 2
                transmitted *= c + optic.extinction * (1 - c)
                polarization = angle
            else:  # a half-wave plate mirrors the polarisation about its axis
                polarization = 2 * angle - polarization
        return transmitted

    def camera_power(self, now: float | None = None) -> float:
        """Optical power reaching the camera (W): what the pick-off leaves."""
        return self.transmitted_power(now) * (1 - self.params.pickoff)

    def transmitted_power(self, now: float | None = None) -> float:
        """Beam power after the polarisation optics (W), without noise."""
        now = time.monotonic() if now is None else now
        return self.laser.beam(now) * self._transmission(now)

    def meter_power(self, now: float | None = None) -> float:
        """Optical power on the power meter's detector (W).

        On the pick-off it is a fixed fraction of the beam, without noise.
        Behind the pinhole (`pinhole` set) it is what the pinhole passes at
        the stage's position, with the beam's pointing jitter.
        """
        pinhole = self.params.pinhole
        if pinhole is None:
            return self.transmitted_power(now) * self.params.pickoff
        now = time.monotonic() if now is None else now
        w = self.params.beam.radius
        centred = 1 - math.exp(-2 * (pinhole.diameter / 2) ** 2 / w**2)
        x, y = self.stage_axis(1).position(now), self.stage_axis(2).position(now)
        return (
            self.transmitted_power(now)
            * (1 - self.params.pickoff)
            * centred
            * self.beam_profile(x, y)
        )

    def beam_profile(self, x: float, y: float, jitter: bool = True) -> float:
        """The beam's intensity at (x, y) of the sample plane, 1 on its axis.

        A Gaussian of the beam's 1/e^2 radius around its axis (`beam.x`,
        `beam.y`, mm in stage coordinates); `jitter` adds the pointing noise.
        """
        beam = self.params.beam
        dx, dy = x - beam.x, y - beam.y
        if jitter and beam.pointing_jitter > 0:
            shift = self.rng.normal(0.0, beam.pointing_jitter, 2)
            dx, dy = dx + float(shift[0]), dy + float(shift[1])
        return math.exp(-2 * (dx * dx + dy * dy) / beam.radius**2)

    def spot(self, now: float | None = None) -> tuple[float, float, float]:
        """Beam spot on the camera: x and y offsets (mm) and its radius (mm).

        Stage axes 1 and 2 move the sample under a fixed beam, so the spot
        moves the other way; axis 3 defocuses it.
        """
        now = time.monotonic() if now is None else now
        stage = self.params.stage
        z = (self.stage_axis(3).position(now) - stage.focus) / stage.rayleigh
        radius = stage.spot_sigma * math.sqrt(1 + z * z)
        return (
            -self.stage_axis(1).position(now),
            -self.stage_axis(2).position(now),
            radius,
        )
