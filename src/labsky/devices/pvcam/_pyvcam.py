"""The pyvcam backend: a real Photometrics/Teledyne camera through PVCAM.

`pyvcam.camera` needs the PVCAM runtime (`libpvcam.so.2`, the Windows DLLs)
at import, so it is imported when the camera is opened, never with labsky:
without PVCAM the package imports and the simulated backend works, and this
backend fails with an error saying what to install.

pyvcam traps avoided here (reference/pvcam.md §1 and §5):

- exposures are ints in the camera's `exp_res` unit: a float is silently
  ignored by `start_live`, so the exposure is converted to microseconds;
- `get_sequence` is N separate acquisitions: frames come from `start_live`
  (a circular buffer, no 65535-frame or 4 GiB limit) and `poll_frame`;
- port, speed and gain are applied in that order;
- the temperature is not read while acquiring (it errors on some models);
- `poll_frame` waits forever by default: it gets a timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from labsky.devices.pvcam._backend import (
    CameraError,
    CameraInfo,
    CameraParameterError,
    CameraUnavailableError,
    Done,
    FrameInfo,
    FrameSink,
    FrameTimeoutError,
    ReadoutPort,
    Settings,
    TriggerMode,
)

#: pyvcam exposure-mode names by trigger mode (names vary by model: the
#: camera's own `exp_modes` are searched for these words).
_MODE_WORDS = {
    TriggerMode.INTERNAL: ("internal", "timed"),
    TriggerMode.TRIGGER_FIRST: ("trigger first", "trig first"),
    TriggerMode.EDGE: ("edge",),
    TriggerMode.LEVEL: ("level", "bulb", "gate"),
    TriggerMode.SOFTWARE_EDGE: ("software", "sw"),
}
_INIT_LOCK = threading.Lock()
_INITIALISED = [False]


def load_pyvcam() -> tuple[Any, Any]:
    """Import pyvcam's `pvc` and `Camera`, or say what is missing."""
    try:
        from pyvcam import pvc  # type: ignore[import-not-found]
        from pyvcam.camera import Camera  # type: ignore[import-not-found]
    except ImportError as exc:
        raise CameraUnavailableError(
            "backend pyvcam needs the pyvcam package and the PVCAM runtime from "
            f"Teledyne Photometrics ({exc}); install both (pip install pyvcam), or "
            "declare the camera with `backend: sim`"
        ) from exc
    with _INIT_LOCK:
        if not _INITIALISED[0]:
            pvc.init_pvcam()
            _INITIALISED[0] = True
    return pvc, Camera


