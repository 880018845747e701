"""The Red Pitaya devices on the PVs of `labsky ioc redpitaya`.

The IOC owns the board; any number of client processes make the same
devices from `CaAccess` and read, set and acquire through Channel Access.
A setting the board refuses fails the client's put, and the error carries
the IOC's reason (its `LAST_ERROR` PV): aioca's `CANothing` is falsy, which
`concurrent.futures` (under ophyd-async's retry loop) takes for success, so
the backends here turn it into an `InstrumentRefusedError`.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
from aioca import CANothing, caget
from ophyd_async.core import (
    Array1D,
    DeviceConnector,
    DeviceVector,
    SignalR,
    SignalRW,
    TriggerableCommand,
)
from ophyd_async.epics.core import epics_signal_r
from ophyd_async.epics.core._aioca import CaCommandBackend, CaSignalBackend

from labsky.devices.redpitaya._access import Acquirer
from labsky.devices.redpitaya._scpi import SAMPLES, Trace
from labsky.devices.redpitaya._settings import (
    COMMANDS,
    SETTINGS,
    ScopeMode,
    TriggerSource,
    Units,
)
from labsky.transports import InstrumentError, InstrumentRefusedError

#: `SCOPE:TRACES` = header (these many float32) + IN1 + IN2.
TRACE_HEADER = 8
#: Traces the IOC keeps (`SCOPE:SLOT:<k>`), each with its client's token.
SLOTS = 4
#: Tokens are exact in the float32 header: 1 .. 2**24 - 1.
TOKEN_LIMIT = 1 << 24
#: Bytes a CA client must accept for `SCOPE:TRACES` (EPICS_CA_MAX_ARRAY_BYTES).
TRACE_BYTES = 4 * (TRACE_HEADER + 2 * SAMPLES) + 1024


def pack_trace(trace: Trace, token: int = 0) -> np.ndarray:
    """A trace as the IOC serves it: one array, so a client reads it whole.

    Header: sequence, decimation, trigger delay, units (0 VOLTS, 1 RAW),
    trigger source (index in `TriggerSource`; a SPLIT trace adds 16 x (1 +
    the index of IN2's)), the token of the client's request, then IN2's
    decimation and delay (SPLIT; 0 and 0 otherwise).
    """
    header = np.zeros(TRACE_HEADER, np.float32)
    sources = list(TriggerSource)
    trigger = sources.index(trace.trigger)
    if trace.mode is ScopeMode.SPLIT and trace.ch2_trigger is not None:
        trigger += 16 * (1 + sources.index(trace.ch2_trigger))
    header[:8] = (
        trace.sequence,
        trace.decimation,
        trace.delay,
        list(Units).index(trace.units),
        trigger,
        token,
        trace.ch2_decimation or 0 if trace.mode is ScopeMode.SPLIT else 0,
        trace.ch2_delay or 0 if trace.mode is ScopeMode.SPLIT else 0,
    )
    return np.concatenate([header, trace.ch1, trace.ch2]).astype(np.float32)


def trace_token(packed: np.ndarray) -> int:
    """The token of the request a packed trace was taken for."""
    return int(packed[5])


def unpack_trace(packed: np.ndarray) -> Trace:
    """The inverse of `pack_trace` (the token aside)."""
    header = packed[:TRACE_HEADER]
    body = packed[TRACE_HEADER:]
    n = len(body) // 2
    sources = list(TriggerSource)
    first, second = int(header[4]) % 16, int(header[4]) // 16
    split = second > 0
    return Trace(
        ch1=np.asarray(body[:n], np.float32),
        ch2=np.asarray(body[n:], np.float32),
        decimation=int(header[1]),
        delay=int(header[2]),
        units=list(Units)[int(header[3])],
        trigger=sources[first],
        sequence=int(header[0]),
        mode=ScopeMode.SPLIT if split else ScopeMode.NORMAL,
        ch2_decimation=int(header[6]) if split else None,
        ch2_delay=int(header[7]) if split else None,
        ch2_trigger=sources[second - 1] if split else None,
    )


def command_pv(name: str) -> str:
    """PV suffix of a command: `asg1.start` -> `CMD:ASG1:START`."""
    return "CMD:" + name.upper().replace(".", ":")


async def refusal(prefix: str, pv: str, what: str) -> InstrumentRefusedError:
    """The error for a put the IOC refused, with its reason when it gave one."""
    try:
        last = await caget(f"{prefix}LAST_ERROR", timeout=2)  # a char array
        reason = np.asarray(last, np.uint8).tobytes().split(b"\0")[0].decode()
    except CANothing:
        reason = ""
    if reason.startswith(f"{pv}: "):  # the IOC names the PV: this put's reason
        return InstrumentRefusedError(f"{what} refused: {reason}")
    return InstrumentRefusedError(
        f"{what} refused by the IOC serving {pv} (see its log or {prefix}LAST_ERROR)"
    )


class _SettingBackend(CaSignalBackend):
    """A setting's PV; a refused put raises with the IOC's reason."""

    def __init__(self, datatype: type, pv: str, prefix: str):
        super().__init__(datatype, pv, pv)
        self._prefix = prefix

    async def put(self, value: Any) -> None:
        try:
            await super().put(value)
        except CANothing:
            raise await refusal(
                self._prefix, self.write_pv, f"setting {self.write_pv} to {value!r}"
            ) from None


class _CommandBackend(CaCommandBackend):
    """A command's PV; a failed command raises with the IOC's reason."""

    def __init__(self, pv: str, prefix: str):
        super().__init__(pv)
        self._prefix = prefix

    async def execute(self) -> None:
        try:
            await super().execute()
        except CANothing:
            raise await refusal(self._prefix, self.write_pv, self.write_pv) from None


class _CaAcquirer(Acquirer):
    """Acquire through the IOC and read back this request's own trace.

    Each request carries a random token; the IOC keeps the last `SLOTS`
    traces with their tokens, so a trace finished for another client between
    this put and this read does not take this one's place.
    """

    def __init__(self, prefix: str, name: str = ""):
        self._prefix = prefix
        self.start = SignalRW(
            _SettingBackend(int, f"{prefix}SCOPE:ACQUIRE", prefix), timeout=3600
        )
        self.abort = TriggerableCommand(_CommandBackend(f"{prefix}SCOPE:ABORT", prefix))
        self.tokens = epics_signal_r(Array1D[np.int32], f"{prefix}SCOPE:TOKENS")
        self.mode = epics_signal_r(ScopeMode, f"{prefix}{SETTINGS['scope.mode'].pv}")
        self.slots = DeviceVector(
            {
                k: epics_signal_r(Array1D[np.float32], f"{prefix}SCOPE:SLOT:{k}")
                for k in range(SLOTS)
            }
        )
        self._random = random.Random()
        super().__init__(name=name)

    async def acquire(self) -> Trace:
        mode = await self.mode.get_value()
        if ScopeMode(mode) is ScopeMode.DEEP:
            raise InstrumentError(
                f"{self._prefix}SCOPE: DEEP traces do not travel over Channel "
                "Access; reach the board directly (`address`) for DEEP mode"
            )
        token = self._random.randrange(1, TOKEN_LIMIT)
        await self.start.set(token, timeout=None)
        tokens = [int(t) for t in await self.tokens.get_value(cached=False)]
        if token in tokens:
            slot = self.slots[tokens.index(token)]
            packed = await slot.get_value(cached=False)
            if trace_token(packed) == token:
                return unpack_trace(packed)
        raise InstrumentError(
            f"{self._prefix}SCOPE: the trace taken for this client was replaced "
            f"by {SLOTS} newer ones before it could be read; too many clients "
            "acquire at once (or this one is too slow)"
        )

    async def stop(self) -> None:
        await self.abort.trigger()


def ensure_ca_array_bytes() -> None:
    """Let this process's CA client receive whole traces.

    libca reads `EPICS_CA_MAX_ARRAY_BYTES` once, when its context is created;
    the default (16384 bytes) is smaller than one trace.

    Raises:
        ValueError: If it was set lower than a trace needs.
    """
    current = os.environ.get("EPICS_CA_MAX_ARRAY_BYTES")
    if current is None:
        os.environ["EPICS_CA_MAX_ARRAY_BYTES"] = str(4 * 1024 * 1024)
    elif int(current) < TRACE_BYTES:
        raise ValueError(
            f"EPICS_CA_MAX_ARRAY_BYTES={current} is too small for Red Pitaya traces; "
            f"set it to at least {TRACE_BYTES} (or unset it) before starting"
        )


class CaAccess:
    """Signals on the PVs of `labsky ioc redpitaya`.

    Args:
        prefix: The IOC's PV prefix (`RP1:`).
    """

    def __init__(self, prefix: str):
        ensure_ca_array_bytes()
        self.prefix = prefix

    def rw(self, name: str) -> SignalRW[Any]:
        """A settable signal for a setting of the table."""
        setting = SETTINGS[name]
        backend = _SettingBackend(
            setting.datatype, self.prefix + setting.pv, self.prefix
        )
        return SignalRW(backend)

    def r(self, name: str) -> SignalR[Any]:
        """A read-only signal (a measurement)."""
        setting = SETTINGS[name]
        return epics_signal_r(setting.datatype, self.prefix + setting.pv)

    def command(self, name: str) -> TriggerableCommand:
        """A command (`asg1.start`, `pid.reset_integrator`)."""
        assert name in COMMANDS
        pv = self.prefix + command_pv(name)
        return TriggerableCommand(_CommandBackend(pv, self.prefix))

    def acquirer(self) -> Acquirer:
        """The scope's acquisition (run by the IOC, one at a time)."""
        return _CaAcquirer(self.prefix)

    def connector(self) -> DeviceConnector:
        """Plain: the PVs connect themselves."""
        return DeviceConnector()
