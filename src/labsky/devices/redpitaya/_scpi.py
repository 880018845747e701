"""The stock Red Pitaya SCPI server, spoken over a `Link`.

Several commands share a message only through `chain`, which makes every
header absolute (the board reads a header after `;` relative to the previous
one). Set commands are silent on the board, so each is sent as `COMMAND;*STB?`:
one round trip that both sends it and tells (status bit 2) whether the
error queue holds something, which is then read with `SYST:ERR?` and
raised with the board's own text. A failing query is also silent; when one
times out the error queue says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from labsky.devices.redpitaya._settings import ScopeMode, TriggerSource, Units
from labsky.transports import (
    InstrumentRefusedError,
    InstrumentTimeoutError,
    Link,
    ReplyError,
)

logger = logging.getLogger(__name__)

F_CLOCK = 125e6
SAMPLES = 16384
HALF = SAMPLES // 2


@dataclass(frozen=True)
class Trace:
    """One acquisition of both fast inputs.

    Attributes:
        ch1: IN1, oldest sample first (float32; volts, or ADC codes in RAW).
        ch2: IN2.
        decimation: Decimation it was taken at.
        delay: Trigger delay (samples): the trigger is at index
            len(ch1) / 2 - delay (8192 - delay for a normal trace).
        units: Units of the samples.
        trigger: What triggered it.
        sequence: Number of the acquisition (counted by its owner).
        mode: How it was taken; in SPLIT mode IN2 has its own trigger,
            decimation and delay (`ch2_*`; None: IN1's).
        ch2_decimation: IN2's decimation.
        ch2_delay: IN2's trigger delay.
        ch2_trigger: IN2's trigger.
    """

    ch1: np.ndarray
    ch2: np.ndarray
    decimation: int
    delay: int
    units: Units = Units.VOLTS
    trigger: TriggerSource = TriggerSource.NOW
    sequence: int = 0
    mode: ScopeMode = ScopeMode.NORMAL
    ch2_decimation: int | None = None
    ch2_delay: int | None = None
    ch2_trigger: TriggerSource | None = None

    @property
    def dt(self) -> float:
        """Seconds between samples."""
        return self.decimation / F_CLOCK

    @property
    def t0(self) -> float:
        """Time of the first sample relative to the trigger, s."""
        return -(len(self.ch1) // 2 - self.delay) * self.dt

    def times(self) -> np.ndarray:
        """Sample times relative to the trigger, s."""
        return self.t0 + np.arange(len(self.ch1)) * self.dt

    @property
    def ch2_dt(self) -> float:
        """Seconds between IN2's samples."""
        decimation = self.ch2_decimation or self.decimation
        return decimation / F_CLOCK

    @property
    def ch2_t0(self) -> float:
        """Time of IN2's first sample relative to IN2's trigger, s."""
        delay = self.delay if self.ch2_delay is None else self.ch2_delay
        return -(len(self.ch2) // 2 - delay) * self.ch2_dt

    def times2(self) -> np.ndarray:
        """IN2's sample times relative to its trigger, s."""
        return self.ch2_t0 + np.arange(len(self.ch2)) * self.ch2_dt


def chain(*commands: str) -> str:
    """Commands for one message, each header absolute.

    The board's parser reads a header after `;` relative to the previous
    one's path (SCPI's compound headers: `ACQ:DEC 8;TRig:LEV 0.1` sets
    `ACQ:TRig:LEV`), so `ACQ:DEC?;ACQ:TRig:DLY?` would ask for
    `ACQ:ACQ:TRig:DLY?`. A leading `:` makes each header start at the root.
    """
    return ";".join(
        c if k == 0 or c.startswith((":", "*")) else ":" + c
        for k, c in enumerate(commands)
    )


def parse_block(
    data: bytes, label: str, command: str, samples: int = SAMPLES
) -> tuple[np.ndarray, Units]:
    """Decode a trace block: big-endian float32 volts or int16 codes (RAW).

    The units are global on the board (another client may have switched them),
    so they are read from the block's size rather than assumed.

    Raises:
        ReplyError: If the size fits neither.
    """
    if len(data) == 4 * samples:
        return np.frombuffer(data, ">f4").astype(np.float32), Units.VOLTS
    if len(data) == 2 * samples:
        return np.frombuffer(data, ">i2").astype(np.float32), Units.RAW
    raise ReplyError(
        f"{label}: {command} returned {len(data)} bytes, not {samples} samples"
    )


class RedPitayaScpi:
    """Commands to one board, with its errors raised as exceptions.

    Args:
        link: TCP (`tcp://host:5000`) or VISA (`TCPIP::host::5000::SOCKET`).
    """

    def __init__(self, link: Link):
        self.link = link

    @property
    def label(self) -> str:
        """The device name used in messages."""
        return self.link.label

    async def identify(self) -> str:
        """`*IDN?`; check that this is a Red Pitaya.

        Raises:
            ReplyError: If it answers as something else.
        """
        idn = (await self.link.query("*IDN?")).strip()
        if not idn.upper().startswith("REDPITAYA"):
            raise ReplyError(
                f"{self.label}: {self.link.address} identifies as {idn!r}, not a Red "
                "Pitaya; check the address"
            )
        return idn

    async def errors(self) -> list[str]:
        """Empty the error queue (`SYST:ERR?` until `0,...`)."""
        found: list[str] = []
        for _ in range(32):
            reply = (await self.link.query("SYST:ERR?")).strip()
            if reply.startswith("0,") or not reply:
                break
            found.append(reply)
        return found

    async def set(self, command: str) -> None:
        """Send a set command and check the board took it.

        Raises:
            InstrumentRefusedError: With the board's error text.
        """
        status = (await self.link.query(f"{command};*STB?")).strip()
        try:
            stb = int(status.rsplit(";", 1)[-1])
        except ValueError:
            raise ReplyError(
                f"{self.label}: *STB? after {command!r} answered {status!r}"
            ) from None
        if stb & 4:
            errors = await self.errors()
            raise InstrumentRefusedError(
                f"{self.label}: the board refused {command!r}: {'; '.join(errors)}"
            )

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send a query; a failing query times out, and the error queue says why.

        Raises:
            InstrumentRefusedError: The board answered the query with an error.
            InstrumentTimeoutError: No answer and no error: the board is gone.
        """
        try:
            return (await self.link.query(command, timeout)).strip()
        except InstrumentTimeoutError:
            errors = await self._errors_after_silence()
            if errors:
                raise InstrumentRefusedError(
                    f"{self.label}: the board refused {command!r}: {'; '.join(errors)}"
                ) from None
            raise

    async def _errors_after_silence(self) -> list[str]:
        try:
            return await self.errors()
        except InstrumentTimeoutError:
            return []

    async def trace(
        self, channel: int, timeout: float | None = None
    ) -> tuple[np.ndarray, Units]:
        """`ACQ:SOUR<n>:DATA?` as float32 (volts, or codes in RAW units)."""
        command = f"ACQ:SOUR{channel}:DATA?"
        data = await self.link.query_block(command, timeout)
        return parse_block(data, self.label, command)

    async def deep_trace(
        self, channel: int, start: int, samples: int, timeout: float | None = None
    ) -> tuple[np.ndarray, Units]:
        """`samples` of IN<channel>'s deep-memory buffer from index `start`."""
        command = f"ACQ:AXI:SOUR{channel}:DATA:Start:N? {start},{samples}"
        data = await self.link.query_block(command, timeout)
        return parse_block(data, self.label, command, samples)
