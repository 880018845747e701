"""The cockpit's state: one client of the daemon, fanned out to every browser.

`Cockpit` holds one connection to each of the daemon's services and keeps
what the page shows (queue, history, RunEngine state, devices and their
values, the running scan, the log) so that a browser that opens the page
gets all of it at once and then the changes, as every other browser does:

- the RE Manager (bluesky-queueserver-api, asyncio): its status is asked
  four times a second; the queue and history are fetched when their uids
  change;
- the worker's device API (`labsky.daemon.device_api`): values, state
  changes and camera frames as published, kept alive with leases while a
  browser is connected;
- the 0MQ document feed: the running scan's documents, reduced to its
  scalar columns (never Tiled, never polled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import pickle
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.asyncio
from event_model import unpack_event_page

from labsky.daemon.device_client import DeviceClient, DeviceRequestError
from labsky.daemon.service import DaemonAddresses
from labsky.pipeline.sink import runs_behind

logger = logging.getLogger(__name__)

#: Seconds between RE Manager status requests.
STATUS_PERIOD = 0.25
#: Seconds between batches of live event rows sent to the browsers.
ROWS_PERIOD = 0.1
#: Rows of the running scan kept for browsers that connect later.
MAX_ROWS = 200_000
#: Lease of device values and frames, renewed while a browser is connected.
LEASE = 5.0
#: Seconds between disk checks, and the free space below which it is an alarm.
HEALTH_PERIOD = 10.0
LOW_DISK_BYTES = 5 * 1024**3
LOW_DISK_FRACTION = 0.05
#: Seconds a stored run may wait for the catalog before it is an alarm.
CATALOG_LAG_ALARM = 60.0


@dataclass(eq=False)
class Browser:
    """One connected page: a queue of messages the server sends it.

    Frames are sent only when the last one has gone, so a slow page gets
    fewer frames and never holds up the others.
    """

    send_text: Callable[[str], Awaitable[None]]
    send_bytes: Callable[[bytes], Awaitable[None]]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(10_000))
    frame: bytes | None = None
    frame_ready: asyncio.Event = field(default_factory=asyncio.Event)
    cameras: set[str] = field(default_factory=set)


class LiveScan:
    """The running (or last) scan as the page plots it."""

    def __init__(self, start: dict[str, Any]):
        self.start = start
        self.descriptors: dict[str, dict[str, Any]] = {}
        self.rows: list[dict[str, Any]] = []
        self.stop: dict[str, Any] | None = None
        self.peak: dict[str, Any] | None = None  # the plan's fitted peak, at its end
        self.fit: Any = None  # bluesky's PeakStats, for plans that fit a peak

    def summary(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "descriptors": list(self.descriptors.values()),
            "rows": self.rows,
            "stop": self.stop,
            "peak": self.peak,
        }


def peak_fit(doc: dict[str, Any]) -> Any:
    """Return bluesky's `PeakStats` for a run whose plan fits a peak (or None).

    A plan says it fits one with `peak_field` in its start document (as
    `labsky.plans.peak_scan` does) and scans one motor; the cockpit computes
    the same statistics the plan does, from the same documents.
    """
    motors = doc.get("motors") or []
    if not doc.get("peak_field") or len(motors) != 1:
        return None
    from bluesky.callbacks.fitting import PeakStats

    fit = PeakStats(motors[0], doc["peak_field"])
    fit("start", doc)
    return fit


def peak_summary(fit: Any) -> dict[str, Any] | None:
    """What the page draws of a finished `PeakStats` (None: no peak found)."""
    if fit.cen is None or fit.max is None:
        return None
    return {
        "x": fit.x,
        "y": fit.y,
        "cen": _scalar(float(fit.cen)),
        "com": _scalar(float(fit.com)) if fit.com is not None else None,
        "fwhm": _scalar(float(fit.fwhm)) if fit.fwhm is not None else None,
        "max": [_scalar(float(v)) for v in fit.max],
    }


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def start_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of a start document."""
    keep = ("uid", "scan_id", "plan_name", "time", "motors", "hints", "shape")
    summary = {k: doc[k] for k in keep if k in doc}
    summary["num_points"] = doc.get("num_points")
    summary["sample"] = doc.get("sample")
    summary["detectors"] = doc.get("detectors", [])
    return json.loads(json.dumps(summary, default=str))


