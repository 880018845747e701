"""Client libraries nobody here wrote, pointed at the serial simulators.

Each talks to a simulator over its pseudo-terminal exactly as it would talk
to the instrument: pymeasure's and InstrumentKit's ESP300/ESP301 drivers,
the `elliptec` and `thorlabs_elliptec` packages for the ELL14 bus, and
pyvisa with the manuals' commands for the 1830-C and the MaiTai (pymeasure
has no driver for either).
"""

import threading
import time
import warnings

import pytest

from labsky.sim.ell14 import PULSES_PER_DEG

LASER_ON = {"laser": {"emission": True, "shutter_open": True, "warmup": 0}}


def visa(endpoint, **settings):
    """A pyvisa (pyvisa-py) session on a serial port."""
    import pyvisa

    manager = pyvisa.ResourceManager("@py")
    return manager.open_resource(f"ASRL{endpoint}::INSTR", **settings)


# -- Newport ESP300 -------------------------------------------------------------


@pytest.fixture
def stage(simulated_lab):
    return simulated_lab({"stage": {"kind": "esp300"}})


def test_pymeasure_esp300_axes_units_moves_waits_and_errors(stage):
    from pymeasure.instruments.newport import ESP300
    from pymeasure.instruments.newport.esp300 import AxisError, GeneralError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "SCPI unknown"
        esp = ESP300(
            f"ASRL{stage.endpoints['stage']}::INSTR",
            asrl={"baud_rate": 19200},  # no hardware flow control asked
            timeout=3000,
        )
    try:
        esp.clear_errors()
        # (ESP300.axes and .enable() read every attribute, `id` too, whose
        # *IDN? no ESP300 answers: they time out on the instrument as well.)
        assert esp.x.units == "millimeter"
        assert esp.x.enabled is False
        esp.x.enable()
        esp.y.enable()
        assert esp.y.enabled is True
        start = time.monotonic()
        esp.x.position = 4
        esp.x.wait_for_stop()  # 1WS0, then MD? answered once stopped
        assert time.monotonic() - start >= 4 / 20
        assert esp.x.motion_done is True
        assert esp.x.position == pytest.approx(4.0)
        assert stage.world.stage_axis(1).position() == pytest.approx(4.0)
        esp.x.units = "micrometer"
        assert esp.x.units == "micrometer"
        assert esp.x.position == pytest.approx(4000.0)
        esp.x.units = "millimeter"
        esp.x.zero()  # DH: here is 0
        assert esp.x.position == 0.0
        esp.x.define_position(2.5)  # DH2.5
        assert esp.x.position == pytest.approx(2.5)
        esp.x.home()  # OR1: to the home switch, position = home preset
        esp.x.wait_for_stop()
        assert esp.x.position == 0.0
        assert stage.world.stage_axis(1).position() == pytest.approx(0.0)
        assert (esp.x.left_limit, esp.x.right_limit) == (-25.0, 25.0)
        esp.y.position = 30  # beyond the right software limit
        esp.write("QQ")
        errors = esp.errors
        assert [type(e) for e in errors] == [AxisError, GeneralError]
        assert "POSITIVE SOFTWARE LIMIT DETECTED" in str(errors[0])
        assert errors[0].axis == "2"
        assert errors[1].message == "COMMAND DOES NOT EXIST"
        esp.x.disable()
        assert esp.x.enabled is False
    finally:
        esp.adapter.close()


