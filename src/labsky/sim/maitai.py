"""Spectra-Physics MaiTai Ti:sapphire laser.

Protocol (MaiTai user manual; replies recorded by rust-daq on a real head):
SCPI-style keywords, case-insensitive, short or long form (`WAV` or
`WAVELENGTH`). Over USB the link is 115200 baud 8N1 without flow control;
over RS-232, 9600 baud with XON/XOFF. Commands end with LF (CR LF
accepted); replies end with LF. Set commands are silent.

| command | reply |
|---|---|
| `*IDN?` | `Spectra Physics,MaiTai,<serial>,<firmware>` |
| `WAVelength nnn` / `WAVelength?` | tune to nnn nm (690-1040) / the target, `820nm` |
| `READ:WAVelength?` | the actual wavelength while it tunes, `812nm` |
| `READ:POWer?` | output power, `2.482W` |
| `READ:PCTWarmedup?` | warm-up, `100.00%` |
| `SHUTter 1` / `SHUTter 0` / `SHUTter?` | open / close / `1` or `0` |
| `ON` / `OFF` | pump laser on (only once warmed up) / off |
| `*STB?` | status byte: 1 emission, 2 modelocked, 4 shutter open, 8 warmed up |
| `MODE PPOWer` / `MODE PCURrent` / `MODE?` | pump by power or current: `POW`/`CUR` |
| `PLASer:POWer nn` / `PLASer:POWer?` | pump power setpoint (W) / `13.43W` |
| `PLASer:CURRent nn` / `PLASer:CURRent?` | pump current setpoint (%) / `95.0%` |
| `READ:PLASer:POWer?`, `READ:PLASer:PCURrent?` | pump power and current now |
| `READ:HUMidity?` | `7.26%` |
| `WAVelength:MIN?` / `WAVelength:MAX?` | the tuning range, `690nm` / `1040nm` |
| `TIMer:WATChdog n` / `TIMer:WATChdog?` | stop emission after n s of silence (0: off) |
| `SAVe` | store the settings |

The wavelength tunes at the world's `tune_rate` (nm/s); emission needs the
warm-up to be complete and modelocks half a second after `ON`.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import ClassVar

from pydantic import Field

from labsky.sim.serial_sim import SerialSimParams, SerialSimulator
from labsky.sim.world import World
from labsky.transports.stream import SerialSettings

MODELOCK_DELAY = 0.5


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def scpi_pattern(header: str) -> re.Pattern[str]:
    """A regex matching a SCPI header in short or long form, any case.

    `READ:WAVelength?` matches `read:wav?`, `READ:WAVELENGTH?`, ...
    """
    query = header.endswith("?")
    parts = []
    for node in header.removesuffix("?").split(":"):
        short = node.rstrip("abcdefghijklmnopqrstuvwxyz")
        rest = node[len(short) :]
        parts.append(re.escape(short) + (f"(?:{re.escape(rest)})?" if rest else ""))
    return re.compile(
        "^" + ":".join(parts) + (r"\?" if query else "") + "$", re.IGNORECASE
    )


class MaiTaiSimParams(SerialSimParams):
    """Settings of a simulated MaiTai."""

    baudrate: int = Field(default=115200, description="115200 (USB) or 9600 (RS-232).")
    xonxoff: bool = Field(
        default=False, description="XON/XOFF flow control (RS-232 needs it)."
    )
    serial_number: str = Field(
        default="3412/51/4A", description="What `*IDN?` reports."
    )


class MaiTaiSim(SerialSimulator[MaiTaiSimParams]):
    """A MaiTai driving the world's laser."""

    kind: ClassVar[str] = "maitai"
    Params = MaiTaiSimParams
    reply_termination: ClassVar[str] = "\n"

    def __init__(self, world: World, name: str, params: MaiTaiSimParams):
        super().__init__(world, name, params)
        self.laser = world.laser
        self.on_at: float | None = 0.0 if world.laser.emission else None
        self._queries = {
            "*IDN?": lambda: f"Spectra Physics,MaiTai,{params.serial_number},0245",
            "WAVelength?": lambda: f"{self.laser.wavelength.target():.0f}nm",
            "READ:WAVelength?": lambda: f"{self.laser.wavelength.position():.0f}nm",
            "READ:POWer?": lambda: f"{self._power():.3f}W",
            "READ:PCTWarmedup?": lambda: f"{100 * self.laser.warmed_up():.2f}%",
            "SHUTter?": lambda: "1" if self.laser.shutter_open else "0",
            "*STB?": lambda: str(self.status_byte()),
            "READ:HUMidity?": lambda: "7.26%",
        }
        self.mode = "POW"
        self.pump_power = 13.43  # W
        self.pump_current = 95.0  # percent
        self.watchdog = 0.0  # s; 0: off
        self._watchdog_timer: asyncio.TimerHandle | None = None
        self._queries.update(
            {
                "MODE?": lambda: self.mode,
                "PLASer:POWer?": lambda: f"{self.pump_power:.2f}W",
                "PLASer:CURRent?": lambda: f"{self.pump_current:.1f}%",
                "READ:PLASer:POWer?": lambda: (
                    f"{self.pump_power if self.laser.emission else 0.0:.2f}W"
                ),
                "READ:PLASer:PCURrent?": lambda: (
                    f"{self.pump_current if self.laser.emission else 0.0:.1f}%"
                ),
                "WAVelength:MIN?": lambda: f"{world.params.laser.min_wavelength:.0f}nm",
                "WAVelength:MAX?": lambda: f"{world.params.laser.max_wavelength:.0f}nm",
                "TIMer:WATChdog?": lambda: f"{self.watchdog:g}",
            }
        )
        self._patterns = [(scpi_pattern(h), f) for h, f in self._queries.items()]
        self._wavelength = scpi_pattern("WAVelength")
        self._shutter = scpi_pattern("SHUTter")
        self._settings = {
            scpi_pattern("MODE"): self._set_mode,
            scpi_pattern("PLASer:POWer"): self._set_pump_power,
            scpi_pattern("PLASer:CURRent"): self._set_pump_current,
            scpi_pattern("TIMer:WATChdog"): self._set_watchdog,
            scpi_pattern("SAVe"): lambda argument: None,
        }

    def serial_settings(self) -> SerialSettings:
        """115200 8N1 over USB, or as configured."""
        return SerialSettings(
            baudrate=self.params.baudrate, xonxoff=self.params.xonxoff
        )

    def _power(self) -> float:
        noise = 1 + float(self.world.rng.normal(0, self.world.params.laser.noise))
        return self.laser.power() * noise

    def modelocked(self) -> bool:
        """Whether the laser pulses (a moment after emission starts)."""
        return self.on_at is not None and time.monotonic() - self.on_at > MODELOCK_DELAY

    def status_byte(self) -> int:
        """`*STB?`: 1 emission, 2 modelocked, 4 shutter open, 8 warmed up."""
        laser = self.laser
        return (
            int(laser.emission)
            | 2 * int(self.modelocked())
            | 4 * int(laser.shutter_open)
            | 8 * int(laser.warmed_up() >= 1)
        )

    def _set_mode(self, argument: str) -> None:
        mode = argument.upper()
        if scpi_pattern("PPOWer").match(mode):
            self.mode = "POW"
        elif scpi_pattern("PCURrent").match(mode):
            self.mode = "CUR"

    def _set_pump_power(self, argument: str) -> None:
        value = _number(argument)
        if value is not None and 0 <= value <= 20:
            self.pump_power = value

    def _set_pump_current(self, argument: str) -> None:
        value = _number(argument)
        if value is not None and 0 <= value <= 100:
            self.pump_current = value

    def _set_watchdog(self, argument: str) -> None:
        value = _number(argument)
        if value is not None and value >= 0:
            self.watchdog = value
            self._feed_watchdog()

    def _feed_watchdog(self) -> None:
        if self._watchdog_timer is not None:
            self._watchdog_timer.cancel()
            self._watchdog_timer = None
        if self.watchdog > 0 and self.loop is not None:
            self._watchdog_timer = self.loop.call_later(self.watchdog, self._bite)

    def _bite(self) -> None:
        """No command for the watchdog's time: emission stops."""
        self._watchdog_timer = None
        self.laser.emission = False
        self.on_at = None

    def handle(self, line: str) -> None:
        """Act on one command."""
        self._feed_watchdog()
        header, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        for pattern, answer in self._patterns:
            if pattern.match(header):
                self.reply(answer())
                return
        for pattern, setter in self._settings.items():
            if pattern.match(header) and argument:
                setter(argument)
                return
        laser = self.laser
        p = self.world.params.laser
        if self._wavelength.match(header) and argument:
            try:
                nm = float(argument)
            except ValueError:
                return
            if p.min_wavelength <= nm <= p.max_wavelength:
                laser.wavelength.move_to(nm)
        elif self._shutter.match(header) and argument in ("0", "1"):
            laser.shutter_open = argument == "1"
        elif header.upper() == "ON" and laser.warmed_up() >= 1:
            if not laser.emission:
                laser.emission = True
                self.on_at = time.monotonic()
        elif header.upper() == "OFF":
            laser.emission = False
            self.on_at = None
        # unknown or refused commands are ignored, as the laser does
