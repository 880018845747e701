"""Newport 1830-C optical power meter with a silicon detector (818-SL).

Protocol (1830-C manual; rust-daq's notes from the lab): RS-232 at 9600
baud, 8N1, no flow control, LF-terminated both ways. Not SCPI: one- or
two-character commands. Set commands are silent; a query of something the
meter does not know answers `ERR`. Echo is on at power-up (`E0` turns it
off), so a driver that forgets sees its own commands come back.

| command | meaning |
|---|---|
| `D?` | the reading in the current units, or `OVER`, `UNDER`, `SAT` |
| `Wnnnn` / `W?` | detector wavelength, 400-1100 nm (4 digits) |
| `U1`..`U4` / `U?` | units: W, dBm, dB (relative), REL (ratio) |
| `A0` / `A1` / `A?` | OD3 attenuator out / in |
| `F1` / `F2` / `F3` / `F?` | filter: slow, medium, fast |
| `R0` .. `R8` / `R?` | range: 0 auto, 1 (2 nW full scale) .. 8 (20 mW) |
| `Z0` / `Z1` / `Z?` | zero off / store the present reading as zero |
| `E0` / `E1` / `E?` | echo off / on |
| `B0` / `B1` / `B?` | beeper off / on |
| `G0` / `G1` / `G?` | hold the reading / go (readings follow the light) |
| `K0` / `K1` / `K?` | front-panel keypad locked / enabled |
| `CS` | clear the status byte |

Readings (`D?`) are in engineering notation, as recorded on a real meter:
`5E-9` (5 nW), `+.75E-9` (0.75 nW), `1.23E-6`: four significant digits at
most, trailing zeros dropped, an exponent that is a multiple of three (nW
at the smallest), and a sign with no leading zero below one display unit.

Physics: the reading is the power on the detector (the world's pick-off of
the beam) times the silicon responsivity at the laser's wavelength over
the responsivity at the wavelength set on the meter, with relative and
absolute noise that the filter averages down. Without the attenuator the
detector saturates above 2 mW (`SAT`); with it above 2 W. In a fixed range,
readings above full scale are `OVER` and those below 1/20000 of it `UNDER`.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from labsky.sim.serial_sim import SerialSimParams, SerialSimulator
from labsky.sim.world import World, silicon_responsivity

ATTENUATION = 1e-3  # OD3
SATURATION = 2e-3  # W on the bare detector
FILTER_NOISE = {1: 0.25, 2: 0.5, 3: 1.0}


def full_scale(range_: int, attenuator: bool) -> float:
    """Full scale (W) of a range."""
    return 2e-9 * 10 ** (range_ - 1) / (ATTENUATION if attenuator else 1.0)


def format_reading(value: float) -> str:
    """Engineering notation as the meter sends it: `5E-9`, `+.75E-9`, `1.23E-6`."""
    if not math.isfinite(value):
        return "0E0"
    if value == 0:
        return "0E-9"
    exponent = max(-9, 3 * math.floor(math.log10(abs(value)) / 3))
    mantissa = float(f"{value / 10**exponent:.4g}")
    if abs(mantissa) >= 1000:
        exponent += 3
        mantissa = float(f"{mantissa / 1000:.4g}")
    text = f"{abs(mantissa):.4g}"
    if "e" in text:  # tiny readings below the last digit of the nW range
        text = f"{abs(mantissa):.4f}".rstrip("0").rstrip(".") or "0"
    if text.startswith("0."):
        text = ("-" if mantissa < 0 else "+") + text[1:]
    elif mantissa < 0:
        text = "-" + text
    return f"{text}E{exponent}"


class Newport1830cSimParams(SerialSimParams):
    """Settings of a simulated 1830-C."""

    latency: float = Field(
        default=0.01, ge=0, description="Seconds to start answering."
    )
    relative_noise: float = Field(
        default=0.002, ge=0, description="Relative noise (fast filter)."
    )
    noise_floor: float = Field(
        default=2e-11, ge=0, description="Absolute noise, W (fast filter)."
    )


class Newport1830cSim(SerialSimulator[Newport1830cSimParams]):
    """A 1830-C reading the world's pick-off beam."""

    kind: ClassVar[str] = "newport1830c"
    Params = Newport1830cSimParams
    reply_termination: ClassVar[str] = "\n"

    def __init__(self, world: World, name: str, params: Newport1830cSimParams):
        super().__init__(world, name, params)
        self.wavelength = 800
        self.units = 1
        self.attenuator = False
        self.filter = 3
        self.range = 0
        self.zero_on = False
        self.zero = 0.0
        self.reference = 1e-3
        self.echo = True
        self.beeper = True
        self.go = True
        self.keypad = True
        self.held: str | None = None  # the reading frozen by G0
        self.status_byte = 0
        self.rng = world.rng

    def detector_power(self) -> float:
        """Optical power on the detector head (W), before noise."""
        power = self.world.meter_power()
        return power * (ATTENUATION if self.attenuator else 1.0)

    def measured(self) -> float:
        """What the meter computes, in W, with noise and its corrections."""
        true_nm = self.world.laser.wavelength.position()
        correction = silicon_responsivity(true_nm) / silicon_responsivity(
            self.wavelength
        )
        scale = 1 / ATTENUATION if self.attenuator else 1.0
        power = self.detector_power() * scale * correction
        width = FILTER_NOISE[self.filter]
        sigma = math.hypot(
            power * self.params.relative_noise, self.params.noise_floor * scale
        )
        power += float(self.rng.normal(0.0, sigma * width))
        return power - (self.zero if self.zero_on else 0.0)

    def reading(self) -> str:
        """The reply to `D?`."""
        if self.detector_power() > SATURATION:
            return "SAT"
        power = self.measured()
        if self.range:
            scale = full_scale(self.range, self.attenuator)
            if power > scale:
                return "OVER"
            if power < scale / 2e4:
                return "UNDER"
        if self.units == 1:
            return format_reading(power)
        if self.units == 2:
            return f"{10 * math.log10(max(power, 1e-15) / 1e-3):.3f}"
        ratio = max(power, 1e-15) / self.reference
        return (
            f"{10 * math.log10(ratio):.3f}"
            if self.units == 3
            else format_reading(ratio)
        )

    def handle(self, line: str) -> None:
        """Act on one command."""
        if self.echo:
            self.reply(line)
        command = line.upper().replace(" ", "")
        letter, argument = command[:1], command[1:]
        settings = {
            "U": ("units", range(1, 5)),
            "A": ("attenuator", range(0, 2)),
            "F": ("filter", range(1, 4)),
            "R": ("range", range(0, 9)),
            "E": ("echo", range(0, 2)),
            "B": ("beeper", range(0, 2)),
            "G": ("go", range(0, 2)),
            "K": ("keypad", range(0, 2)),
        }
        if command == "CS":
            self.status_byte = 0
        elif argument == "?":
            self._query(letter)
        elif letter == "W" and argument.isdigit():
            if 400 <= int(argument) <= 1100:
                self.wavelength = int(argument)
        elif letter == "Z" and argument in ("0", "1"):
            self.zero_on = argument == "1"
            if self.zero_on:
                self.zero = self.measured()
        elif letter in settings and argument.isdigit():
            attribute, allowed = settings[letter]
            if int(argument) in allowed:
                value = int(argument)
                flags = ("attenuator", "echo", "beeper", "go", "keypad")
                setattr(self, attribute, bool(value) if attribute in flags else value)
                if attribute == "go":
                    self.held = None if value else self.reading()
                if attribute == "units" and value in (3, 4):
                    self.reference = max(self.measured(), 1e-15)
        # anything else is ignored, as the meter does

    def _query(self, letter: str) -> None:
        if letter == "D":
            self.reply(self.held if self.held is not None else self.reading())
        elif letter == "W":
            self.reply(f"{self.wavelength:04d}")
        elif letter and letter in "UAFRZEBGK":
            value = {
                "U": self.units,
                "A": int(self.attenuator),
                "F": self.filter,
                "R": self.range,
                "Z": int(self.zero_on),
                "E": int(self.echo),
                "B": int(self.beeper),
                "G": int(self.go),
                "K": int(self.keypad),
            }[letter]
            self.reply(str(value))
        else:
            self.reply("ERR")
