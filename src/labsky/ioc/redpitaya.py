"""`labsky ioc redpitaya`: one process owns a board and serves it over CA.

The Red Pitaya's SCPI acquisition sequence is not atomic across clients,
its data units are global, and PyRPL's monitor server takes one client
only (the failure of the PyMoDAQ plugin); so one owner talks to the board
and every other process reads and sets it through Channel Access, with
monitors. The PVs come from the same settings table as the in-process
devices (`<prefix><GROUP>:<NAME>`, e.g. `RP1:ASG1:FREQUENCY`), plus:

- `SCOPE:ACQUIRE`: put a token (1 to 2**24 - 1) to take a trace with the
  current settings; the put completes when it is published (acquisitions
  from all clients queue, one at a time).
- `SCOPE:SLOT:<k>` (k = 0..3) and `SCOPE:TOKENS`: the last four traces and
  the tokens they were taken for, so a client finds its own trace even when
  another client's acquisition finished in between.
- `SCOPE:ABORT`: put 1 to stop an acquisition.
- `SCOPE:TRACES`: float32[8 + 2 x 16384], a header (sequence, decimation,
  delay, units, trigger, token) then IN1 and IN2: one read is one
  consistent trace (the latest; the slots hold the same layout).
- `SCOPE:CH1`, `SCOPE:CH2`: the last trace per channel (display panels);
  `SCOPE:COUNT`: traces taken.
- `CMD:<GROUP>:<NAME>`: commands (`CMD:ASG1:START`,
  `CMD:PID:RESET_INTEGRATOR`).
- `IDN`, `LAST_ERROR`: the board's identity; the last refusal or failure
  (a char array, `caget -S`), which a refused put's error quotes.

The software PID runs here, so every client sees and tunes the same loop.
Measurements (slow inputs, PID state) are polled at `scan_rate`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from caproto import (
    ChannelChar,
    ChannelData,
    ChannelDouble,
    ChannelEnum,
    ChannelFloat,
    ChannelInteger,
    ChannelString,
)
from caproto.asyncio.server import Context
from ophyd_async.core import StrictEnum

from labsky.devices.redpitaya._ca_access import (
    SLOTS,
    TRACE_HEADER,
    command_pv,
    pack_trace,
)
from labsky.devices.redpitaya._controller import RedPitayaController
from labsky.devices.redpitaya._scpi import SAMPLES
from labsky.devices.redpitaya._settings import COMMANDS, SETTINGS, Setting

logger = logging.getLogger(__name__)

_ENUM = {True: "ON", False: "OFF"}


def _to_pv(setting: Setting, value: Any) -> Any:
    if setting.datatype is bool:
        return _ENUM[bool(value)]
    if isinstance(value, StrictEnum):
        return value.value
    if setting.datatype is float and value is None:
        return math.nan
    return value


def _from_pv(setting: Setting, value: Any) -> Any:
    if setting.datatype is bool:
        return value in ("ON", 1, True)
    if setting.datatype is int:
        return int(value)
    if setting.datatype is float:
        return float(value)
    return setting.datatype(value)


class _Putter:
    """Mixin: a client's put runs `handler`, whose result is the new value."""

    handler: Any = None

    async def verify_value(self, data: Any) -> Any:
        if self.handler is None:
            raise PermissionError("read-only")
        return await self.handler(data)


class _PutDouble(_Putter, ChannelDouble):
    pass


class _PutInteger(_Putter, ChannelInteger):
    pass


class _PutEnum(_Putter, ChannelEnum):
    async def verify_value(self, data: Any) -> Any:
        # a client may put the index or the string: hand the handler the string
        return await super().verify_value(await ChannelEnum.verify_value(self, data))


