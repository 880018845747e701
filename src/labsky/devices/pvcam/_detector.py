"""`PvcamDetector`: an ophyd-async StandardDetector for Photometrics cameras."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ophyd_async.core import (
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    Device,
    DeviceConnector,
    PathProvider,
    SignalDict,
    SignalR,
    SignalRW,
    SoftSignalBackend,
    StandardDetector,
    StreamableDataProvider,
    StreamResourceDataProvider,
    StreamResourceInfo,
    WatchableAsyncStatus,
    WatcherUpdate,
    soft_signal_r_and_setter,
    soft_signal_rw,
)

from labsky.devices.pvcam._backend import (
    CameraBackend,
    CameraError,
    CameraInfo,
    CameraParameterError,
    ClearMode,
    Settings,
    TriggerMode,
)
from labsky.devices.pvcam._frames import STATS, FrameRing, FrameWriter

logger = logging.getLogger(__name__)

DropPolicy = Literal["error", "warn"]


class DroppedFramesError(CameraError):
    """Frames were lost between the camera and the file."""


class PvcamDriver:
    """The backend, the one thread that calls it, and the acquisition in flight."""

    def __init__(self, backend: CameraBackend):
        self.backend = backend
        self.info: CameraInfo | None = None
        self.frames_to_take = 1
        self.ring: FrameRing | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pvcam")
        self._done: asyncio.Future[None] | None = None
        self._failure: asyncio.Future[None] | None = None
        self._staged: Settings | None = None
        self.name = ""
        self.check_error: Any = None  # set by the detector: the drop policy

    def guard(self, inner: WatchableAsyncStatus[Any]) -> WatchableAsyncStatus[Any]:
        """A status that follows `inner`, failing at once on a camera error.

        Progress updates are passed on. Without this, a camera error would
        only show after the exposure timeout of a wait for frames that will
        never come.
        """
        failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failure.add_done_callback(_consume)
        done = self._done
        if (
            done is not None
            and done.done()
            and not done.cancelled()
            and done.exception()
        ):
            failure.set_exception(done.exception())  # type: ignore[arg-type]
        self._failure = failure
        return WatchableAsyncStatus(_follow(inner, failure), name=self.name)

    async def call(self, function: Any, *args: Any) -> Any:
        """Run a blocking backend call on the camera's thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, function, *args
        )

    @property
    def settings(self) -> Settings:
        """The settings the next acquisition uses."""
        staged = self._staged
        if staged is None:
            staged = self._staged = replace(self.backend.settings)  # type: ignore[attr-defined]
        return staged

    async def open(self) -> None:
        """Open the camera (once)."""
        if self.info is None:
            self.info = await self.call(self.backend.open)
            self._staged = None

    async def update(self, check: bool = True, **changes: Any) -> None:
        """Change settings; the backend checks them (errors name the setting).

        Args:
            check: Check and apply now; False stages the change (ROI and
                binning parts, checked together when an acquisition is
                prepared, so the order they are set in does not matter).
            **changes: Settings fields and their new values.
        """
        new = replace(self.settings, **changes)
        if check:
            try:
                await self.call(self.backend.apply, new)
            except CameraError as exc:
                raise type(exc)(f"{self.name}.{exc}") from None
        self._staged = new

    async def arm(self, frames: int) -> None:
        """Start acquiring into the frame ring; return once armed."""
        if self.ring is None:
            raise CameraError(
                f"{self.name}: no frame writer: prepare or stage the detector first"
            )
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._done = done

        ring = self.ring

        def finished(error: BaseException | None) -> None:
            ring.end()  # frames lost at the end become placeholders too

            def settle() -> None:
                failure = (
                    type(error)(f"{self.name}: {error}")
                    if isinstance(error, CameraError)
                    else error
                ) or (self.check_error() if self.check_error else None)
                if done.done():
                    return
                if failure is None:
                    done.set_result(None)
                    return
                done.set_exception(failure)
                if self._failure is not None and not self._failure.done():
                    self._failure.set_exception(failure)

            loop.call_soon_threadsafe(settle)

        await self.call(self.backend.arm, frames, self.ring, finished)

    async def wait_done(self) -> None:
        """Wait for the acquisition to end; raise what it raised."""
        if self._done is not None:
            await self._done

    async def stop(self) -> None:
        """Stop acquiring (idempotent)."""
        await self.call(self.backend.stop)
        if self._done is not None and not self._done.done():
            self._done.cancel()


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "never retrieved" warning