def descriptor_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The scalar data keys of a descriptor, with units."""
    keys = {
        k: {"units": v.get("units"), "dtype": v.get("dtype"), "source": v.get("source")}
        for k, v in doc.get("data_keys", {}).items()
        if not v.get("shape") and v.get("dtype") in ("number", "integer", "boolean")
    }
    return {
        "uid": doc["uid"],
        "name": doc.get("name", "primary"),
        "keys": keys,
        "hints": json.loads(json.dumps(doc.get("hints", {}), default=str)),
    }


class Cockpit:
    """The cockpit's connection to a daemon and the state browsers see.

    Args:
        addresses: Where the daemon listens (`daemon.json`).
        plans: The plan forms (`labsky.gui.plans.PlanForms`).
        data_dir: The daemon's data directory (its free space is watched).
    """

    def __init__(
        self, addresses: DaemonAddresses, plans: Any, data_dir: Path | None = None
    ):
        self.addresses = addresses
        self.plans = plans
        self.data_dir = data_dir
        self.health: dict[str, Any] = {}
        self._behind_since: dict[str, float] = {}  # stored runs not yet catalogued
        self.browsers: set[Browser] = set()
        self.status: dict[str, Any] = {}
        self.queue: dict[str, Any] = {"items": [], "running_item": {}}
        self.history: list[dict[str, Any]] = []
        self.devices: dict[str, Any] = {"devices": [], "failed": [], "groups": {}}
        self.values: dict[str, list[Any]] = {}
        self.errors: dict[str, str] = {}
        self.focus: list[str] = []
        self.scan: LiveScan | None = None
        self.log: deque[dict[str, Any]] = deque(maxlen=500)
        self.device_api: DeviceClient | None = (
            DeviceClient(addresses.devices) if addresses.devices else None
        )
        self.api: Any = None
        self._rows: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._descriptor_streams: dict[str, str] = {}
        self._frames_seen: dict[str, tuple[int, float]] = {}
        self.frame_rate: dict[str, float] = {}

    # -- life -------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the daemon and start following it."""
        from bluesky_queueserver_api.zmq.aio import REManagerAPI

        self.api = REManagerAPI(
            zmq_control_addr=self.addresses.control,
            zmq_info_addr=self.addresses.info,
        )
        await self._refresh_status(force=True)
        if self.device_api is not None:
            try:
                await self._describe()
            except (DeviceRequestError, TimeoutError) as exc:
                self.note("error", f"device API: {exc}")
        else:
            self.note(
                "error",
                "the daemon serves no device API (started by an older labsky?); "
                "restart it to see the devices",
            )
        self._tasks = [
            asyncio.create_task(self._status_loop()),
            asyncio.create_task(self._rows_loop()),
            asyncio.create_task(self._lease_loop()),
            asyncio.create_task(self._health_loop()),
        ]
        if self.device_api is not None:
            self._tasks.append(asyncio.create_task(self._device_updates()))
        if self.addresses.documents:
            self._tasks.append(asyncio.create_task(self._documents()))

    async def close(self) -> None:
        """Stop following the daemon."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.api is not None:
            await self.api.close()
            # REManagerAPI.close closes its socket, not its 0MQ context
            context = getattr(getattr(self.api, "_client", None), "_ctx", None)
            if context is not None:
                context.destroy(linger=0)
        if self.device_api is not None:
            self.device_api.close()

    # -- browsers -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a page shows, for a page that just connected."""
        return {
            "type": "snapshot",
            "profile": self.addresses.profile,
            "status": self.status,
            "queue": self.queue,
            "history": self.history,
            "devices": self.devices,
            "values": self.values,
            "errors": self.errors,
            "focus": self.focus,
            "plans": self.plans.forms(),
            "scan": self.scan.summary() if self.scan else None,
            "log": list(self.log),
            "health": self.health,
        }

    def broadcast(self, message: dict[str, Any]) -> None:
        """Queue a message for every page (a page too far behind loses it)."""
        text = json.dumps(message, default=str)
        for browser in list(self.browsers):
            with contextlib.suppress(asyncio.QueueFull):
                browser.queue.put_nowait(text)

    def note(self, level: str, message: str, source: str = "cockpit") -> None:
        """Add a line to the log view (and to every page)."""
        entry = {"time": time.time(), "level": level, "source": source, "text": message}
        self.log.append(entry)
        self.broadcast({"type": "log", "entry": entry})

    async def attach(self, browser: Browser) -> None:
        """Serve one page until it goes."""
        self.browsers.add(browser)
        await self._renew()
        sender = asyncio.create_task(self._send_texts(browser))
        framer = asyncio.create_task(self._send_frames(browser))
        try:
            await browser.send_text(json.dumps(self.snapshot(), default=str))
            await asyncio.gather(sender, framer)
        finally:
            sender.cancel()
            framer.cancel()
            self.browsers.discard(browser)

    async def _send_texts(self, browser: Browser) -> None:
        while True:
            await browser.send_text(await browser.queue.get())

    async def _send_frames(self, browser: Browser) -> None:
        while True:
            await browser.frame_ready.wait()
            browser.frame_ready.clear()
            frame, browser.frame = browser.frame, None
            if frame is not None:
                await browser.send_bytes(frame)

    # -- the RE Manager -------------------------------------------------------

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_PERIOD)
            try:
                await self._refresh_status()
            except Exception as exc:  # noqa: BLE001 - the daemon may be restarting
                if self.status.get("reachable", True):
                    self.note("error", f"the RE Manager does not answer: {exc}")
                self.status = {**self.status, "reachable": False}
                self.broadcast({"type": "status", "status": self.status})

    async def _refresh_status(self, force: bool = False) -> None:
        status = dict(await self.api.status())
        status["reachable"] = True
        old = self.status
        self.status = status
        if force or status.get("plan_queue_uid") != old.get("plan_queue_uid"):
            queue = await self.api.queue_get()
            self.queue = {
                "items": queue.get("items", []),
                "running_item": queue.get("running_item", {}),
            }
            self.broadcast({"type": "queue", "queue": self.queue})
        if force or status.get("plan_history_uid") != old.get("plan_history_uid"):
            history = await self.api.history_get()
            self.history = list(history.get("items", []))[-200:]
            self.broadcast({"type": "history", "history": self.history})
        if status != old:
            self.broadcast({"type": "status", "status": status})
            if old and status.get("manager_state") != old.get("manager_state"):
                self.note("info", f"queue: {status.get('manager_state')}", "queue")

    async def _health_loop(self) -> None:
        while True:
            self.check_health()
            await asyncio.sleep(HEALTH_PERIOD)

    def check_health(self) -> None:
        """Check the data directory's free space; an alarm when it runs low."""
        if self.data_dir is None:
            return
        try:
            usage = shutil.disk_usage(self.data_dir)
        except OSError as exc:
            health = {"disk_error": f"{self.data_dir}: {exc}"}
        else:
            low = usage.free < min(LOW_DISK_BYTES, LOW_DISK_FRACTION * usage.total)
            health = {
                "disk_free": usage.free,
                "disk_total": usage.total,
                "disk_low": low,
                "data_dir": str(self.data_dir),
            }
            if low and not self.health.get("disk_low"):
                self.note(
                    "error",
                    f"{usage.free / 1024**3:.1f} GiB free in {self.data_dir}: "
                    "runs stop being stored when the disk is full; free space or "
                    "move the data directory",
                    "disk",
                )
        health.update(self._catalog_health())
        if health != self.health:
            self.health = health
            self.broadcast({"type": "health", "health": health})

    def _catalog_health(self) -> dict[str, Any]:
        """Runs stored but not yet catalogued; an alarm once one waited too long."""
        assert self.data_dir is not None
        runs_dir = self.data_dir / "runs"
        behind = runs_behind(runs_dir) if runs_dir.is_dir() else {}
        now = time.monotonic()
        self._behind_since = {u: self._behind_since.get(u, now) for u in behind}
        late = [
            u
            for u, since in self._behind_since.items()
            if now - since >= CATALOG_LAG_ALARM
        ]
        if late and not self.health.get("catalog_late"):
            self.note(
                "error",
                f"the catalog is {len(behind)} runs behind: they are stored in "
                f"{runs_dir}, and appear in the run browser as the Tiled server "
                "catches up; if it does not, check the server and its log",
                "catalog",
            )
        return {"catalog_behind": len(behind), "catalog_late": bool(late)}

    # -- the device API ---------------------------------------------------------

    async def _describe(self) -> None:
        assert self.device_api is not None
        described = await self.device_api.request("describe")
        self.devices = {
            k: described[k] for k in ("devices", "failed", "groups") if k in described
        }
        self.plans.limit_options(
            {d["name"] for d in self.devices["devices"]}
            | {m["name"] for d in self.devices["devices"] for m in d["movables"]}
        )
        self.focus = described.get("focus", [])
        read = await self.device_api.request("read")
        self.values.update(read["values"])
        self.errors = read.get("errors", {})
        for failed in self.devices.get("failed", []):
            self.note("error", f"{failed['name']}: {failed['error']}", failed["name"])
        self.broadcast(
            {
                "type": "devices",
                "devices": self.devices,
                "values": self.values,
                "focus": self.focus,
                "errors": self.errors,
            }
        )

    async def _renew(self) -> None:
        if self.device_api is None or not self.browsers:
            return
        cameras = {c: LEASE for b in self.browsers for c in b.cameras}
        try:
            await self.device_api.request("watch", seconds=LEASE, cameras=cameras)
        except (DeviceRequestError, TimeoutError) as exc:
            logger.debug("watch: %s", exc)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(LEASE / 3)
            await self._renew()

    async def watch_camera(self, browser: Browser, name: str, on: bool) -> None:
        """A page starts or stops showing a camera."""
        if on:
            browser.cameras = {name}
        else:
            browser.cameras.discard(name)
        await self._renew()

    async def _device_updates(self) -> None:
        assert self.device_api is not None
        async for topic, message, payload in self.device_api.updates():
            if topic == "values":
                self.values.update(message)
                self.broadcast({"type": "values", "values": message})
            elif topic == "frame":
                self._frame(message, payload)
            elif topic == "state":
                await self._device_state(message)

    async def _device_state(self, message: dict[str, Any]) -> None:
        if "focus" in message:
            self.focus = message["focus"]
            self.broadcast({"type": "focus", "focus": self.focus})
        for name, error in (message.get("error") or {}).items():
            self.errors[name] = error
            self.note("error", error, name)
            self.broadcast({"type": "errors", "errors": self.errors})
        if message.get("devices"):
            await self._describe()

    def _frame(self, header: dict[str, Any], pixels: bytes) -> None:
        name = header["name"]
        now = time.monotonic()
        count, since = self._frames_seen.get(name, (0, now))
        count += 1
        if now - since >= 2.0:
            self.frame_rate[name] = count / (now - since)
            count, since = 0, now
        self._frames_seen[name] = (count, since)
        header = {**header, **frame_statistics(header, pixels)}
        encoded = json.dumps(header).encode()
        message = len(encoded).to_bytes(4, "little") + encoded + pixels
        for browser in self.browsers:
            if name in browser.cameras:
                browser.frame = message
                browser.frame_ready.set()

    # -- the document feed --------------------------------------------------

    async def _documents(self) -> None:
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.SUB)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.setsockopt(zmq.LINGER, 0)
        assert self.addresses.documents is not None
        socket.connect(self.addresses.documents.replace("0.0.0.0", "127.0.0.1"))
        try:
            while True:
                message = await socket.recv()
                try:
                    _, name, body = message.split(b" ", 2)
                    # the daemon's own feed on loopback (bluesky's RemoteDispatcher
                    # reads it the same way)
                    doc = pickle.loads(body)
                    self.document(name.decode(), doc)
                except Exception as exc:  # noqa: BLE001 - one bad document
                    logger.warning("document feed: %s", exc)
        finally:
            socket.close()
            context.destroy(linger=0)

    def document(self, name: str, doc: dict[str, Any]) -> None:
        """Take one document of the running scan."""
        if name == "start":
            self._flush_rows()
            self.scan = LiveScan(start_summary(doc))
            self.scan.fit = peak_fit(doc)
            self.broadcast({"type": "scan_start", "start": self.scan.start})
            self.note(
                "info",
                f"scan {doc.get('scan_id')} ({doc.get('plan_name')}) started",
                "run",
            )
            return
        if self.scan is None:
            return
        if self.scan.fit is not None:
            self._fit(name, doc)
        if name == "descriptor":
            summary = descriptor_summary(doc)
            self.scan.descriptors[summary["uid"]] = summary
            self.broadcast({"type": "descriptor", "descriptor": summary})
        elif name == "event":
            self._row(doc["descriptor"], doc["seq_num"], doc["time"], doc["data"])
        elif name == "event_page":
            data = doc["data"]
            for i, seq in enumerate(doc["seq_num"]):
                row = {k: v[i] for k, v in data.items()}
                self._row(doc["descriptor"], seq, doc["time"][i], row)
        elif name == "stop":
            self._flush_rows()
            self.scan.stop = json.loads(json.dumps(doc, default=str))
            if self.scan.fit is not None:
                self.scan.peak = peak_summary(self.scan.fit)
                self.broadcast({"type": "peak", "peak": self.scan.peak})
            self.broadcast({"type": "scan_stop", "stop": self.scan.stop})
            level = "info" if doc.get("exit_status") == "success" else "warning"
            reason = f": {doc['reason']}" if doc.get("reason") else ""
            self.note(
                level,
                f"scan {self.scan.start.get('scan_id')} ended: "
                f"{doc.get('exit_status')}{reason}",
                "run",
            )

    def _fit(self, name: str, doc: dict[str, Any]) -> None:
        """Feed the plan's peak fit; a fit that fails is logged, the plot goes on."""
        assert self.scan is not None
        try:
            if name == "event_page":
                for event in unpack_event_page(doc):  # pyright: ignore[reportArgumentType]
                    self.scan.fit("event", event)
            elif name in ("descriptor", "event", "stop"):
                self.scan.fit(name, doc)
        except Exception as exc:  # noqa: BLE001 - bluesky's fit code, any error
            self.scan.fit = None
            self.note("warning", f"peak fit of the live plot failed: {exc}", "run")

    def _row(self, descriptor: str, seq: int, t: float, data: dict[str, Any]) -> None:
        assert self.scan is not None
        if descriptor not in self.scan.descriptors:
            return
        row = {"descriptor": descriptor, "seq_num": seq, "time": t}
        row.update({k: _scalar(v) for k, v in data.items()})
        self._rows.append(row)

    def _flush_rows(self) -> None:
        if not self._rows or self.scan is None:
            return
        rows, self._rows = self._rows, []
        if len(self.scan.rows) < MAX_ROWS:
            self.scan.rows.extend(rows)
        self.broadcast({"type": "rows", "rows": rows})

    async def _rows_loop(self) -> None:
        while True:
            await asyncio.sleep(ROWS_PERIOD)
            self._flush_rows()