def test_instrumentkit_esp301_axes_units_moves_waits_and_errors(stage):
    # installed by .ci/install-system-packages (its pins do not build on 3.11)
    import instruments as ik
    import quantities as pq
    from instruments.newport.errors import NewportError

    esp = ik.newport.NewportESP301.open_serial(
        stage.endpoints["stage"], baud=19200, timeout=3
    )
    try:
        axis = esp.axis[0]  # creating it asks 1SN? (it used to time out)
        assert axis.units == pq.mm
        assert float(axis.max_velocity) == 100.0  # 1VU?
        assert float(axis.deceleration) == 80.0  # 1AG?
        assert float(axis.desired_position) == 0.0  # 1DP?
        axis.enable()
        axis.velocity = 10
        assert float(axis.velocity) == 10.0
        axis.move(2.5)
        axis.wait_for_stop()  # 1WS: the TB? behind it waits for the stop
        assert axis.is_motion_done
        assert float(axis.position) == pytest.approx(2.5)
        axis.move(-1, absolute=False, wait=True, block=True)  # PR, WP, MD?
        assert float(axis.position) == pytest.approx(1.5)
        axis.home = 0  # 1DH0: define home
        assert float(axis.position) == 0.0
        assert stage.world.stage_axis(1).position() == pytest.approx(1.5)
        axis.units = pq.um
        assert float(axis.position) == 0.0
        axis.move(500)  # micrometres
        axis.wait_for_motion(max_wait=5)
        assert stage.world.stage_axis(1).position() == pytest.approx(2.0)
        with pytest.raises(NewportError) as info:
            axis.move(100_000)  # 100 mm: beyond the software limit
        assert info.value.errcode == 6 and info.value.axis == 1
    finally:
        esp._file._conn.close()  # its own close() calls a pyserial 2 method


# -- Thorlabs ELL14 ---------------------------------------------------------------


@pytest.fixture
def bus(simulated_lab):
    return simulated_lab(
        {"bus": {"kind": "ell14", "params": {"addresses": ["0", "2", "3"]}}}
    )


def test_elliptec_package_info_motor_info_moves_jog_home_and_addresses(bus):
    import elliptec

    controller = elliptec.Controller(bus.endpoints["bus"], timeout=0.6, debug=False)
    try:
        rotator = elliptec.Rotator(controller, address="2", debug=False)
        assert rotator.info["Motor Type"] == 14
        assert rotator.info["Serial No."] == "11400501"
        assert (rotator.range, rotator.pulse_per_rev) == (360, 143360)
        for request in ("motor_1_info", "motor_2_info"):
            motor = rotator.get(request)
            assert motor["Loop"] == "1" and motor["Motor"] == "1"
            assert 70e3 < motor["Forward frequency"] < 120e3
        assert rotator.set_angle(45) == pytest.approx(45, abs=0.01)
        assert bus.world.rotator("2").position() == pytest.approx(45, abs=0.01)
        assert rotator.get_angle() == pytest.approx(45, abs=0.01)
        rotator.set_jog_step(10)
        assert rotator.get_jog_step() == pytest.approx(10, abs=0.01)
        assert rotator.jog("forward") == pytest.approx(55, abs=0.01)
        assert rotator.jog("backward") == pytest.approx(45, abs=0.01)
        assert rotator.shift_angle(-15) == pytest.approx(30, abs=0.01)
        rotator.home()
        assert rotator.get_angle() == 0.0
        assert bus.world.rotator("2").position() == pytest.approx(0, abs=0.01)
        other = elliptec.Rotator(controller, address="3", debug=False)
        other.change_address("5")
        assert other.address == "5"
        assert other.set_angle(90) == pytest.approx(90, abs=0.01)
        assert bus.world.rotator("3").position() == pytest.approx(90, abs=0.01)
        found = elliptec.scan_for_devices(controller, 0, 5, debug=False)
        assert [d["info"]["Address"] for d in found] == ["0", "2", "5"]
    finally:
        controller.close_connection()


def test_thorlabs_elliptec_several_addresses_on_one_port(bus):
    from thorlabs_elliptec import ELLx

    first = ELLx(bus.endpoints["bus"], device_id=0)
    second = ELLx(first, device_id=2)  # multi-drop: shares the port
    devices = (first, second)
    try:
        assert [d.model_number for d in devices] == ["ELL14/M", "ELL14/M"]
        assert [d.serial_number for d in devices] == ["11400500", "11400501"]
        assert second.travel == 360 and second.units == "°"
        second.move_absolute(90, blocking=True)
        first.move_relative(30, blocking=True)
        assert bus.world.rotator("2").position() == pytest.approx(90, abs=0.01)
        assert bus.world.rotator("0").position() == pytest.approx(30, abs=0.01)
        second.home(blocking=True)
        assert bus.world.rotator("2").position() == pytest.approx(0, abs=0.01)
        first.move_absolute_raw(round(120 * PULSES_PER_DEG), blocking=True)
        assert bus.world.rotator("0").position() == pytest.approx(120, abs=0.01)
        assert str(first.status).startswith("OK")
    finally:
        for device in devices:
            device.close()  # stops its polling thread, then closes the port
        for device in devices:
            device._thread.join(5)


