"""Every setting and reading of a Red Pitaya, in one table.

One entry per value: its type, the SCPI commands that set and query it on
the stock server, and the PV that serves it from `labsky ioc redpitaya`.
The in-process devices, the IOC and the IOC's clients are all built from
this table, so they cannot disagree about names, types or units.

Some values have no SCPI query (the trigger source) or are not on the
board at all (the software PID): their `source` says where they live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ophyd_async.core import StrictEnum

from labsky.transports import ReplyError


class Waveform(StrictEnum):
    """`SOUR<n>:FUNC`."""

    SINE = "SINE"
    SQUARE = "SQUARE"
    TRIANGLE = "TRIANGLE"
    SAWU = "SAWU"
    SAWD = "SAWD"
    DC = "DC"
    DC_NEG = "DC_NEG"
    PWM = "PWM"
    ARBITRARY = "ARBITRARY"


class TriggerSource(StrictEnum):
    """`ACQ:TRig`: what starts an acquisition.

    `AWG_PE`/`AWG_NE` start the generator of `scope.awg_channel` as part of
    the acquisition, so its phase at every sample is known (lock-in).
    """

    NOW = "NOW"
    CH1_PE = "CH1_PE"
    CH1_NE = "CH1_NE"
    CH2_PE = "CH2_PE"
    CH2_NE = "CH2_NE"
    EXT_PE = "EXT_PE"
    EXT_NE = "EXT_NE"
    AWG_PE = "AWG_PE"
    AWG_NE = "AWG_NE"


class ScopeMode(StrictEnum):
    """How the scope acquires.

    `NORMAL`: both inputs on one trigger, 16384 samples each. `SPLIT`: each
    input on its own trigger, decimation and delay (`ACQ:SPLIT:TRig`; IN1
    takes the scope's settings, IN2 the `ch2_*` ones). `DEEP`: both inputs
    into the board's RAM (`ACQ:AXI:*`), `deep_samples` each, up to a quarter
    of the reserved region (2 bytes a sample, two inputs).
    """

    NORMAL = "NORMAL"
    SPLIT = "SPLIT"
    DEEP = "DEEP"


class SweepMode(StrictEnum):
    """`SOUR<n>:SWeep:MODE`."""

    LINEAR = "LINEAR"
    LOG = "LOG"


class SweepDirection(StrictEnum):
    """`SOUR<n>:SWeep:DIR`: up and start again, or up and back down."""

    NORMAL = "NORMAL"
    UP_DOWN = "UP_DOWN"


class InputGain(StrictEnum):
    """`ACQ:SOUR<n>:GAIN`: must match the input's jumper."""

    LV = "LV"  # +/- 1 V
    HV = "HV"  # +/- 20 V


class Units(StrictEnum):
    """`ACQ:DATA:Units` (global to the board)."""

    VOLTS = "VOLTS"
    RAW = "RAW"


class BurstMode(StrictEnum):
    """`SOUR<n>:BURS:STAT`."""

    CONTINUOUS = "CONTINUOUS"
    BURST = "BURST"


class GeneratorTrigger(StrictEnum):
    """`SOUR<n>:TRig:SOUR`."""

    INT = "INT"
    EXT_PE = "EXT_PE"
    EXT_NE = "EXT_NE"


class PinDirection(StrictEnum):
    """`DIG:PIN:DIR`."""

    IN = "IN"
    OUT = "OUT"


class PidInput(StrictEnum):
    """What the software PID reads: a slow analog input."""

    AIN0 = "AIN0"
    AIN1 = "AIN1"
    AIN2 = "AIN2"
    AIN3 = "AIN3"


class PidOutput(StrictEnum):
    """What the software PID drives: a fast output's DC level or a slow output."""

    OUT1 = "OUT1"
    OUT2 = "OUT2"
    AOUT0 = "AOUT0"
    AOUT1 = "AOUT1"
    AOUT2 = "AOUT2"
    AOUT3 = "AOUT3"


Source = Literal["scpi", "cache", "pid"]


@dataclass(frozen=True)
class Setting:
    """One value of the board.

    Attributes:
        name: `group.value`, e.g. `asg1.frequency`.
        datatype: float, int, bool or a StrictEnum.
        set: SCPI set command, `{}` standing for the value (None: read-only).
        query: SCPI query (None: no query on the board).
        units: Engineering units.
        source: `scpi` (the board), `cache` (set on the board but not
            queryable: the last value set is kept), `pid` (the software PID).
        changes: The value changes by itself (a measurement): the IOC polls it.
        initial: Value of `cache` entries before anything was set.
        true_false: How a bool is written (`ON`/`OFF`, or `1`/`0` for pins).
        doc: One line for the IOC's PV documentation.
    """

    name: str
    datatype: type
    set: str | None = None
    query: str | None = None
    units: str | None = None
    source: Source = "scpi"
    changes: bool = False
    initial: Any = None
    true_false: tuple[str, str] = ("ON", "OFF")
    doc: str = ""

    @property
    def pv(self) -> str:
        """PV suffix: `asg1.frequency` -> `ASG1:FREQUENCY`."""
        return self.name.upper().replace(".", ":")

    @property
    def writable(self) -> bool:
        """Whether it can be set."""
        return self.set is not None or (
            self.source in ("cache", "pid") and not self.changes
        )

    def format(self, value: Any) -> str:
        """The SCPI text of a value."""
        if self.datatype is bool:
            return self.true_false[0] if value else self.true_false[1]
        if isinstance(value, StrictEnum):
            return value.value
        if self.datatype is int:
            return str(int(value))
        if self.datatype is float:
            if not math.isfinite(float(value)):
                raise ValueError(f"{self.name}: {value} is not a finite number")
            return repr(float(value))
        return str(value)

    def parse(self, reply: str) -> Any:
        """A query's reply as a value.

        Raises:
            ReplyError: If the reply does not fit the type.
        """
        text = reply.strip()
        try:
            if self.datatype is bool:
                if text.upper() not in ("ON", "OFF", "1", "0"):
                    raise ValueError(text)
                return text.upper() in ("ON", "1")
            if self.datatype is int:
                return int(float(text))
            if self.datatype is float:
                return float(text.split()[0])
            return self.datatype(text.upper())
        except (ValueError, IndexError):
            raise ReplyError(
                f"{self.name}: {self.query!r} answered {reply!r}, not a "
                f"{getattr(self.datatype, '__name__', self.datatype)}"
            ) from None


def _scope() -> list[Setting]:
    settings = [
        Setting("scope.decimation", int, "ACQ:DEC {}", "ACQ:DEC?",
                doc="Decimation, a power of 2 from 1 to 65536"),
        Setting("scope.averaging", bool, "ACQ:AVG {}", "ACQ:AVG?",
                doc="Average the samples within each decimation interval"),
        Setting("scope.trigger_source", TriggerSource, "ACQ:TRig {}", None,
                source="cache", initial=TriggerSource.NOW,
                doc="Trigger of the next acquisitions"),
        Setting("scope.trigger_level", float, "ACQ:TRig:LEV {}", "ACQ:TRig:LEV?",
                units="V", doc="Trigger level of both channels"),
        Setting("scope.trigger_hysteresis", float, "ACQ:TRig:HYST {}",
                "ACQ:TRig:HYST?", units="V", doc="Trigger hysteresis"),
        Setting("scope.trigger_delay", int, "ACQ:TRig:DLY {}", "ACQ:TRig:DLY?",
                units="samples", doc="Samples the trigger sits before the middle"),
        Setting("scope.units", Units, "ACQ:DATA:Units {}", "ACQ:DATA:Units?",
                doc="Trace units (global to the board)"),
        Setting("scope.awg_channel", int, None, None, source="cache", initial=1,
                doc="Generator an AWG trigger starts (1 or 2)"),
        Setting("scope.timeout", float, None, None, units="s", source="cache",
                initial=10.0, doc="Seconds an acquisition may wait for its trigger"),
        Setting("scope.mode", ScopeMode, None, None, source="cache",
                initial=ScopeMode.NORMAL,
                doc="NORMAL, SPLIT (a trigger per input) or DEEP (long traces)"),
        Setting("scope.ch2_decimation", int, None, None, source="cache", initial=1,
                doc="IN2's decimation in SPLIT mode (1, 2, 4, 8, 16 ... 65536)"),
        Setting("scope.ch2_trigger_source", TriggerSource, None, None,
                source="cache", initial=TriggerSource.NOW,
                doc="IN2's trigger in SPLIT mode"),
        Setting("scope.ch2_trigger_level", float, None, None, units="V",
                source="cache", initial=0.0, doc="IN2's trigger level in SPLIT mode"),
        Setting("scope.ch2_trigger_delay", int, None, None, units="samples",
                source="cache", initial=0,
                doc="IN2's trigger delay in SPLIT mode (samples before the middle)"),
        Setting("scope.deep_samples", int, None, None, source="cache",
                initial=262144,
                doc="Samples per input in DEEP mode (a multiple of 8)"),
    ]  # fmt: skip
    for n in (1, 2):
        settings.append(
            Setting(f"scope.gain{n}", InputGain, f"ACQ:SOUR{n}:GAIN {{}}",
                    f"ACQ:SOUR{n}:GAIN?", doc=f"IN{n} range (the jumper)")
        )  # fmt: skip
    return settings


def _asg(n: int) -> list[Setting]:
    s = f"SOUR{n}"
    return [
        Setting(f"asg{n}.waveform", Waveform, f"{s}:FUNC {{}}", f"{s}:FUNC?",
                doc="Waveform"),
        Setting(f"asg{n}.frequency", float, f"{s}:FREQ:FIX {{}}", f"{s}:FREQ:FIX?",
                units="Hz", doc="Frequency"),
        Setting(f"asg{n}.amplitude", float, f"{s}:VOLT {{}}", f"{s}:VOLT?",
                units="V", doc="Peak amplitude (|amplitude| + |offset| <= 1 V)"),
        Setting(f"asg{n}.offset", float, f"{s}:VOLT:OFFS {{}}", f"{s}:VOLT:OFFS?",
                units="V", doc="DC offset"),
        Setting(f"asg{n}.phase", float, f"{s}:PHAS {{}}", f"{s}:PHAS?",
                units="deg", doc="Start phase"),
        Setting(f"asg{n}.duty_cycle", float, f"{s}:DCYC {{}}", f"{s}:DCYC?",
                doc="PWM duty cycle, 0 to 1"),
        Setting(f"asg{n}.output", bool, f"OUTPUT{n}:STATE {{}}",
                f"OUTPUT{n}:STATE?", doc="Output enabled"),
        Setting(f"asg{n}.trigger_source", GeneratorTrigger, f"{s}:TRig:SOUR {{}}",
                f"{s}:TRig:SOUR?", doc="What starts the generator"),
        Setting(f"asg{n}.burst", BurstMode, f"{s}:BURS:STAT {{}}",
                f"{s}:BURS:STAT?", doc="Continuous or burst"),
        Setting(f"asg{n}.burst_cycles", int, f"{s}:BURS:NCYC {{}}",
                f"{s}:BURS:NCYC?", doc="Periods per burst"),
        Setting(f"asg{n}.burst_count", int, f"{s}:BURS:NOR {{}}", f"{s}:BURS:NOR?",
                doc="Number of bursts"),
        Setting(f"asg{n}.burst_period", float, f"{s}:BURS:INT:PER {{}}",
                f"{s}:BURS:INT:PER?", units="us", doc="Burst repetition period"),
        Setting(f"asg{n}.sweep", bool, f"{s}:SWeep:STATE {{}}",
                f"{s}:SWeep:STATE?", doc="Frequency sweep running"),
        Setting(f"asg{n}.sweep_start", float, f"{s}:SWeep:FREQ:START {{}}",
                f"{s}:SWeep:FREQ:START?", units="Hz",
                doc="Sweep start frequency (whole hertz)"),
        Setting(f"asg{n}.sweep_stop", float, f"{s}:SWeep:FREQ:STOP {{}}",
                f"{s}:SWeep:FREQ:STOP?", units="Hz",
                doc="Sweep stop frequency (whole hertz)"),
        Setting(f"asg{n}.sweep_time", int, f"{s}:SWeep:TIME {{}}",
                f"{s}:SWeep:TIME?", units="us",
                doc="Time from the start to the stop frequency"),
        Setting(f"asg{n}.sweep_mode", SweepMode, f"{s}:SWeep:MODE {{}}",
                f"{s}:SWeep:MODE?", doc="LINEAR or LOG"),
        Setting(f"asg{n}.sweep_direction", SweepDirection, f"{s}:SWeep:DIR {{}}",
                f"{s}:SWeep:DIR?", doc="NORMAL (restart at the start) or UP_DOWN"),
    ]  # fmt: skip


def _io() -> list[Setting]:
    settings = []
    for k in range(4):
        settings += [
            Setting(f"io.ain{k}", float, None, f"ANALOG:PIN? AIN{k}", units="V",
                    changes=True, doc=f"Slow analog input AIN{k} (0 to 3.3 V)"),
            Setting(f"io.aout{k}", float, f"ANALOG:PIN AOUT{k},{{}}",
                    f"ANALOG:PIN? AOUT{k}", units="V",
                    doc=f"Slow analog output AOUT{k} (0 to 1.8 V)"),
        ]  # fmt: skip
    for k in range(8):
        settings.append(
            Setting(f"io.led{k}", bool, f"DIG:PIN LED{k},{{}}", f"DIG:PIN? LED{k}",
                    true_false=("1", "0"), doc=f"LED{k}")
        )  # fmt: skip
    for side in "pn":
        for k in range(8):
            pin = f"DIO{k}_{side.upper()}"
            settings += [
                Setting(f"io.dio{k}_{side}_direction", PinDirection,
                        f"DIG:PIN:DIR {{}},{pin}", f"DIG:PIN:DIR? {pin}",
                        doc=f"{pin} direction"),
                Setting(f"io.dio{k}_{side}", bool, f"DIG:PIN {pin},{{}}",
                        f"DIG:PIN? {pin}", true_false=("1", "0"), changes=True,
                        doc=f"{pin} level"),
            ]  # fmt: skip
    return settings


def _pid() -> list[Setting]:
    return [
        Setting("pid.setpoint", float, units="V", source="pid", initial=0.0,
                doc="Setpoint of the input"),
        Setting("pid.p", float, source="pid", initial=0.0,
                doc="Proportional gain (V/V)"),
        Setting("pid.i", float, units="Hz", source="pid", initial=0.0,
                doc="Integral unity-gain frequency (sign: opposite to the plant)"),
        Setting("pid.input", PidInput, source="pid", initial=PidInput.AIN0,
                doc="Input"),
        Setting("pid.output", PidOutput, source="pid", initial=PidOutput.OUT2,
                doc="Output"),
        Setting("pid.min_voltage", float, units="V", source="pid", initial=-1.0,
                doc="Lowest output"),
        Setting("pid.max_voltage", float, units="V", source="pid", initial=1.0,
                doc="Highest output"),
        Setting("pid.rate", float, units="Hz", source="pid", initial=50.0,
                doc="Loop rate"),
        Setting("pid.enabled", bool, source="pid", initial=False,
                doc="Loop running (the output holds its value when stopped)"),
        Setting("pid.ival", float, units="V", source="pid", initial=0.0,
                doc="Integrator (write 0 to reset)"),
        Setting("pid.error", float, units="V", source="pid", changes=True,
                initial=math.nan, doc="Last error: input - setpoint"),
        Setting("pid.input_value", float, units="V", source="pid", changes=True,
                initial=math.nan, doc="Input (read live while the loop is off)"),
        Setting("pid.output_value", float, units="V", source="pid",
                changes=True, initial=math.nan, doc="Last output value"),
        Setting("pid.iterations", int, source="pid", changes=True, initial=0,
                doc="Loop iterations since enabled"),
    ]  # fmt: skip


SETTINGS: dict[str, Setting] = {
    s.name: s for s in (*_scope(), *_asg(1), *_asg(2), *_io(), *_pid())
}

#: Commands (no value): SCPI text, or None for the software PID's.
COMMANDS: dict[str, str | None] = {
    "asg1.start": "SOUR1:TRig:INT",
    "asg2.start": "SOUR2:TRig:INT",
    "asg.start_both": "SOUR:TRig:INT",
    "scope.reset": "ACQ:RST",
    "asg.reset": "GEN:RST",
    "asg.sweep_reset": "SOUR:SWeep:RESET",
    "asg.sweep_pause": "SOUR:SWeep:PAUSE ON",
    "asg.sweep_resume": "SOUR:SWeep:PAUSE OFF",
    "pid.reset_integrator": None,
}
