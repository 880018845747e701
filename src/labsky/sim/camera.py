"""A simulated PVCAM camera behind the same backend interface as pyvcam.

Models a Prime BSI (2048 x 2048, 12/16-bit) or a Kinetix (3200 x 3200,
8/12/16-bit) closely enough for the detector above not to know: readout ports
with their bit depth, line time (rolling shutter: a frame every
max(exposure, rows x line time) + overhead) and gain, ROI and binning, clear
modes, the five trigger modes, temperature settling toward its setpoint, frame
numbers, and a camera buffer that drops frames nobody fetches.

Frames are physical: a bias plus read noise (a bank of precomputed frames,
cycled), and the laser spot of the simulated table with shot noise, drawn in
a window around it only. The spot sits where the stage puts it and is as
bright as the power that reaches the camera, so raster and polarisation scans
show in the images. Fast enough for full frame rate: one memory copy per frame
plus a small window.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from labsky.devices.pvcam import (
    MODELS,
    CameraInfo,
    CameraParameterError,
    ClearMode,
    Done,
    FrameInfo,
    FrameSink,
    FrameTimeoutError,
    ReadoutPort,
    Settings,
    TriggerMode,
)
from labsky.sim.world import TriggerLine, World

BIAS = 100.0  # ADU
QUANTUM_EFFICIENCY = 0.9
BANK = 4  # noise frames cycled


class SimCamera:
    """A simulated camera (the `sim` backend of `PvcamDetector`).

    Args:
        model: `prime_bsi` or `kinetix`.
        world: The simulated table (spot position and power, trigger line);
            None for a fixed spot of `source_power`.
        trigger_line: Name of the world's trigger line the camera listens to.
        pixels_per_mm: Image scale: pixels the spot moves per mm of stage.
        photons_per_joule: Photons that reach the sensor per joule of beam
            (the neutral density in front of the camera).
        source_power: Beam power without a world, W.
        seed: Seed of the noise.
    """

    def __init__(
        self,
        model: str = "prime_bsi",
        world: World | None = None,
        trigger_line: str = "camera",
        pixels_per_mm: float = 154.0,
        photons_per_joule: float = 1.2e9,
        source_power: float = 2.0,
        seed: int = 0,
    ):
        if model not in MODELS:
            raise CameraParameterError(
                f"model {model!r}: known models are {sorted(MODELS)}"
            )
        self.info = MODELS[model]
        self.world = world
        self.line = world.trigger_line(trigger_line) if world else TriggerLine()
        self.pixels_per_mm = pixels_per_mm
        self.photons_per_joule = photons_per_joule
        self.source_power = source_power
        self.rng = np.random.default_rng(seed)
        self.settings = Settings()
        self.frame_timeout = 10.0
        self.period: float | None = None  # internal trigger: slower than the fastest
        self.missed_triggers = 0
        self._bank_key: tuple[Any, ...] = ()
        self._bank: np.ndarray | None = None
        self._software: queue.SimpleQueue[float] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame_number = 0
        self._opened = 0.0
        self._temperature_from = 20.0

    # -- settings ---------------------------------------------------------

    def open(self) -> CameraInfo:
        """Power up: the first port, full frame, cooling starts."""
        port = next(iter(self.info.ports.values()))
        self.settings = Settings(
            readout_port=port.name,
            speed=port.speeds[0],
            gain=min(port.gains),
            roi=(0, 0, *self.info.sensor),
        )
        self._opened = time.monotonic()
        return self.info

    def close(self) -> None:
        """Power down."""
        self.stop()

    def port(self) -> ReadoutPort:
        """The readout port in use."""
        return self.info.ports[self.settings.readout_port]

    def apply(self, settings: Settings) -> None:
        """Check every setting against the model; keep them if all are possible."""
        info = self.info
        low, high = info.exposure_range
        if not low <= settings.exposure <= high:
            raise CameraParameterError(
                f"exposure: {settings.exposure:g} s is outside {low:g}-{high:g} s "
                f"on a {info.model}"
            )
        port = info.ports.get(settings.readout_port)
        if port is None:
            raise CameraParameterError(
                f"readout_port: {settings.readout_port!r} is not a port of the "
                f"{info.model}; it has {sorted(info.ports)}"
            )
        if settings.speed not in port.speeds:
            raise CameraParameterError(
                f"speed: {settings.speed!r} is not a speed of port {port.name!r} "
                f"({list(port.speeds)})"
            )
        if settings.gain not in port.gains:
            raise CameraParameterError(
                f"gain: {settings.gain} is not a gain of port {port.name!r} "
                f"({sorted(port.gains)})"
            )
        if tuple(settings.binning) not in info.binnings:
            raise CameraParameterError(
                f"binning: {settings.binning} is not one of {list(info.binnings)}"
            )
        x, y, width, height = settings.roi
        sensor_w, sensor_h = info.sensor
        bx, by = settings.binning
        if not (
            0 <= x
            and 0 <= y
            and width > 0
            and height > 0
            and x + width <= sensor_w
            and y + height <= sensor_h
        ):
            raise CameraParameterError(
                f"roi: (x={x}, y={y}, width={width}, height={height}) does not fit "
                f"the {sensor_w} x {sensor_h} sensor"
            )
        if width % bx or height % by:
            raise CameraParameterError(
                f"roi: width {width} and height {height} must be multiples of the "
                f"binning {bx}x{by}"
            )
        t_low, t_high = info.temperature_range
        if not t_low <= settings.temperature_setpoint <= t_high:
            raise CameraParameterError(
                f"temperature_setpoint: {settings.temperature_setpoint:g} C is outside "
                f"{t_low:g} to {t_high:g} C"
            )
        TriggerMode(settings.trigger_mode)
        ClearMode(settings.clear_mode)
        if settings.temperature_setpoint != self.settings.temperature_setpoint:
            self._temperature_from = self.temperature()
            self._opened = time.monotonic()
        self.settings = replace(settings)

    def frame_shape(self) -> tuple[int, int]:
        """(height, width) after ROI and binning."""
        _, _, width, height = self.settings.roi
        bx, by = self.settings.binning
        return height // by, width // bx

    def dtype(self) -> np.dtype:
        """u8 for 8-bit ports, u16 otherwise."""
        return self.port().dtype

    def readout_time(self) -> float:
        """Rows of the ROI times the port's line time."""
        return self.settings.roi[3] * self.port().line_time

    def temperature(self) -> float:
        """Settles toward the setpoint with a 3 s time constant."""
        elapsed = time.monotonic() - self._opened
        target = self.settings.temperature_setpoint
        return target + (self._temperature_from - target) * math.exp(-elapsed / 3.0)

    # -- frames -------------------------------------------------------------

    def _noise_bank(self) -> np.ndarray:
        port = self.port()
        key = (self.frame_shape(), port.name, self.settings.gain)
        if key != self._bank_key or self._bank is None:
            per_adu = port.gains[self.settings.gain]
            noise = self.rng.standard_normal(
                (BANK, *self.frame_shape()), dtype=np.float32
            )
            noise *= port.read_noise / per_adu
            noise += BIAS
            np.rint(noise, out=noise)
            np.clip(noise, 0, 2**port.bit_depth - 1, out=noise)
            self._bank = noise.astype(port.dtype)
            self._bank_key = key
        return self._bank

    def _beam_power(self, when: float) -> float:
        return self.world.camera_power(when) if self.world else self.source_power

    def _spot(self, when: float) -> tuple[float, float, float]:
        """Spot centre (x, y) and radius in pixels of the binned frame."""
        x, y, width, height = self.settings.roi
        bx, by = self.settings.binning
        sensor_w, sensor_h = self.info.sensor
        dx, dy, radius = self.world.spot(when) if self.world else (0.0, 0.0, 0.08)
        cx = (sensor_w / 2 + dx * self.pixels_per_mm - x) / bx
        cy = (sensor_h / 2 + dy * self.pixels_per_mm - y) / by
        return cx, cy, radius * self.pixels_per_mm / max(bx, by)

    def render(
        self, slot: np.ndarray, index: int, exposure: float, when: float
    ) -> None:
        """Fill `slot` with one frame: noise from the bank, then the spot."""
        np.copyto(slot, self._noise_bank()[index % BANK])
        port = self.port()
        per_adu = port.gains[self.settings.gain]
        photons = self._beam_power(when) * exposure * self.photons_per_joule
        if photons <= 0:
            return
        cx, cy, sigma = self._spot(when)
        height, width = slot.shape
        half = int(4 * sigma) + 2
        x0, x1 = max(0, int(cx) - half), min(width, int(cx) + half + 1)
        y0, y1 = max(0, int(cy) - half), min(height, int(cy) + half + 1)
        if x0 >= x1 or y0 >= y1:
            return  # the spot is off the frame
        xs = np.arange(x0, x1) - cx
        ys = np.arange(y0, y1) - cy
        profile = np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma * sigma))
        mean = photons * QUANTUM_EFFICIENCY / (2 * math.pi * sigma * sigma) * profile
        electrons = self.rng.poisson(mean)
        window = slot[y0:y1, x0:x1].astype(np.float64) + electrons / per_adu
        np.clip(window, 0, 2**port.bit_depth - 1, out=window)
        slot[y0:y1, x0:x1] = window.astype(slot.dtype)

    # -- acquisition ----------------------------------------------------------

    def arm(self, frames: int, sink: FrameSink, done: Done) -> None:
        """Start a thread acquiring `frames` frames (0: until stopped)."""
        self.stop()
        self._noise_bank()  # before the first trigger, not during it
        self._stop = threading.Event()
        self._software = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._acquire,
            args=(frames, sink, done),
            name="sim camera",
            daemon=True,
        )
        self._thread.start()

    def software_trigger(self) -> None:
        """Fire one software trigger."""
        self._software.put(time.monotonic())

    def stop(self) -> None:
        """Stop acquiring and wait for the thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def _wait_until(self, when: float) -> bool:
        delay = when - time.monotonic()
        return not (delay > 0 and self._stop.wait(delay))

    def _acquire(self, frames: int, sink: FrameSink, done: Done) -> None:
        error: BaseException | None = None
        try:
            self._run(frames, sink)
        except BaseException as exc:  # noqa: BLE001 - reported through `done`
            error = exc
        done(error)

    def _next_start(
        self, mode: TriggerMode, ready: float, first: bool
    ) -> tuple[float, float] | None:
        """When the next exposure starts and how long it lasts (None: stop)."""
        exposure = self.settings.exposure
        if mode is TriggerMode.INTERNAL or (
            mode is TriggerMode.TRIGGER_FIRST and not first
        ):
            return ready, exposure
        if mode is TriggerMode.SOFTWARE_EDGE:
            deadline = time.monotonic() + self.frame_timeout
            while not self._stop.is_set():
                try:
                    start = self._software.get(timeout=0.05)
                except queue.Empty:
                    if time.monotonic() > deadline:
                        raise FrameTimeoutError(
                            f"no software trigger within {self.frame_timeout:g} s"
                        ) from None
                    continue
                return max(start, ready), exposure
            return None
        while True:
            pulse = self.line.take(self.frame_timeout, self._stop)
            if pulse is None:
                if self._stop.is_set():
                    return None
                raise FrameTimeoutError(
                    f"no trigger within {self.frame_timeout:g} s in {mode.value} mode; "
                    "is the trigger source running?"
                )
            start, width = pulse
            if start < ready - 1e-6 and mode is not TriggerMode.TRIGGER_FIRST:
                self.missed_triggers += 1  # came while the camera was busy
                continue
            return start, (width if mode is TriggerMode.LEVEL else exposure)

    def _run(self, frames: int, sink: FrameSink) -> None:
        mode = TriggerMode(self.settings.trigger_mode)
        readout = self.readout_time()
        overhead = self.info.overhead
        ready = time.monotonic() + overhead
        taken = 0
        while not self._stop.is_set() and (frames == 0 or taken < frames):
            slot_start = self._next_start(mode, ready, first=taken == 0)
            if slot_start is None:
                break
            start, exposure = slot_start
            end = start + exposure
            if not self._wait_until(end + readout):
                break
            period = max(exposure, readout) + overhead
            if self.period is not None and mode is TriggerMode.INTERNAL:
                period = max(period, self.period)
            ready = start + period
            self._frame_number += 1
            taken += 1
            slot = sink.reserve()
            if slot is None:
                continue  # the host fell behind: this frame is lost
            self.render(slot, self._frame_number, exposure, start + exposure / 2)
            sink.commit(
                FrameInfo(
                    number=self._frame_number,
                    timestamp=time.time() - (time.monotonic() - end),
                    exposure=exposure,
                )
            )