class PyVcamBackend:
    """A real camera through pyvcam.

    Args:
        camera_name: PVCAM's name of the camera (`pvcamUSB_0`); None opens
            the first camera found.
    """

    def __init__(self, camera_name: str | None = None):
        self.camera_name = camera_name
        self.frame_timeout = 10.0
        self.period: float | None = None
        self._camera: Any = None
        self.settings = Settings()
        self._info: CameraInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acquiring = False
        self._last_temperature = float("nan")

    def open(self) -> CameraInfo:
        """Open the camera and read what it can do."""
        _, camera_class = load_pyvcam()
        names = camera_class.get_available_camera_names()
        if not names:
            raise CameraUnavailableError("PVCAM finds no camera: check cable and power")
        name = self.camera_name or names[0]
        if name not in names:
            raise CameraUnavailableError(f"no camera {name!r}; PVCAM sees {names}")
        camera = camera_class.select_camera(name)
        camera.open()
        camera.metadata_enabled = True
        self._camera = camera
        ports = {}
        for port_name, port in camera.port_speed_gain_table.items():
            speeds = [k for k in port if isinstance(port[k], dict)]
            first = port[speeds[0]]
            gains = {
                v["gain_index"]: 1.0 for k, v in first.items() if isinstance(v, dict)
            }
            bit_depth = max(
                v["bit_depth"] for v in first.values() if isinstance(v, dict)
            )
            line_time = first.get("pixel_time", 10) * 1e-9 * camera.sensor_size[0]
            ports[port_name] = ReadoutPort(
                port_name, bit_depth, line_time, gains, 1.5, tuple(speeds)
            )
        self._info = CameraInfo(
            model=str(camera.name),
            serial=str(getattr(camera, "serial_no", "")),
            sensor=tuple(camera.sensor_size),  # type: ignore[arg-type]
            pixel_size=6.5,
            ports=ports,
            binnings=tuple(tuple(b) for b in (camera.binnings or [(1, 1), (2, 2)])),  # type: ignore[misc]
        )
        first_port = next(iter(ports.values()))
        self.settings = Settings(
            readout_port=first_port.name,
            speed=first_port.speeds[0],
            gain=min(first_port.gains),
            roi=(0, 0, *camera.sensor_size),
        )
        return self._info

    def close(self) -> None:
        """Stop and close the camera."""
        self.stop()
        if self._camera is not None:
            self._camera.close()
            self._camera = None

    def _mode_value(self, mode: TriggerMode) -> Any:
        modes = self._camera.exp_modes
        for name, value in modes.items():
            if any(word in name.lower() for word in _MODE_WORDS[mode]):
                return value
        raise CameraParameterError(
            f"trigger_mode: {mode.value} is not offered by this camera ({list(modes)})"
        )

    def apply(self, settings: Settings) -> None:
        """Apply settings in PVCAM's order, naming a setting the camera refuses."""
        camera = self._camera
        assert self._info is not None, "open the camera first"
        info = self._info
        for name, action in (
            (
                "readout_port",
                lambda: setattr(
                    camera, "readout_port", camera.readout_ports[settings.readout_port]
                ),
            ),
            (
                "speed",
                lambda: setattr(
                    camera,
                    "speed",
                    list(info.ports[settings.readout_port].speeds).index(
                        settings.speed
                    ),
                ),
            ),  # type: ignore[union-attr]
            ("gain", lambda: setattr(camera, "gain", settings.gain)),
            ("binning", lambda: setattr(camera, "binning", tuple(settings.binning))),
            ("roi", lambda: camera.set_roi(*settings.roi)),
            (
                "clear_mode",
                lambda: setattr(camera, "clear_mode", settings.clear_mode.value),
            ),
            (
                "trigger_mode",
                lambda: setattr(
                    camera, "exp_mode", self._mode_value(settings.trigger_mode)
                ),
            ),
            (
                "temperature_setpoint",
                lambda: setattr(camera, "temp_setpoint", settings.temperature_setpoint),
            ),
        ):
            try:
                action()
            except CameraParameterError:
                raise
            except (ValueError, AttributeError, KeyError, RuntimeError) as exc:
                raise CameraParameterError(
                    f"{name}: the camera refused it: {exc}"
                ) from exc
        camera.exp_res = 1  # microseconds
        self.settings = settings

    def frame_shape(self) -> tuple[int, int]:
        """(height, width) after ROI and binning."""
        _, _, width, height = self.settings.roi
        bx, by = self.settings.binning
        return height // by, width // bx

    def dtype(self) -> np.dtype:
        """u8 or u16, from the host bit depth."""
        return np.dtype(np.uint8 if self._camera.bit_depth_host <= 8 else np.uint16)

    def readout_time(self) -> float:
        """The last acquisition's readout time (PARAM_READOUT_TIME), s."""
        try:
            return float(self._camera.readout_time) * 1e-6
        except (AttributeError, RuntimeError):
            return 0.0

    def temperature(self) -> float:
        """Sensor temperature (the last one read while idle during acquisition)."""
        if not self._acquiring:
            self._last_temperature = float(self._camera.temp)
        return self._last_temperature

    def arm(self, frames: int, sink: FrameSink, done: Done) -> None:
        """Start live acquisition; a thread moves frames into the sink."""
        self.stop()
        exposure_us = max(1, round(self.settings.exposure * 1e6))
        buffer = max(16, min(255, frames or 64))
        self._camera.start_live(
            exp_time=exposure_us, buffer_frame_count=buffer, reset_frame_counter=True
        )
        self._acquiring = True
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._acquire, args=(frames, sink, done), name="pvcam", daemon=True
        )
        self._thread.start()

    def _acquire(self, frames: int, sink: FrameSink, done: Done) -> None:
        error: BaseException | None = None
        last = 0
        try:
            taken = 0
            timeout_ms = int((self.frame_timeout + self.settings.exposure) * 1000)
            while not self._stop.is_set() and (frames == 0 or taken < frames):
                try:
                    frame, _fps, count = self._camera.poll_frame(
                        timeout_ms=timeout_ms, copyData=False
                    )
                except RuntimeError as exc:
                    message = str(exc)
                    if "aborted" in message.lower():
                        break
                    if "timeout" in message.lower():
                        raise FrameTimeoutError(
                            f"no frame within {timeout_ms / 1000:g} s: {message}"
                        ) from exc
                    raise CameraError(message) from exc
                if count - last > 1:
                    sink.lost(count - last - 1)  # gaps in the camera's frame count
                last = count
                taken += 1
                slot = sink.reserve()
                if slot is None:
                    continue
                np.copyto(slot, frame["pixel_data"])
                sink.commit(FrameInfo(count, time.time(), self.settings.exposure))
        except BaseException as exc:  # noqa: BLE001 - reported through `done`
            error = exc
        finally:
            self._camera.finish()
            self._acquiring = False
        done(error)

    def software_trigger(self) -> None:
        """Fire one software trigger."""
        self._camera.sw_trigger()

    def stop(self) -> None:
        """Stop the acquisition (pyvcam's `finish`) and wait for the thread."""
        self._stop.set()
        if self._acquiring and self._camera is not None:
            self._camera.finish()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)
