"""Point-to-point moves with a trapezoidal velocity profile, evaluated lazily.

Simulated axes never tick: a move records where it started, where it goes and
when, and any simulator (or another thread, such as the camera's) asks where
the axis is *now*. That keeps simulators cheap and exactly consistent with
each other.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """One move from `start` to `target` beginning at `t0` (monotonic seconds)."""

    start: float
    target: float
    t0: float
    velocity: float
    acceleration: float

    @property
    def duration(self) -> float:
        """Seconds the move takes."""
        distance = abs(self.target - self.start)
        if distance == 0 or math.isinf(self.velocity):
            return 0.0
        v, a = self.velocity, self.acceleration
        if a <= 0 or math.isinf(a):
            return distance / v
        ramp = v / a  # time to reach full speed
        if a * ramp * ramp >= distance:  # triangular: never reaches full speed
            return 2 * math.sqrt(distance / a)
        return 2 * ramp + (distance - a * ramp * ramp) / v

    def position(self, now: float) -> float:
        """Where the axis is at `now`."""
        elapsed = now - self.t0
        total = self.duration
        if elapsed >= total:
            return self.target
        if elapsed <= 0:
            return self.start
        sign = 1.0 if self.target >= self.start else -1.0
        v, a = self.velocity, self.acceleration
        if a <= 0 or math.isinf(a):
            return self.start + sign * v * elapsed
        distance = abs(self.target - self.start)
        peak = min(v, math.sqrt(distance * a))  # top speed reached
        ramp = peak / a
        if elapsed < ramp:
            covered = 0.5 * a * elapsed * elapsed
        elif elapsed < total - ramp:
            covered = 0.5 * a * ramp * ramp + peak * (elapsed - ramp)
        else:
            left = total - elapsed
            covered = distance - 0.5 * a * left * left
        return self.start + sign * covered

    def done(self, now: float) -> bool:
        """Whether the move has ended at `now`."""
        return now - self.t0 >= self.duration


class Axis:
    """A simulated axis: velocity, acceleration and the current move.

    Args:
        position: Where it starts.
        velocity: Units per second.
        acceleration: Units per second squared (0: instant speed changes).
    """

    def __init__(
        self, position: float = 0.0, velocity: float = 1.0, acceleration: float = 0.0
    ):
        self.velocity = velocity
        self.acceleration = acceleration
        self._move = Move(position, position, 0.0, velocity, acceleration)

    def position(self, now: float | None = None) -> float:
        """Where the axis is (now, or at monotonic time `now`)."""
        return self._move.position(time.monotonic() if now is None else now)

    def target(self) -> float:
        """Where the current (or last) move goes."""
        return self._move.target

    def moving(self, now: float | None = None) -> bool:
        """Whether a move is in progress."""
        return not self._move.done(time.monotonic() if now is None else now)

    def move_to(self, target: float, now: float | None = None) -> float:
        """Start a move from where the axis is; return how long it takes."""
        now = time.monotonic() if now is None else now
        self._move = Move(
            self.position(now), target, now, self.velocity, self.acceleration
        )
        return self._move.duration

    def stop(self, now: float | None = None) -> float:
        """Stop where the axis is (an instant stop); return that position."""
        now = time.monotonic() if now is None else now
        here = self.position(now)
        self._move = Move(here, here, now, self.velocity, self.acceleration)
        return here

    def set_position(self, position: float) -> None:
        """Put the axis at `position` at rest (homing, power-up)."""
        self._move = Move(position, position, 0.0, self.velocity, self.acceleration)