# -- Newport 1830-C ------------------------------------------------------------------


def test_1830c_through_pyvisa_with_the_manuals_commands(simulated_lab):
    host = simulated_lab({"meter": {"kind": "newport1830c"}}, world=LASER_ON)
    meter = visa(
        host.endpoints["meter"],
        baud_rate=9600,
        read_termination="\n",
        write_termination="\n",
        timeout=2000,
    )
    try:
        assert meter.query("E0") == "E0"  # echo is on at power-up
        assert meter.query("W?") == "0800"
        meter.write("A1")
        assert meter.query("A?") == "1"
        watts = float(meter.query("D?"))
        assert watts == pytest.approx(0.025, rel=0.02)
        assert meter.query("D?").endswith("E-3")  # engineering notation
        meter.write("U2")
        assert float(meter.query("D?")) == pytest.approx(14.0, abs=0.1)  # dBm
        meter.write("U1")
        meter.write("G0")  # hold the reading
        held = meter.query("D?")
        host["meter"].world.laser.shutter_open = False
        assert meter.query("D?") == held
        meter.write("G1")
        assert float(meter.query("D?")) < 1e-6  # the shutter is closed now
        assert [meter.query(q) for q in ("B?", "K?", "F?", "R?")] == [
            "1",
            "1",
            "3",
            "0",
        ]
        meter.write("B0")
        meter.write("K0")
        meter.write("CS")
        assert [meter.query(q) for q in ("B?", "K?")] == ["0", "0"]
        assert meter.query("X?") == "ERR"
    finally:
        meter.close()


# -- Spectra-Physics MaiTai ----------------------------------------------------------


def test_maitai_through_pyvisa_with_the_manuals_commands(simulated_lab):
    host = simulated_lab(
        {"laser": {"kind": "maitai"}},
        world={"laser": {"warmup": 0, "tune_rate": 200}},
    )
    laser = visa(
        host.endpoints["laser"],
        baud_rate=115200,
        read_termination="\n",
        write_termination="\n",
        timeout=2000,
    )
    try:
        assert laser.query("*IDN?").startswith("Spectra Physics,MaiTai,")
        assert laser.query("READ:PCTWarmedup?") == "100.00%"
        laser.write("ON")
        assert int(laser.query("*STB?")) & 1  # emission
        assert [laser.query(q) for q in ("WAVelength:MIN?", "wav:max?")] == [
            "690nm",
            "1040nm",
        ]
        laser.write("WAVelength 900")
        assert laser.query("WAV?") == "900nm"  # the target at once
        deadline = time.monotonic() + 3
        while laser.query("READ:WAV?") != "900nm":  # the laser tunes over time
            assert time.monotonic() < deadline, "never reached 900 nm"
        assert laser.query("SHUT?") == "0"
        laser.write("SHUTter 1")
        assert laser.query("SHUTTER?") == "1"
        assert laser.query("READ:POW?").endswith("W")
        assert laser.query("MODE?") == "POW"
        laser.write("MODE PCUR")
        assert laser.query("MODE?") == "CUR"
        laser.write("PLASer:POWer 10.5")
        assert laser.query("PLAS:POW?") == "10.50W"
        laser.write("PLAS:CURR 80")
        assert laser.query("PLASER:CURRENT?") == "80.0%"
        assert laser.query("READ:PLAS:POW?") == "10.50W"
        laser.write("SAVe")
        simulator = host["laser"]
        bitten = threading.Event()
        bite = simulator._bite
        simulator._bite = lambda: (bite(), bitten.set())
        laser.write("TIMer:WATChdog 0.2")
        assert laser.query("TIM:WATC?") == "0.2"
        assert bitten.wait(2)  # 0.2 s without a command: emission stops
        assert int(laser.query("*STB?")) & 1 == 0
    finally:
        laser.close()
