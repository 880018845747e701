"""Instruments declared in YAML: tables checked at load, behaving like drivers."""

import math
import textwrap

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call
from bluesky.utils import FailedStatus

from labsky.config import ConfigError, load_devices
from labsky.devices.declarative import (
    ScpiInstrumentParams,
    SerialInstrumentParams,
    scpi_instrument,
    serial_instrument,
)
from labsky.devices.elliptec import Ell14, ElliptecBus
from labsky.devices.newport import Newport1830C
from labsky.kind_registry import device_kinds
from tests.conftest import REPO

INSTRUMENTS = REPO / "devices" / "instruments"
LASER_ON = {"laser": {"emission": True, "shutter_open": True, "warmup": 0}}


async def trigger(device):
    await device.trigger()


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_a_mistake_in_a_table_fails_at_load_with_the_tables_file_and_line(tmp_path):
    write(
        tmp_path / "thing.yaml",
        """\
        instrument: Thing
        signals:
          level:
            type: flaot
            query: "L?"
        """,
    )
    write(
        tmp_path / "lab.yaml",
        """\
        devices:
          thing:
            kind: serial
            params: {port: /dev/ttyUSB0, table: thing.yaml}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_devices(tmp_path / "lab.yaml", device_kinds())
    message = str(info.value)
    assert f"{tmp_path / 'lab.yaml'}:4: devices.thing.params" in message
    assert f"{tmp_path / 'thing.yaml'}:4: signals.level.type" in message


@pytest.mark.parametrize(
    ("signal", "problem"),
    [
        ("{type: enum, query: 'F?'}", "an enum signal needs `choices`"),
        ("{type: float, set: 'X {value}'}", "a signal in readings needs a `query`"),
        ("{type: float, query: 'X?', parse: {regex: '('}}", "bad regular expression"),
        # Python only warns of `[[` (its meaning changes in a future Python)
        ("{type: float, query: 'X?', parse: {regex: '[[0-9]'}}", "possible nested set"),
        ("{type: float, query: 'X?', limits: [5, 1]}", "limits are [low, high]"),
    ],
)
def test_inconsistent_signals_are_refused(tmp_path, signal, problem):
    write(tmp_path / "t.yaml", f"instrument: T\nsignals:\n  x: {signal}\n")
    with pytest.raises(ValueError, match="command table is wrong") as info:
        SerialInstrumentParams.model_validate(
            {"port": "/dev/null", "table": "t.yaml"}, context={"base_dir": tmp_path}
        )
    assert problem.lower() in str(info.value).lower() and "t.yaml:3" in str(info.value)


def test_the_yaml_1830c_reads_like_the_python_driver(
    simulated_lab, run_engine, connect_devices
):
    host = simulated_lab(
        {
            "bus": {"kind": "ell14"},
            "python": {"kind": "newport1830c"},
            "yaml": {"kind": "newport1830c"},
        },
        world=LASER_ON,
    )
    params = SerialInstrumentParams.model_validate(
        {
            "port": host.endpoints["yaml"],
            "table": str(INSTRUMENTS / "newport-1830c.yaml"),
        }
    )
    declared = serial_instrument(params)
    declared.set_name("declared")
    assert declared.link.line.answers_every_query  # as the driver's link
    driver = Newport1830C(host.endpoints["python"], name="driver")
    rotator = Ell14(ElliptecBus(host.endpoints["bus"]), "2", name="rotator")

    connect_devices(declared, driver, rotator)
    assert set(call(declared.read_configuration())) == {
        "declared-wavelength",
        "declared-attenuator",
        "declared-filter",
    }
    run_engine(bps.mv(declared.attenuator, True, driver.attenuator, True))
    rows = []
    run_engine(
        bp.scan([declared, driver], rotator, 0, 90, 4),
        lambda name, doc: rows.append(doc["data"]) if name == "event" else None,
    )
    for row in rows:
        assert row["declared-power"] == pytest.approx(
            row["driver-power"], rel=0.02, abs=1e-6
        )
    # saturation: both read NaN
    run_engine(bps.mv(declared.attenuator, False, driver.attenuator, False, rotator, 0))
    call(trigger(driver))
    assert math.isnan(call(declared.power.get_value()))
    assert math.isnan(call(driver.power.get_value()))
    # the same limits, refused before anything is sent
    for device in (declared, driver):
        with pytest.raises(FailedStatus):
            run_engine(bps.mv(device.wavelength, 1200))
    run_engine(bps.mv(declared.filter, "slow"))
    assert call(declared.filter.get_value()) == "slow"


def test_the_pyvisa_sim_power_supply_is_a_movable(run_engine, connect_devices):
    params = ScpiInstrumentParams.model_validate(
        {
            "resource": "ASRL1::INSTR",
            "visa_library": "instruments/sim-psu.visa.yaml@sim",
            "table": "instruments/sim-psu.yaml",
        },
        context={"base_dir": REPO / "devices"},
    )
    psu = scpi_instrument(params)
    psu.set_name("psu")
    connect_devices(psu)
    voltages = []
    run_engine(
        bp.scan([], psu, 0, 12, 4),
        lambda name, doc: (
            voltages.append(doc["data"]["psu"]) if name == "event" else None
        ),
    )
    assert voltages == [0.0, 4.0, 8.0, 12.0]
    run_engine(bps.mv(psu.output, True))
    assert call(psu.output.get_value()) is True
    with pytest.raises(FailedStatus) as info:
        run_engine(bps.mv(psu, 31))
    assert "psu.voltage: 31 V is outside the limits [0, 30]" in str(info.value)