async def _follow(
    inner: WatchableAsyncStatus[Any], failure: asyncio.Future[None]
) -> AsyncIterator[WatcherUpdate[Any]]:
    """Yield `inner`'s progress until it ends; raise `failure` if it comes first."""
    updates: asyncio.Queue[WatcherUpdate[Any]] = asyncio.Queue()

    def forward(**values: Any) -> None:
        updates.put_nowait(WatcherUpdate(**values))

    inner.watch(forward)  # type: ignore[arg-type]
    while True:
        update = asyncio.ensure_future(updates.get())
        finished, _ = await asyncio.wait(
            {update, inner.task, failure}, return_when=asyncio.FIRST_COMPLETED
        )
        if update in finished:
            yield update.result()
            continue
        update.cancel()
        if inner.task not in finished:  # the camera failed first
            inner.task.cancel()
            failure.result()  # raises the camera's error
        while not updates.empty():
            yield updates.get_nowait()
        await inner
        return


class CameraConnector(DeviceConnector):
    """Open the camera when the detector connects (never in mock mode)."""

    def __init__(self, driver: PvcamDriver):
        self.driver = driver

    async def connect_real(
        self, device: Device, timeout: float, force_reconnect: bool
    ) -> None:
        """Open the camera, then connect the signals."""
        self.driver.name = device.name
        try:
            await asyncio.wait_for(self.driver.open(), timeout)
        except CameraError as exc:
            raise type(exc)(f"{device.name}: {exc}") from None
        await super().connect_real(device, timeout, force_reconnect)


class PvcamTriggerLogic(DetectorTriggerLogic):
    """Internal, edge and level triggering; exposure from `TriggerInfo.livetime`."""

    def __init__(self, detector: PvcamDetector):
        self.detector = detector

    def config_sigs(self) -> set[SignalR]:
        """Every setting, in `read_configuration`."""
        return set(self.detector.config_signals)

    def get_deadtime(self, config_values: SignalDict) -> float:
        """Rolling shutter: exposures overlap the readout; the gap is the rest."""
        return float(config_values[self.detector.readout_time]) + 1e-5

    async def _prepare(
        self, mode: TriggerMode, num: int, livetime: float = 0.0
    ) -> None:
        changes: dict[str, Any] = {"trigger_mode": mode}
        if livetime:
            changes["exposure"] = livetime
        driver = self.detector.driver
        await driver.update(**changes)
        driver.frames_to_take = num

    async def prepare_internal(
        self, num: int, livetime: float, deadtime: float
    ) -> None:
        """Frames timed by the camera (or the first edge: `start_on_trigger`).

        A deadtime beyond the readout slows them.
        """
        first = await self.detector.start_on_trigger.get_value()
        await self._prepare(
            TriggerMode.TRIGGER_FIRST if first else TriggerMode.INTERNAL, num, livetime
        )
        backend: Any = self.detector.driver.backend
        backend.period = (livetime + deadtime) if (livetime and deadtime) else None

    async def prepare_edge(self, num: int, livetime: float) -> None:
        """One exposure of `livetime` per rising edge."""
        await self._prepare(TriggerMode.EDGE, num, livetime)

    async def prepare_level(self, num: int) -> None:
        """Each exposure lasts as long as the trigger is high."""
        await self._prepare(TriggerMode.LEVEL, num)


class PvcamAcquireLogic(DetectorAcquireLogic):
    """Arm the camera; when it is done, report frames lost on the way."""

    def __init__(self, detector: PvcamDetector):
        self.detector = detector

    async def start_acquiring(self) -> None:
        """Arm for the frames prepared (each trigger of a step scan too)."""
        driver = self.detector.driver
        await driver.arm(driver.frames_to_take)

    async def wait_for_idle(self) -> None:
        """Wait for the last frame; raise on camera errors and dropped frames."""
        await self.detector.driver.wait_done()
        await self.detector.check_frames()

    async def ensure_stopped(self) -> None:
        """Stop the camera."""
        await self.detector.driver.stop()