def frame_statistics(header: dict[str, Any], pixels: bytes) -> dict[str, Any]:
    """Statistics of a (downsampled) frame: min, max, mean, centroid, histogram.

    A few milliseconds for 512 x 512 pixels: sums along the axes for the
    centroid and a 64-bin count for the histogram.
    """
    frame = np.frombuffer(pixels, dtype=header["dtype"]).reshape(header["shape"])
    low, high = int(frame.min()), int(frame.max())
    values = frame.astype(np.float32)
    mean = float(values.mean())
    stats: dict[str, Any] = {
        "min": low,
        "max": high,
        "mean": mean,
        "std": float(np.sqrt(max(float((values * values).mean()) - mean * mean, 0))),
    }
    values -= low
    columns, rows = values.sum(axis=0), values.sum(axis=1)
    total = float(columns.sum())
    if total > 0:
        step = header.get("step", 1)
        stats["centroid"] = [
            float(columns @ np.arange(columns.size, dtype=np.float32)) / total * step,
            float(rows @ np.arange(rows.size, dtype=np.float32)) / total * step,
        ]
    bins = 64
    span = max(high - low, 1)
    index = ((frame.astype(np.int64) - low) * (bins - 1)) // span
    counts = np.bincount(index.ravel(), minlength=bins)[:bins]
    stats["histogram"] = {
        "counts": counts.tolist(),
        "edges": np.linspace(low, low + span, bins + 1).tolist(),
    }
    return stats
