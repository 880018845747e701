"""The daemon's device API: describe, read, set, stop and watch the session's devices.

It runs in the process that owns the devices, the queue server's RE Worker,
and serves them on loopback over 0MQ so that other processes (the cockpit,
`labsky gui`) can show and move them while the queue runs plans:

- requests on a ROUTER socket (`DaemonAddresses.devices`), one JSON object
  each, answered with `{"ok": true, ...}` or `{"ok": false, "error": MESSAGE}`;
- readings and camera frames on a PUB socket (its address is in every
  `describe` reply): `[b"values", JSON]` with `{key: [value, timestamp]}`,
  `[b"frame", JSON header, pixels]`, `[b"state", JSON]` when devices change.

Requests (`op` and its fields):

- `describe`: every device as declared (groups, description), its movables
  (units, limits, setpoint), its read and configuration signals, failed
  devices with their error;
- `read`: the latest value of every key (`keys` to choose);
- `set`: `name` (`stage.x`, `camera.exposure`), `value`; checked first (type,
  choices, soft limits), then the device's own `set` (which checks interlocks
  and bus limits), answered when it is done;
- `stop`: `name`; stops a movable at once;
- `reconnect`: `name`; `Session.reconnect`;
- `watch`: `seconds` for device values, `cameras` `{name: seconds}` for
  frames: a lease the client renews, so nothing is polled or copied when
  nobody looks;
- `focus`: `name`, `on`, `exposure`: a camera acquires continuously outside
  plans, for alignment (a plan's stage stops it).

What it costs a scan: while a plan runs nothing is polled; the values come
from the run's own event documents (one dict update per event on the
RunEngine's thread). Frames are copied from the detector's preview (PVCAM)
or read from the file a plan's detector writes (any other 2-D detector, see
`file_frames`), in this service's own thread, only while a page watches.
Idle, read signals are polled at 10 Hz and configuration at 1 Hz, and a
device still answering its last poll is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

from labsky.daemon.file_frames import FileFrames
from labsky.errors import LabskyError

logger = logging.getLogger(__name__)

#: Poll periods while no plan runs, s.
READ_PERIOD = 0.1
CONFIG_PERIOD = 1.0
#: Frames per second sent per watched camera, and the largest side sent.
FRAME_RATE = 15.0
FRAME_SIDE = 512
#: Frames per second a camera in focus mode takes.
FOCUS_RATE = 20.0


class DeviceApiError(LabskyError, RuntimeError):
    """A request was refused; the message says why and what to do."""


def _jsonable(value: Any) -> Any:
    """A reading's value as JSON, arrays larger than 64 values as their shape."""
    if isinstance(value, np.ndarray):
        if value.size > 64:
            return {"shape": list(value.shape)}
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value][:64]
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, (str, int, float)):
        return enum_value
    return str(value)