class PvcamDataLogic(DetectorDataLogic):
    """Frames through the frame ring into one HDF5 file per stage."""

    def __init__(
        self,
        detector: PvcamDetector,
        path_provider: PathProvider,
        ring_bytes: int,
        compression: str | None,
    ):
        self.detector = detector
        self.path_provider = path_provider
        self.ring_bytes = ring_bytes
        self.compression = compression
        self.writer: FrameWriter | None = None

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        """Open the file and the writer; describe the frames and statistics."""
        await self.stop()
        detector = self.detector
        driver = detector.driver
        shape = await driver.call(driver.backend.frame_shape)
        dtype = np.dtype(await driver.call(driver.backend.dtype))
        path_info = self.path_provider(datakey_name)
        path = Path(path_info.directory_path) / f"{path_info.filename}.h5"
        frame_bytes = int(np.prod(shape)) * dtype.itemsize
        slots = max(2, self.ring_bytes // frame_bytes)
        ring = driver.ring
        if ring is not None and ring.matches(slots, shape, dtype):
            ring.reset()  # same geometry: keep the (already faulted-in) memory
        else:
            driver.ring = None
            ring = await asyncio.to_thread(FrameRing, slots, shape, dtype)
        loop = asyncio.get_running_loop()
        detector.set_frames_written(0)
        detector.reset_dropped()

        def written(count: int) -> None:
            loop.call_soon_threadsafe(detector.set_frames_written, count)

        self.writer = await asyncio.to_thread(
            FrameWriter, path, ring, written, compression=self.compression
        )
        driver.ring = ring
        resources = [
            StreamResourceInfo(
                data_key=datakey_name,
                shape=shape,
                chunk_shape=(1, *shape),
                dtype_numpy=dtype.str,
                parameters={"dataset": "/entry/data/data"},
            ),
            *(
                StreamResourceInfo(
                    data_key=f"{datakey_name}-{stat}",
                    shape=(),
                    chunk_shape=(4096,),
                    dtype_numpy="<f8",
                    parameters={"dataset": f"/entry/stats/{stat}"},
                )
                for stat in STATS
            ),
        ]
        return StreamResourceDataProvider(
            uri=f"{path_info.directory_uri}{path_info.filename}.h5",
            resources=resources,
            mimetype="application/x-hdf5",
            collections_written_signal=detector.frames_written,
        )

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        """The frame's total signal: what a live plot shows."""
        return [f"{datakey_name}-total"]

    async def stop(self) -> None:
        """Write what is in the ring and close the file."""
        writer, self.writer = self.writer, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
            if writer.error is not None:
                raise CameraError(
                    f"{self.detector.name}: writing {writer.path} failed: "
                    f"{writer.error}"
                ) from writer.error


class PvcamDetector(StandardDetector):
    """A Photometrics/Teledyne camera (Prime BSI, Kinetix, ...).

    Frames go from the camera's thread through a preallocated frame ring to a
    writer thread that stores them with direct chunk writes; StreamResource
    and StreamDatum documents point at the file, so the run's HDF5 file links
    them and Tiled serves them as `run["primary"][name]`. Per frame the file
    also holds the total signal and the spot's centroid (`<name>-total`,
    `-centroid_x`, `-centroid_y`), which are hinted for live plots.

    Args:
        backend: The camera: `PyVcamBackend`, or `labsky.sim.camera.SimCamera`.
        path_provider: Where frame files go.
        ring_mb: Memory of the frame ring between camera and writer, MiB
            (at least two frames); allocated once per frame size.
        on_dropped: `error` fails the acquisition when frames were lost,
            `warn` logs it and goes on.
        compression: None, or `blosc-lz4`.
        name: The device name.
    """

    def __init__(
        self,
        backend: CameraBackend,
        path_provider: PathProvider,
        ring_mb: int = 512,
        on_dropped: DropPolicy = "error",
        compression: str | None = None,
        name: str = "",
    ):
        self.driver = PvcamDriver(backend)
        self.exposure = self._setting("exposure", float, "s")
        self.trigger_mode = self._setting("trigger_mode", TriggerMode)
        self.readout_port = self._setting("readout_port", str)
        self.speed = self._setting("speed", str)
        self.gain = self._setting("gain", int)
        self.clear_mode = self._setting("clear_mode", ClearMode)
        self.binning_x = self._setting("binning", int, index=0)
        self.binning_y = self._setting("binning", int, index=1)
        self.roi_x = self._setting("roi", int, "px", index=0)
        self.roi_y = self._setting("roi", int, "px", index=1)
        self.roi_width = self._setting("roi", int, "px", index=2)
        self.roi_height = self._setting("roi", int, "px", index=3)
        self.temperature_setpoint = self._setting("temperature_setpoint", float, "C")
        self.temperature = self._reading(self._temperature, float, "C")
        self.readout_time = self._reading(self._readout_time, float, "s")
        self.bit_depth = self._reading(self._bit_depth, int)
        self.model, self._set_model = soft_signal_r_and_setter(str)
        self.serial_number, self._set_serial = soft_signal_r_and_setter(str)
        self.frames_acquired = self._reading(self._frames_acquired, int)
        self.frames_dropped = self._reading(self._frames_dropped, int)
        self.frames_written, self.set_frames_written = soft_signal_r_and_setter(int)
        self.start_on_trigger = soft_signal_rw(bool, False)
        self.config_signals: list[SignalR] = [
            self.exposure, self.trigger_mode, self.readout_port, self.speed,
            self.gain, self.clear_mode, self.binning_x, self.binning_y,
            self.roi_x, self.roi_y, self.roi_width, self.roi_height,
            self.temperature, self.temperature_setpoint, self.readout_time,
            self.bit_depth, self.model, self.serial_number,
            self.frames_acquired, self.frames_dropped,
        ]  # fmt: skip
        self.on_dropped = on_dropped
        self._dropped_reported = 0
        self.driver.check_error = self.dropped_error
        self.data_logic = PvcamDataLogic(
            self, path_provider, ring_mb * 1024 * 1024, compression
        )
        self.add_detector_logics(
            PvcamTriggerLogic(self), PvcamAcquireLogic(self), self.data_logic
        )
        super().__init__(name=name, connector=CameraConnector(self.driver))

    # -- signals backed by the camera -------------------------------------

    def _setting(
        self,
        field: str,
        datatype: type,
        units: str | None = None,
        index: int | None = None,
    ) -> SignalRW[Any]:
        async def get() -> Any:
            value = getattr(self.driver.settings, field)
            return value[index] if index is not None else value

        async def put(value: Any) -> None:
            if index is None:
                await self.driver.update(**{field: value})
                return
            if int(value) < (1 if field == "binning" or index >= 2 else 0):
                raise CameraParameterError(
                    f"{self.name}.{field}: {value} is not possible"
                )
            parts = list(getattr(self.driver.settings, field))
            parts[index] = int(value)
            await self.driver.update(check=False, **{field: tuple(parts)})

        return soft_signal_rw(datatype, units=units, getter=get, setter=put)

    def _reading(
        self, getter: Any, datatype: type, units: str | None = None
    ) -> SignalR[Any]:
        return SignalR(SoftSignalBackend(datatype, units=units, getter=getter))

    async def _temperature(self) -> float:
        return round(await self.driver.call(self.driver.backend.temperature), 2)

    async def _readout_time(self) -> float:
        return await self.driver.call(self.driver.backend.readout_time)

    async def _bit_depth(self) -> int:
        info = self.driver.info
        port = self.driver.settings.readout_port
        return info.ports[port].bit_depth if info and port in info.ports else 0

    async def _frames_acquired(self) -> int:
        ring = self.driver.ring
        return (ring.produced + ring.dropped) if ring else 0

    async def _frames_dropped(self) -> int:
        ring = self.driver.ring
        return ring.dropped if ring else 0

    async def connect(
        self, mock: Any = False, timeout: float = 10.0, force_reconnect: bool = False
    ) -> None:
        """Connect, then record what the camera is."""
        await super().connect(
            mock=mock, timeout=timeout, force_reconnect=force_reconnect
        )
        info = self.driver.info
        if info is not None:
            self._set_model(info.model)
            self._set_serial(info.serial)

    def reset_dropped(self) -> None:
        """A new frame ring: no drops reported yet."""
        self._dropped_reported = 0

    def dropped_error(self) -> DroppedFramesError | None:
        """The error for frames dropped since the last check, or None.

        With policy `warn` the drop is logged and None returned.
        """
        ring = self.driver.ring
        if ring is None or ring.dropped <= self._dropped_reported:
            return None
        lost = ring.dropped - self._dropped_reported
        self._dropped_reported = ring.dropped
        message = (
            f"{self.name}: {lost} frames dropped ({ring.dropped} in all; stored as "
            "zero frames numbered -1): the frame writer could not keep up with the "
            "camera; lower the frame rate, use a smaller ROI or a faster disk, or "
            "raise ring_mb"
        )
        if self.on_dropped == "error":
            return DroppedFramesError(message)
        logger.warning("%s", message)
        return None

    async def check_frames(self) -> None:
        """Raise (or warn) if frames were dropped since the last check."""
        error = self.dropped_error()
        if error is not None:
            raise error

    def trigger(self) -> WatchableAsyncStatus[Any]:  # type: ignore[override]
        """Take one frame (step scans); a camera error ends it at once."""
        return self.driver.guard(super().trigger())  # type: ignore[arg-type]

    def complete(self) -> WatchableAsyncStatus[Any]:  # type: ignore[override]
        """Wait for the frames of a kickoff; a camera error ends it at once."""
        return self.driver.guard(super().complete())  # type: ignore[arg-type]

    def preview(self) -> tuple[np.ndarray, int] | None:
        """A copy of the newest frame and its number, for a live view.

        Never slows the writer: it copies one slot under the ring's lock.
        """
        ring = self.driver.ring
        latest = ring.latest() if ring else None
        return None if latest is None else (latest[0], latest[1].number)

    async def disconnect(self) -> None:
        """Stop acquiring, close the frame file and the camera."""
        await self.driver.stop()
        await self.data_logic.stop()
        await self.driver.call(self.driver.backend.close)
