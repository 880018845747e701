"""The one owner of a board: settings by name, acquisitions, the software PID.

`RedPitayaController` is what both front ends of a board use: the ophyd-async
devices of a session that talks to the board directly, and the caproto IOC
(`labsky ioc redpitaya`) that owns it for several client processes. It
serialises acquisition sequences (ACQ:START, trigger, poll, read), which
are not atomic on the SCPI server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from labsky.devices.redpitaya._pid_loop import SoftwarePid, clamp
from labsky.devices.redpitaya._scpi import (
    F_CLOCK,
    HALF,
    RedPitayaScpi,
    Trace,
    chain,
)
from labsky.devices.redpitaya._sequences import (
    acquire_deep,
    acquire_split,
    leave_split,
)
from labsky.devices.redpitaya._settings import (
    COMMANDS,
    SETTINGS,
    PidInput,
    PidOutput,
    ScopeMode,
    Setting,
    TriggerSource,
)
from labsky.transports import InstrumentTimeoutError, Link, ReplyError

logger = logging.getLogger(__name__)


class RedPitayaController:
    """Settings, commands and acquisitions of one board.

    Args:
        link: The link to the board's SCPI server.
    """

    def __init__(self, link: Link):
        self.link = link
        self.scpi = RedPitayaScpi(link)
        self.cache: dict[str, Any] = {
            name: s.initial for name, s in SETTINGS.items() if s.source == "cache"
        }
        self.pid = SoftwarePid(
            self._read_pid_input, self._write_pid_output, self._engage_pid
        )
        self.acquisition_lock = asyncio.Lock()
        self.sequence = 0
        self.idn = ""
        self.split_active = False  # the board was left in split-trigger mode
        self.deep_region: tuple[int, int] | None = None  # ACQ:AXI:START?, SIZE?

    @property
    def label(self) -> str:
        """Name used in messages."""
        return self.link.label

    @label.setter
    def label(self, value: str) -> None:
        self.link.label = value
        self.pid.label = f"{value}.pid"

    # -- connection -------------------------------------------------------

    async def open(self) -> None:
        """Open the link unless it is open."""
        if not self.link.is_open:
            await self.link.open()

    async def handshake(self) -> None:
        """Identify the board and set this connection's data format."""
        self.idn = await self.scpi.identify()
        await self.link.send("*CLS")
        await self.scpi.set("ACQ:DATA:FORMAT BIN")
        try:
            await self.scpi.set("ACQ:DATA:BYTE:ORDER BEND")
        except Exception:  # noqa: BLE001 - older OS: big-endian is all there is
            logger.debug("%s: no ACQ:DATA:BYTE:ORDER (older OS)", self.label)

    async def close(self) -> None:
        """Stop the PID loop and close the link."""
        await self.pid.stop()
        await self.link.close()

    # -- settings ---------------------------------------------------------

    @staticmethod
    def setting(name: str) -> Setting:
        """The table entry of `name`.

        Raises:
            KeyError: With the known names when there is no such setting.
        """
        try:
            return SETTINGS[name]
        except KeyError:
            raise KeyError(
                f"no Red Pitaya setting {name!r}; known: {', '.join(SETTINGS)}"
            ) from None

    async def get(self, name: str) -> Any:
        """Read a setting or measurement from where it lives."""
        setting = self.setting(name)
        if setting.source == "cache":
            return self.cache[name]
        if setting.source == "pid":
            key = name.removeprefix("pid.")
            if key in ("input_value", "error") and not self.pid.running:
                # idle loop: measure, so the setpoint's readback is the input
                measured = await self._read_pid_input(PidInput(self.pid.get("input")))
                if key == "error":
                    return measured - self.pid.get("setpoint")
                return measured
            return self.pid.get(key)
        assert setting.query is not None
        reply = await self.scpi.query(setting.query)
        try:
            return setting.parse(reply)
        except ReplyError as exc:  # the table names the setting, not the board
            raise ReplyError(f"{self.label}: {exc}") from None

    async def put(self, name: str, value: Any) -> None:
        """Set a setting (checked by the board; its refusal is raised)."""
        setting = self.setting(name)
        if setting.source == "pid":
            await self.pid.put(name.removeprefix("pid."), value)
            return
        if setting.source == "cache":
            self._check_cached(name, value)
            self.cache[name] = setting.datatype(value)
            return
        if setting.set is None:
            raise ValueError(f"{self.label}: {name} is read-only")
        try:
            text = setting.format(value)
        except ValueError as exc:
            raise ValueError(f"{self.label}: {exc}") from None
        await self.scpi.set(setting.set.format(text))

    def _check_cached(self, name: str, value: Any) -> None:
        """Refuse values of controller-held settings the board would refuse."""
        label = self.label
        if name == "scope.awg_channel" and int(value) not in (1, 2):
            raise ValueError(f"{label}: awg_channel {value}: use 1 or 2")
        if name == "scope.timeout" and not float(value) > 0:
            raise ValueError(f"{label}: timeout {value}: give seconds > 0")
        if name == "scope.ch2_decimation":
            factor = int(value)
            if factor != value or not (factor in (1, 2, 4, 8) or 16 <= factor <= 65536):
                raise ValueError(
                    f"{label}: ch2_decimation {value}: use 1, 2, 4, 8 or a whole "
                    "number from 16 to 65536"
                )
        if name == "scope.ch2_trigger_level" and not abs(float(value)) <= 20:
            raise ValueError(f"{label}: ch2_trigger_level {value} V: within +-20 V")
        if name == "scope.ch2_trigger_delay" and int(value) < -HALF:
            raise ValueError(f"{label}: ch2_trigger_delay {value}: at least -8192")
        if name == "scope.deep_samples":
            samples = int(value)
            if samples != value or samples < 8 or samples % 8:
                raise ValueError(
                    f"{label}: deep_samples {value}: give a positive multiple of 8"
                )

    async def execute(self, name: str) -> None:
        """Run a command (`asg1.start`, `pid.reset_integrator`, ...)."""
        if name not in COMMANDS:
            raise KeyError(f"no Red Pitaya command {name!r}; known: {list(COMMANDS)}")
        if name == "pid.reset_integrator":
            self.pid.reset_integrator()
            return
        command = COMMANDS[name]
        assert command is not None
        await self.scpi.set(command)

    # -- acquisition ------------------------------------------------------

    async def acquire(self) -> Trace:
        """Acquire both inputs with the current settings, in `scope.mode`.

        NORMAL: `ACQ:START`, wait for the pre-trigger part of the buffer, arm
        the trigger (an AWG trigger also starts the generator), wait for `TD`
        and a full buffer, then read both channels in binary. SPLIT and DEEP:
        see `_sequences`.

        Raises:
            InstrumentTimeoutError: No trigger within `scope.timeout`.
        """
        async with self.acquisition_lock:
            mode = ScopeMode(self.cache["scope.mode"])
            if mode is ScopeMode.SPLIT:
                return await acquire_split(self)
            if self.split_active:
                await leave_split(self)
            if mode is ScopeMode.DEEP:
                return await acquire_deep(self)
            return await self._acquire()

    async def _acquire(self) -> Trace:
        scpi = self.scpi
        decimation, delay = (
            int(float(x))
            for x in (await scpi.query(chain("ACQ:DEC?", "ACQ:TRig:DLY?"))).split(";")
        )
        source = TriggerSource(self.cache["scope.trigger_source"])
        timeout = float(self.cache["scope.timeout"])
        dt = decimation / F_CLOCK
        await scpi.set("ACQ:START")
        pre = (HALF - delay) * dt
        if pre > 0 and not source.startswith("AWG"):
            await asyncio.sleep(pre)  # let the pre-trigger history fill
        await scpi.set(f"ACQ:TRig {source.value}")
        if source.startswith("AWG"):
            await scpi.set(f"SOUR{self.cache['scope.awg_channel']}:TRig:INT")
        fill = (HALF + max(delay, -HALF)) * dt
        deadline = time.monotonic() + timeout + fill
        poll = min(max(fill / 4, 5e-4), 0.02)
        try:
            while await scpi.query("ACQ:TRig:STAT?") != "TD":
                if time.monotonic() > deadline:
                    raise InstrumentTimeoutError(self.no_trigger(source, timeout))
                await asyncio.sleep(poll)
            if fill > 2 * poll:
                await asyncio.sleep(fill * 0.9)
            while await scpi.query("ACQ:TRig:FILL?") != "1":
                if time.monotonic() > deadline:
                    raise InstrumentTimeoutError(
                        f"{self.label}: triggered, but the buffer did not fill "
                        f"within {fill + timeout:g} s"
                    )
                await asyncio.sleep(poll)
        except BaseException:
            await self.disarm()
            raise
        read_timeout = max(self.link_timeout(), 2.0)
        ch1, units = await scpi.trace(1, read_timeout)
        ch2, _ = await scpi.trace(2, read_timeout)
        self.sequence += 1
        return Trace(ch1, ch2, decimation, delay, units, source, self.sequence)

    def link_timeout(self) -> float:
        """The link's default timeout."""
        line = getattr(self.link, "line", None)
        return float(getattr(line, "timeout", 1.0))

    async def disarm(self, command: str = "ACQ:STOP") -> None:
        """Stop an acquisition after a failure (its own failure is only logged)."""
        try:
            await asyncio.shield(self.scpi.set(command))
        except Exception:  # logged; the original error matters more
            logger.debug("%s: %s failed", self.label, command, exc_info=True)

    def no_trigger(self, source: TriggerSource, timeout: float, which: str = "") -> str:
        """The message for a trigger that did not come."""
        hint = {
            "CH": "check that the input crosses the trigger level "
            "(scope.trigger_level) or use NOW",
            "EX": "check the cable to the external trigger input (DIO0_P)",
            "AW": "check the generator (scope.awg_channel)",
        }.get(source.value[:2], "is the board still acquiring?")
        on = f" on {which}" if which else ""
        return (
            f"{self.label}: no {source.value} trigger{on} within {timeout:g} s "
            f"(scope.timeout); {hint}"
        )

    async def stop_acquisition(self) -> None:
        """`ACQ:STOP`."""
        await self.scpi.set("ACQ:STOP")

    # -- the software PID's input and output ------------------------------

    async def _read_pid_input(self, source: PidInput) -> float:
        return float(await self.scpi.query(f"ANALOG:PIN? {source.value}"))

    async def _write_pid_output(self, target: PidOutput, value: float) -> None:
        if target.value.startswith("AOUT"):
            value = clamp(value, 0.0, 1.8)
            await self.scpi.set(f"ANALOG:PIN {target.value},{value:.5f}")
        else:
            value = clamp(value, -1.0, 1.0)
            await self.scpi.set(f"SOUR{target.value[-1]}:VOLT:OFFS {value:.5f}")

    async def _engage_pid(self, target: PidOutput, value: float) -> None:
        if target.value.startswith("OUT"):
            n = target.value[-1]
            for command in (
                f"SOUR{n}:FUNC DC",
                f"SOUR{n}:VOLT 0",
                f"SOUR{n}:VOLT:OFFS {clamp(value, -1.0, 1.0):.5f}",
                f"OUTPUT{n}:STATE ON",
                f"SOUR{n}:TRig:INT",
            ):
                await self.scpi.set(command)
        else:
            await self._write_pid_output(target, value)