def walk_signals(device: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every signal under `device`, with its dotted path (`stage.x.velocity`)."""
    from ophyd_async.core import Signal

    for attr, child in _children(device):
        child_path = f"{path}.{attr}"
        if isinstance(child, Signal):
            yield child_path, child
        else:
            yield from walk_signals(child, child_path)


def walk_movables(device: Any, path: str) -> Iterator[tuple[str, Any]]:
    """`device` and its children that move (`set` and `read`), not signals."""
    from ophyd_async.core import Signal

    if callable(getattr(device, "set", None)) and callable(
        getattr(device, "read", None)
    ):
        yield path, device
    for attr, child in _children(device):
        if not isinstance(child, Signal):
            yield from walk_movables(child, f"{path}.{attr}")


def _children(device: Any) -> list[tuple[str, Any]]:
    children: Any = getattr(device, "children", None)
    if not callable(children):
        return []
    found: Any = children()
    return list(found)


@dataclass
class SignalInfo:
    """One signal the cockpit shows."""

    key: str
    path: str
    kind: str  # "read" or "config"
    signal: Any
    datakey: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        dk = self.datakey
        return {
            "key": self.key,
            "path": self.path,
            "kind": self.kind,
            "dtype": dk.get("dtype"),
            "shape": list(dk.get("shape") or []),
            "units": dk.get("units"),
            "precision": dk.get("precision"),
            "choices": list(dk.get("choices") or []),
            "limits": _limits(dk),
            "settable": callable(getattr(self.signal, "set", None)),
        }


def _limits(datakey: Mapping[str, Any]) -> list[float] | None:
    limits = datakey.get("limits") or {}
    for kind in ("control", "display"):
        low = (limits.get(kind) or {}).get("low")
        high = (limits.get(kind) or {}).get("high")
        if low is not None and high is not None and low < high:
            return [float(low), float(high)]
    return None


@dataclass
class DeviceInfo:
    """A working device: its signals by key and its movables by dotted name."""

    name: str
    signals: list[SignalInfo] = field(default_factory=list)
    movables: dict[str, Any] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)
    polling: bool = False  # a poll is in flight


class FocusMode:
    """A PVCAM camera acquiring continuously into a small ring, outside plans.

    The frames are only previewed: this object frees the ring's slots as it
    looks at them, so the camera never stalls. A plan that stages the camera
    stops it (stage makes the detector idle and prepares its own ring).
    """

    def __init__(self, detector: Any):
        self.detector = detector
        self.ring: Any = None

    async def start(self, exposure: float | None) -> None:
        """Arm the camera for frames until stopped (on the RunEngine's loop)."""
        from labsky.devices.pvcam import FrameRing, TriggerMode

        driver = self.detector.driver
        await driver.stop()
        changes: dict[str, Any] = {"trigger_mode": TriggerMode.INTERNAL}
        if exposure:
            changes["exposure"] = exposure
        await driver.update(**changes)
        shape = await driver.call(driver.backend.frame_shape)
        dtype = np.dtype(await driver.call(driver.backend.dtype))
        self.ring = await asyncio.to_thread(FrameRing, 3, tuple(shape), dtype)
        driver.ring = self.ring
        backend = driver.backend
        if hasattr(backend, "period"):
            backend.period = max(driver.settings.exposure, 1 / FOCUS_RATE)
        await driver.arm(0)

    async def stop(self) -> None:
        """Stop the acquisition (if the ring is still the camera's)."""
        driver = self.detector.driver
        if driver.ring is self.ring:
            await driver.stop()
            if hasattr(driver.backend, "period"):
                driver.backend.period = None
        self.ring = None

    def release(self) -> None:
        """Free the slots looked at, so the camera goes on."""
        ring = self.ring
        if ring is not None and self.detector.driver.ring is ring:
            ring.free(ring.produced)


def downsample(frame: np.ndarray, side: int = FRAME_SIDE) -> tuple[np.ndarray, int]:
    """A frame shrunk by a whole step so that its larger side is at most `side`.

    Each pixel is the brightest of four samples of its step x step block
    (offsets 0 and step/2 on both axes), so a small spot stays visible; about
    4 ms for a 2048 x 2048 frame, against 40 ms for a block sum.

    Returns:
        The small frame (uint8 or uint16) and the step.
    """
    step = max(1, math.ceil(max(frame.shape[:2]) / side))
    if step == 1:
        small = frame
    else:
        small = _brightest(frame, step, step // 2)
    if small.dtype not in (np.uint8, np.uint16):
        small = np.clip(small, 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(small), step


def _brightest(frame: np.ndarray, step: int, half: int) -> np.ndarray:
    h, w = frame.shape[:2]
    rows, cols = math.ceil(h / step), math.ceil(w / step)
    small = frame[::step, ::step].copy()
    for dy, dx in ((half, 0), (0, half), (half, half)):
        part = frame[dy::step, dx::step]
        np.maximum(
            small[: part.shape[0], : part.shape[1]],
            part,
            out=small[: part.shape[0], : part.shape[1]],
        )
    assert small.shape[:2] == (rows, cols)
    return small


class DeviceService:
    """Serve a session's devices on loopback (see the module's docstring).

    Args:
        session: The labsky session (devices, declarations, RunEngine).
        address: The request socket's address (`tcp://127.0.0.1:PORT`; port 0
            picks a free one).
    """

    def __init__(self, session: Any, address: str = "tcp://127.0.0.1:0"):
        self.session = session
        self.address = address
        self.publish_address = ""
        self.devices: dict[str, DeviceInfo] = {}
        self.latest: dict[str, tuple[Any, float]] = {}
        self.errors: dict[str, str] = {}  # device -> last poll error
        self.focus: dict[str, FocusMode] = {}
        self._changed: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self._watch_until = 0.0
        self._cameras: dict[str, float] = {}
        self._last_frame: dict[str, int] = {}
        self.file_frames = FileFrames()
        self._last_file: dict[str, str | None] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._dirty: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._token: int | None = None
        self._plan_running = False
        self._hook: Callable[[str, str], Any] | None = None

    # -- life -------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> DeviceService:
        """Start serving in a thread; return once the sockets are bound."""
        run_engine = self.session.run_engine
        self._token = run_engine.subscribe(self._document)
        self._hook = run_engine.state_hook
        run_engine.state_hook = self._state_changed
        self._thread = threading.Thread(
            target=self._run, name="labsky-device-api", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise DeviceApiError("the device API did not start")
        if self._failure is not None:
            raise DeviceApiError(f"the device API did not start: {self._failure}")
        return self

    def close(self) -> None:
        """Stop serving (focus modes stop too)."""
        run_engine = self.session.run_engine
        if self._token is not None:
            run_engine.unsubscribe(self._token)
            self._token = None
            run_engine.state_hook = self._hook
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._failure = exc
            self._ready.set()

    # -- the RunEngine's side (its thread: only O(1) work) ------------------

    def _state_changed(self, new: str, old: str) -> None:
        self._plan_running = new not in ("idle", "paused")
        if self._hook is not None:
            self._hook(new, old)

    def _document(self, name: str, doc: dict[str, Any]) -> None:
        if name in ("descriptor", "stream_resource"):
            self.file_frames.document(name, doc)
        elif name == "event":
            self._take(doc["data"], doc["timestamps"])
        elif name == "event_page":
            data, stamps = doc["data"], doc["timestamps"]
            self._take(
                {k: v[-1] for k, v in data.items()},
                {k: v[-1] for k, v in stamps.items()},
            )

    def _take(self, data: Mapping[str, Any], stamps: Mapping[str, float]) -> None:
        with self._lock:
            for key, value in data.items():
                self._changed[key] = (value, stamps.get(key, time.time()))

    # -- serving ------------------------------------------------------------

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._dirty = asyncio.Event()
        context = zmq.asyncio.Context()
        router = context.socket(zmq.ROUTER)
        publisher = context.socket(zmq.PUB)
        publisher.setsockopt(zmq.SNDHWM, 50)  # a slow client drops, never stalls us
        router.setsockopt(zmq.LINGER, 0)
        publisher.setsockopt(zmq.LINGER, 0)
        try:
            host, _, port = self.address.rpartition(":")
            if port == "0":
                router.bind_to_random_port(host)
            else:
                router.bind(self.address)
            self.address = router.get_string(zmq.LAST_ENDPOINT)
            publisher.bind_to_random_port(host or "tcp://127.0.0.1")
            self.publish_address = publisher.get_string(zmq.LAST_ENDPOINT)
            await self._on_devices(self._describe_all())
            self._publisher = publisher
            self._ready.set()
            tasks = [
                asyncio.create_task(self._requests(router)),
                asyncio.create_task(self._values()),
                asyncio.create_task(self._publish()),
                asyncio.create_task(self._frames()),
            ]
            await self._stopping.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for name in list(self.focus):
                with contextlib.suppress(Exception):
                    await self._on_devices(self.focus.pop(name).stop())
        finally:
            router.close()
            publisher.close()
            context.term()

    async def _on_devices(self, coro: Any, timeout: float | None = None) -> Any:
        """Run a coroutine on the RunEngine's loop (where the devices live)."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(
            coro, self.session.run_engine.loop
        )
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    async def _requests(self, router: Any) -> None:
        pending: set[asyncio.Task[None]] = set()
        while True:
            identity, *_, body = await router.recv_multipart()
            task = asyncio.create_task(self._answer(router, identity, body))
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def _answer(self, router: Any, identity: bytes, body: bytes) -> None:
        try:
            request = json.loads(body)
            op = request.get("op")
            handler = getattr(self, f"_op_{op}", None)
            if not isinstance(op, str) or handler is None:
                raise DeviceApiError(
                    f"unknown request {op!r}; known: describe, read, set, stop, "
                    "reconnect, watch, focus"
                )
            reply = {"ok": True, **(await handler(request))}
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
        await router.send_multipart([identity, b"", json.dumps(reply).encode()])

    # -- describe -----------------------------------------------------------

    async def _describe_all(self) -> None:
        """Describe every device (on the RunEngine's loop)."""
        devices = {}
        for name, device in list(self.session.devices.items()):
            try:
                devices[name] = await self._describe(name, device)
            except Exception as exc:  # noqa: BLE001 - the others are still served
                logger.warning("device API: cannot describe %s: %s", name, exc)
        self.devices = devices

    async def _describe(self, name: str, device: Any) -> DeviceInfo:
        info = DeviceInfo(name)
        keys: dict[str, tuple[str, dict[str, Any]]] = {}
        for kind, method in (
            ("config", "describe_configuration"),
            ("read", "describe"),
        ):
            describe = getattr(device, method, None)
            if describe is None:
                continue
            try:
                described = await describe()
            except Exception as exc:  # noqa: BLE001 - e.g. a detector not prepared
                logger.debug("%s.%s: %s", name, method, exc)
                continue
            for key, datakey in described.items():
                keys[key] = (kind, dict(datakey))
        for path, signal in walk_signals(device, name):
            if signal.name in keys:
                kind, datakey = keys.pop(signal.name)
                info.signals.append(
                    SignalInfo(signal.name, path, kind, signal, datakey)
                )
        movables = []
        for path, movable in walk_movables(device, name):
            if movable is device and _is_detector(device):
                continue
            info.movables[path] = movable
            movables.append(await self._describe_movable(path, movable, info))
        declaration = self.session.declarations.get(name)
        info.description = {
            "name": name,
            "kind": getattr(declaration, "kind", type(device).__name__),
            "class": type(device).__name__,
            "description": getattr(declaration, "description", "") or "",
            "groups": list(getattr(declaration, "groups", []) or []),
            "mocked": name in getattr(self.session, "mocked", set()),
            "movables": movables,
            "signals": [s.describe() for s in info.signals],
            "camera": _has_preview(device) or _is_standard_detector(device),
            # "live": frames whenever watched; "plans": while a plan acquires
            "frames": "live" if _has_preview(device) else "plans",
            "focus": hasattr(device, "driver") and _has_preview(device),
        }
        return info

    async def _describe_movable(
        self, path: str, movable: Any, info: DeviceInfo
    ) -> dict[str, Any]:
        readback = getattr(movable, "user_readback", None)
        setpoint = getattr(movable, "user_setpoint", None)
        key = readback.name if readback is not None else movable.name
        signal = next((s for s in info.signals if s.key == key), None)
        datakey = signal.datakey if signal else {}
        limits = _limits(datakey)
        low = getattr(movable, "low_limit_travel", None)
        high = getattr(movable, "high_limit_travel", None)
        if low is not None and high is not None:
            with contextlib.suppress(Exception):
                lo, hi = await asyncio.gather(low.get_value(), high.get_value())
                if lo < hi:
                    limits = [float(lo), float(hi)]
        return {
            "name": path,
            "key": key,
            "setpoint": setpoint.name if setpoint is not None else None,
            "units": datakey.get("units") or getattr(movable, "units", None),
            "precision": datakey.get("precision"),
            "dtype": datakey.get("dtype", "number"),
            "choices": list(datakey.get("choices") or []),
            "limits": limits,
            "stoppable": callable(getattr(movable, "stop", None)),
        }

    def _description(self) -> dict[str, Any]:
        session = self.session
        failed = {}
        for name, error in session.device_errors.items():
            declaration = session.declarations.get(name)
            failed[name] = {
                "name": name,
                "error": str(error),
                "kind": getattr(declaration, "kind", ""),
                "description": getattr(declaration, "description", "") or "",
                "groups": list(getattr(declaration, "groups", []) or []),
            }
        order = list(session.declarations)
        return {
            "devices": [
                self.devices[n].description for n in order if n in self.devices
            ],
            "failed": [failed[n] for n in order if n in failed],
            "groups": {g: list(n) for g, n in session.groups.items()},
            "publish": self.publish_address,
            "focus": sorted(self.focus),
        }

    async def _op_describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._description()

    # -- values ---------------------------------------------------------------

    async def _op_read(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = request.get("keys")
        with self._lock:
            latest = {**self.latest, **self._changed}  # the freshest, sent or not
        return {
            "values": {
                k: [_jsonable(v), t]
                for k, (v, t) in latest.items()
                if keys is None or k in keys
            },
            "errors": dict(self.errors),
            "plan_running": self._plan_running,
        }

    async def _op_watch(self, request: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        seconds = float(request.get("seconds", 0))
        self._watch_until = max(self._watch_until, now + min(seconds, 60))
        for name, lease in (request.get("cameras") or {}).items():
            if name not in self.devices or not self.devices[name].description.get(
                "camera"
            ):
                raise DeviceApiError(f"{name}: not a camera with a live view")
            self._cameras[name] = now + min(float(lease), 60)
        return {}

    async def _values(self) -> None:
        """Start a poll of every device (not already polling) ten times a second."""
        last_config = 0.0
        while True:
            await asyncio.sleep(READ_PERIOD)
            now = time.monotonic()
            if now < self._watch_until and not self._plan_running:
                config = now - last_config >= CONFIG_PERIOD
                if config:
                    last_config = now
                for info in self.devices.values():
                    if not info.polling:
                        info.polling = True
                        asyncio.create_task(self._poll(info, config))

    async def _publish(self) -> None:
        """Send changed values as soon as a poll brings them (events: each 0.1 s)."""
        assert self._dirty is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), READ_PERIOD)
            self._dirty.clear()
            with self._lock:
                changed, self._changed = self._changed, {}
                self.latest.update(changed)
            if changed:
                message = {k: [_jsonable(v), t] for k, (v, t) in changed.items()}
                await self._publisher.send_multipart(
                    [b"values", json.dumps(message).encode()]
                )

    async def _poll(self, info: DeviceInfo, config: bool) -> None:
        signals = [s for s in info.signals if s.kind == "read" or config]
        try:
            readings = await self._on_devices(
                _read_all([s.signal for s in signals]), timeout=5
            )
        except Exception as exc:  # noqa: BLE001 - shown as the device's error
            readings = [exc] * len(signals)
        finally:
            info.polling = False
        error = None
        changed = False
        with self._lock:
            for signal, reading in zip(signals, readings, strict=True):
                if isinstance(reading, BaseException):
                    error = (
                        error or f"{signal.path}: {reading or type(reading).__name__}"
                    )
                    continue
                value, stamp = reading["value"], reading["timestamp"]
                old = self.latest.get(signal.key)
                if old is None or not _same(old[0], value):
                    self._changed[signal.key] = (value, stamp)
                    changed = True
                else:  # the same value: newer, not sent again
                    self.latest[signal.key] = (value, stamp)
        if changed and self._dirty is not None:
            self._dirty.set()
        if error is None:
            self.errors.pop(info.name, None)
        elif self.errors.get(info.name) != error:
            self.errors[info.name] = error
            await self._state({"error": {info.name: error}})

    async def _state(self, message: dict[str, Any]) -> None:
        await self._publisher.send_multipart([b"state", json.dumps(message).encode()])

    # -- actions ------------------------------------------------------------

    def _target(self, name: str) -> tuple[str, Any]:
        if not name:
            raise DeviceApiError("say which device: name='stage.x'")
        device_name, _, rest = name.partition(".")
        if device_name not in self.session.devices:
            if device_name in self.session.device_errors:
                raise DeviceApiError(
                    f"{device_name} is not connected: "
                    f"{self.session.device_errors[device_name]}; reconnect it first"
                )
            known = ", ".join(self.session.devices)
            raise DeviceApiError(f"no device {device_name!r}; the devices: {known}")
        target = self.session.devices[device_name]
        for part in rest.split(".") if rest else []:
            child = dict(_children(target)).get(part)
            if child is None:
                raise DeviceApiError(f"{name}: {device_name} has no part {part!r}")
            target = child
        return device_name, target

    def _refuse_while_running(self, what: str) -> None:
        if self._plan_running:
            raise DeviceApiError(f"a plan is running: pause it before you {what}")

    async def _op_set(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("name") or "")
        device_name, target = self._target(name)
        self._refuse_while_running(f"set {name}")
        if not callable(getattr(target, "set", None)):
            raise DeviceApiError(f"{name} cannot be set (it is read-only)")
        value = self._checked(name, device_name, target, request.get("value"))
        timeout = float(request.get("timeout", 300))
        await self._on_devices(_set(target, value, timeout))
        return {"value": _jsonable(value)}

    def _checked(self, name: str, device_name: str, target: Any, value: Any) -> Any:
        """The value converted to what the signal or movable takes, or an error."""
        info = self.devices.get(device_name)
        spec: dict[str, Any] = {}
        if info is not None:
            spec = next(
                (m for m in info.description["movables"] if m["name"] == name), {}
            ) or next((s for s in info.description["signals"] if s["path"] == name), {})
        dtype, choices = spec.get("dtype", "number"), spec.get("choices") or []
        units = f" {spec['units']}" if spec.get("units") else ""
        if choices:
            if value not in choices:
                raise DeviceApiError(f"{name}: {value!r} is not one of {choices}")
            return value
        if dtype in ("number", "integer"):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise DeviceApiError(f"{name}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise DeviceApiError(f"{name}: {value!r} is not a finite number")
            if dtype == "integer":
                if number != int(number):
                    raise DeviceApiError(f"{name}: {value!r} is not a whole number")
                number = int(number)
            limits = spec.get("limits")
            if limits and not limits[0] <= number <= limits[1]:
                raise DeviceApiError(
                    f"{name}: {number:g}{units} is outside the soft limits "
                    f"[{limits[0]:g}, {limits[1]:g}]{units}"
                )
            return number
        if dtype == "boolean":
            if isinstance(value, bool):
                return value
            raise DeviceApiError(f"{name}: {value!r} is not true or false")
        if dtype == "string":
            return str(value)
        return value

    async def _op_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("name") or "")
        _, target = self._target(name)
        if not callable(getattr(target, "stop", None)):
            raise DeviceApiError(f"{name} cannot be stopped")
        await self._on_devices(_stop(target), timeout=30)
        return {}

    async def _op_reconnect(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("name") or "")
        if name not in self.session.declarations:
            known = ", ".join(self.session.declarations)
            raise DeviceApiError(f"no device {name!r} is declared; declared: {known}")
        self._refuse_while_running(f"reconnect {name}")
        done = await asyncio.to_thread(self.session.reconnect, name)
        await self._on_devices(self._describe_all())
        self.errors.pop(name, None)
        await self._state({"devices": True})
        return {"reconnected": done}

    async def _op_focus(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("name") or "")
        device_name, target = self._target(name)
        if not (hasattr(target, "driver") and hasattr(target, "preview")):
            raise DeviceApiError(
                f"{name}: focus mode is for PVCAM cameras; this is "
                f"{type(target).__name__}"
            )
        if request.get("on", True):
            self._refuse_while_running(f"focus {name}")
            exposure = request.get("exposure")
            if exposure is not None:
                exposure = self._checked(
                    f"{device_name}.exposure", device_name, target.exposure, exposure
                )
            mode = self.focus.get(device_name) or FocusMode(target)
            await self._on_devices(mode.start(exposure), timeout=30)
            self.focus[device_name] = mode
        elif device_name in self.focus:
            await self._on_devices(self.focus.pop(device_name).stop(), timeout=30)
        await self._state({"focus": sorted(self.focus)})
        return {"focus": sorted(self.focus)}

    # -- frames -------------------------------------------------------------

    async def _frames(self) -> None:
        tick = time.monotonic()
        while True:
            tick = max(tick + 1 / FRAME_RATE, time.monotonic())
            await asyncio.sleep(tick - time.monotonic())
            now = time.monotonic()
            if self._plan_running and self.focus:
                self.focus.clear()  # the plan's stage stopped them
                await self._state({"focus": []})
            for name, until in list(self._cameras.items()):
                if now > until:
                    del self._cameras[name]
                    continue
                await self._send_frame(name)

    async def _send_frame(self, name: str) -> None:
        device = self.session.devices.get(name)
        if device is None:
            return
        if _has_preview(device):
            preview = await asyncio.to_thread(device.preview)
        else:
            path = self.file_frames.file_of(name)
            if self._last_file.get(name) != path:  # a new run's file: from 1
                self._last_file[name] = path
                self._last_frame.pop(name, None)
            preview = await asyncio.to_thread(
                self.file_frames.latest, name, self._last_frame.get(name)
            )
        mode = self.focus.get(name)
        if mode is not None:
            mode.release()
        if preview is None:
            return
        frame, number = preview
        if self._last_frame.get(name) == number:
            return
        self._last_frame[name] = number
        small, step = downsample(np.asarray(frame))
        header = {
            "name": name,
            "number": int(number),
            "shape": list(small.shape),
            "full_shape": list(np.shape(frame)),
            "step": step,
            "dtype": small.dtype.name,
            "time": time.time(),
        }
        await self._publisher.send_multipart(
            [b"frame", json.dumps(header).encode(), small.tobytes()], copy=False
        )


def _same(old: Any, new: Any) -> bool:
    """Whether two readings' values are equal (arrays element by element)."""
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return bool(np.array_equal(old, new))
    try:
        return bool(old == new)
    except Exception:  # noqa: BLE001 - incomparable values differ
        return False


def _has_preview(device: Any) -> bool:
    """Whether the device hands its newest frame over in memory (PVCAM)."""
    return callable(getattr(device, "preview", None))


def _is_standard_detector(device: Any) -> bool:
    """An ophyd-async detector: its frames are previewed from its files."""
    from ophyd_async.core import StandardDetector

    return isinstance(device, StandardDetector)


def _is_detector(device: Any) -> bool:
    return callable(getattr(device, "trigger", None)) and not callable(
        getattr(device, "stop", None)
    )


async def _read_all(signals: list[Any]) -> list[Any]:
    readings = await asyncio.gather(
        *(s.read(cached=False) for s in signals), return_exceptions=True
    )
    return [
        r if isinstance(r, BaseException) else r[s.name]
        for s, r in zip(signals, readings, strict=True)
    ]


async def _set(target: Any, value: Any, timeout: float) -> None:
    status = target.set(value)
    await asyncio.wait_for(asyncio.ensure_future(_status(status)), timeout)


async def _status(status: Any) -> None:
    await status


async def _stop(target: Any) -> None:
    result = target.stop()
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        await result