def _channel(setting: Setting, value: Any) -> ChannelData:
    pv_value = _to_pv(setting, value)
    units = setting.units or ""
    if setting.datatype is bool:
        return _PutEnum(value=pv_value, enum_strings=["OFF", "ON"])
    if setting.datatype is int:
        return _PutInteger(value=int(pv_value), units=units)
    if setting.datatype is float:
        return _PutDouble(value=float(pv_value), units=units, precision=6)
    choices: Any = setting.datatype  # a StrictEnum
    return _PutEnum(value=pv_value, enum_strings=[m.value for m in choices])


class RedPitayaIoc:
    """The PVs of one board, backed by its controller.

    Args:
        controller: The board's owner (its link not yet open).
        prefix: PV prefix, e.g. `RP1:`.
        scan_rate: Polls per second of measurements.
    """

    def __init__(
        self, controller: RedPitayaController, prefix: str, scan_rate: float = 10.0
    ):
        self.controller = controller
        self.prefix = prefix
        self.scan_rate = scan_rate
        self.pvdb: dict[str, ChannelData] = {}
        self.settings: dict[str, ChannelData] = {}
        self._acquire_lock = asyncio.Lock()
        self._acquisition: asyncio.Task[Any] | None = None
        self.count = 0

    # -- building ---------------------------------------------------------

    async def build(
        self, initial: dict[str, Any] | None = None
    ) -> dict[str, ChannelData]:
        """Open the board, apply `initial` settings, read every value, make the PVs."""
        controller = self.controller
        await controller.open()
        await controller.handshake()
        for name, value in (initial or {}).items():
            await controller.put(name, value)
        for name, setting in SETTINGS.items():
            channel = _channel(setting, await controller.get(name))
            if setting.writable:
                channel.handler = self._putter(name, setting)  # type: ignore[attr-defined]
            self.settings[name] = channel
            self.pvdb[self.prefix + setting.pv] = channel
        for name in COMMANDS:
            command = _PutInteger(value=0)
            command.handler = self._commander(name)
            self.pvdb[self.prefix + command_pv(name)] = command
        acquire = _PutInteger(value=0)
        acquire.handler = self._acquire
        abort = _PutInteger(value=0)
        abort.handler = self._abort
        empty = np.zeros(SAMPLES, np.float32)
        self.traces = ChannelFloat(
            value=np.zeros(TRACE_HEADER + 2 * SAMPLES, np.float32),
            max_length=TRACE_HEADER + 2 * SAMPLES,
        )
        self.ch1 = ChannelFloat(value=empty, max_length=SAMPLES)
        self.ch2 = ChannelFloat(value=empty, max_length=SAMPLES)
        self.count_pv = ChannelInteger(value=0)
        self.slots = [
            ChannelFloat(
                value=np.zeros(TRACE_HEADER + 2 * SAMPLES, np.float32),
                max_length=TRACE_HEADER + 2 * SAMPLES,
            )
            for _ in range(SLOTS)
        ]
        self.tokens = ChannelInteger(value=[0] * SLOTS, max_length=SLOTS)
        self.last_error = ChannelChar(value="", max_length=1024)
        self.pvdb.update(
            {
                f"{self.prefix}SCOPE:ACQUIRE": acquire,
                f"{self.prefix}SCOPE:ABORT": abort,
                f"{self.prefix}SCOPE:TRACES": self.traces,
                f"{self.prefix}SCOPE:CH1": self.ch1,
                f"{self.prefix}SCOPE:CH2": self.ch2,
                f"{self.prefix}SCOPE:COUNT": self.count_pv,
                f"{self.prefix}SCOPE:TOKENS": self.tokens,
                **{
                    f"{self.prefix}SCOPE:SLOT:{k}": slot
                    for k, slot in enumerate(self.slots)
                },
                f"{self.prefix}IDN": ChannelString(value=controller.idn[:39]),
                f"{self.prefix}LAST_ERROR": self.last_error,
            }
        )
        return self.pvdb

    async def _failed(self, what: str, exc: BaseException) -> None:
        message = f"{what}: {exc}"
        logger.warning("%s", message)
        await self.last_error.write(message[:1000], verify_value=False)

    def _putter(self, name: str, setting: Setting) -> Any:
        async def put(value: Any) -> Any:
            try:
                await self.controller.put(name, _from_pv(setting, value))
                return _to_pv(setting, await self.controller.get(name))
            except Exception as exc:
                await self._failed(f"{self.prefix}{setting.pv}", exc)
                raise

        return put

    def _commander(self, name: str) -> Any:
        async def run(value: Any) -> int:
            try:
                await self.controller.execute(name)
            except Exception as exc:
                await self._failed(f"{self.prefix}{command_pv(name)}", exc)
                raise
            return 0

        return run

    async def _acquire(self, value: Any) -> int:
        async with self._acquire_lock:
            task = asyncio.get_running_loop().create_task(self.controller.acquire())
            self._acquisition = task
            try:
                trace = await task
            except asyncio.CancelledError:
                await self._failed(
                    f"{self.prefix}SCOPE:ACQUIRE", RuntimeError("aborted")
                )
                raise RuntimeError("acquisition aborted") from None
            except Exception as exc:
                await self._failed(f"{self.prefix}SCOPE:ACQUIRE", exc)
                raise
            finally:
                self._acquisition = None
            packed = pack_trace(trace, token=int(value))
            slot = self.count % SLOTS
            self.count += 1
            await self.slots[slot].write(packed, verify_value=False)
            tokens = list(self.tokens.value)
            tokens[slot] = int(value)
            await self.tokens.write(tokens, verify_value=False)
            await self.ch1.write(trace.ch1, verify_value=False)
            await self.ch2.write(trace.ch2, verify_value=False)
            await self.traces.write(packed, verify_value=False)
            await self.count_pv.write(self.count, verify_value=False)
        return int(value)

    async def _abort(self, value: Any) -> int:
        task = self._acquisition
        if task is not None and not task.done():
            task.cancel()
        await self.controller.stop_acquisition()
        return 0

    # -- running ----------------------------------------------------------

    def _polled(self) -> Iterable[tuple[str, Setting]]:
        return [
            (name, s) for name, s in SETTINGS.items() if s.changes or s.source == "pid"
        ]

    async def poll(self) -> None:
        """Refresh measurements and the PID state, forever."""
        polled = self._polled()
        tick = 0
        while True:
            for name, setting in polled:
                if name.startswith("io.dio") and tick % 10:
                    continue  # digital pins: once a second
                try:
                    value = _to_pv(setting, await self.controller.get(name))
                except Exception as exc:  # noqa: BLE001 - keep serving
                    await self._failed(f"poll {name}", exc)
                    await asyncio.sleep(1.0)
                    break
                channel = self.settings[name]
                if channel.value != value:
                    await channel.write(value, verify_value=False)
            tick += 1
            await asyncio.sleep(1.0 / self.scan_rate)

    async def serve(
        self, interfaces: list[str] | None = None, ready: asyncio.Event | None = None
    ) -> None:
        """Serve the PVs until cancelled (call `build` first).

        Args:
            interfaces: Addresses to serve on (default: all).
            ready: Set once the server listens.
        """
        context = Context(self.pvdb, interfaces)
        poller = asyncio.get_running_loop().create_task(self.poll())

        async def started(_: Any) -> None:
            logger.info("serving %d PVs with prefix %s", len(self.pvdb), self.prefix)
            if ready is not None:
                ready.set()

        try:
            await context.run(startup_hook=started)
        finally:
            poller.cancel()
            await self.controller.close()


async def run_ioc(
    address: str,
    prefix: str,
    settings: dict[str, Any] | None = None,
    interfaces: list[str] | None = None,
    scan_rate: float = 10.0,
    ready: asyncio.Event | None = None,
) -> None:
    """Own the board at `address` and serve it until cancelled."""
    from labsky.devices.redpitaya import board_link

    link = board_link(address)
    link.label = prefix.rstrip(":") or "redpitaya"
    ioc = RedPitayaIoc(RedPitayaController(link), prefix, scan_rate)
    await ioc.build(settings)
    await ioc.serve(interfaces, ready)
