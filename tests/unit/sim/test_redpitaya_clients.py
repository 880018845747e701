"""Third-party clients drive the simulated board: pyvisa and pymeasure.

pyvisa-py's `TCPIP::host::port::SOCKET` resource and pymeasure's
`RedPitayaScpi`, used as their documentation says, against the simulator's
TCP port. pymeasure has no sweep, split-trigger or deep-memory API: those
go through its generic `write`/`ask`, as a pymeasure user would send them.
"""

import datetime

import numpy as np
import pytest
import pyvisa

pymeasure_redpitaya = pytest.importorskip("pymeasure.instruments.redpitaya")

DIRECT = {"inputs": {"in1": {"source": "out1"}, "in2": {"source": "out2"}}}


@pytest.fixture
def port(simulated_lab):
    host = simulated_lab({"rp": {"kind": "redpitaya", "params": {"bench": DIRECT}}})
    return int(host.endpoints["rp"].rsplit(":", 1)[1])


@pytest.fixture
def visa(port):
    manager = pyvisa.ResourceManager("@py")
    inst = manager.open_resource(
        f"TCPIP::127.0.0.1::{port}::SOCKET",
        read_termination="\r\n",
        write_termination="\r\n",
        timeout=3000,
    )
    yield inst
    inst.close()
    manager.close()


@pytest.fixture
def pymeasure_rp(port):
    inst = pymeasure_redpitaya.RedPitayaScpi(ip_address="127.0.0.1", port=port)
    yield inst
    inst.adapter.close()


def visa_wait(inst, query: str, expected: str) -> None:
    for _ in range(5000):
        if inst.query(query) == expected:
            return
    raise AssertionError(f"{query} never answered {expected}")


def test_pyvisa_drives_acquisition_generation_and_errors(visa):
    assert visa.query("*IDN?").startswith("REDPITAYA,INSTR,")
    visa.write("GEN:RST;:SOUR1:FUNC SQUARE;:SOUR1:FREQ:FIX 250000;:SOUR1:VOLT 0.3")
    visa.write("OUTPUT1:STATE ON;:SOUR1:TRig:INT")
    assert visa.query("SOUR1:FUNC?;:SOUR1:FREQ:FIX?;:OUTPUT1:STATE?") == (
        "SQUARE;250000;1"
    )
    visa.write("ACQ:RST;:ACQ:DEC 8;:ACQ:DATA:FORMAT BIN;:ACQ:START;:ACQ:TRig NOW")
    visa_wait(visa, "ACQ:TRig:FILL?", "1")
    volts = visa.query_binary_values(
        "ACQ:SOUR1:DATA?", datatype="f", is_big_endian=True, container=np.array
    )
    assert volts.shape == (16384,)
    assert np.percentile(volts, 95) == pytest.approx(0.3, abs=0.03)
    visa.write("ACQ:DATA:FORMAT ASCII")
    text = visa.query("ACQ:SOUR1:DATA:Old:N? 100")
    assert len(text.strip("{}").split(",")) == 100
    visa.write("SOUR1:VOLT 2")  # out of the DAC's range
    assert int(visa.query("*STB?")) & 4
    assert visa.query("SYST:ERR?").startswith("9506,")


def test_pyvisa_runs_a_sweep_a_split_trigger_and_a_deep_trace(visa):
    visa.write("SOUR1:FUNC SINE;:SOUR1:VOLT 0.5;:OUTPUT1:STATE ON;:SOUR1:TRig:INT")
    visa.write(
        "SOUR1:SWeep:FREQ:START 1000;:SOUR1:SWeep:FREQ:STOP 2000;"
        ":SOUR1:SWeep:TIME 1000000;:SOUR1:SWeep:STATE ON"
    )
    assert visa.query("SOUR1:SWeep:STATE?") == "ON"
    assert 1000 <= float(visa.query("SOUR1:FREQ:FIX?")) <= 2000
    visa.write("SOUR1:SWeep:STATE OFF")
    # split trigger: IN2 (OUT2, DC 0.4 V) fires at once, IN1 on its own edge
    visa.write("SOUR2:FUNC DC;:SOUR2:VOLT 0;:SOUR2:VOLT:OFFS 0.4;:OUTPUT2:STATE ON")
    visa.write("SOUR2:TRig:INT;:ACQ:RST;:ACQ:SPLIT:TRig ON")
    visa.write("ACQ:DEC:Factor:CH1 4;:ACQ:DEC:Factor:CH2 17;:ACQ:TRig:LEV:CH1 0.2")
    visa.write("ACQ:START:CH1;:ACQ:START:CH2;:ACQ:TRig:CH1 CH1_PE;:ACQ:TRig:CH2 NOW")
    for channel in (1, 2):
        visa_wait(visa, f"ACQ:TRig:STAT:CH{channel}?", "TD")
        visa_wait(visa, f"ACQ:TRig:FILL:CH{channel}?", "1")
    visa.write("ACQ:DATA:FORMAT BIN")
    ch1 = visa.query_binary_values(
        "ACQ:SOUR1:DATA:TRig? 100,POST_TRIG",
        datatype="f",
        is_big_endian=True,
        container=np.array,
    )
    assert ch1.shape == (101,) and ch1[0] == pytest.approx(0.2, abs=0.05)
    assert visa.query("ACQ:DEC:Factor:CH2?") == "17"
    # deep memory: 64 Ki samples of IN2 from the trigger
    visa.write("ACQ:SPLIT:TRig OFF;:ACQ:RST;:ACQ:DATA:FORMAT BIN")
    start = int(visa.query("ACQ:AXI:START?"))
    visa.write(f"ACQ:AXI:SOUR2:SET:Buffer {start},{2 * 65536}")
    visa.write("ACQ:AXI:SOUR2:Trig:Dly 65536;:ACQ:AXI:SOUR2:ENable ON")
    visa.write("ACQ:START;:ACQ:TRig NOW")
    visa_wait(visa, "ACQ:AXI:SOUR2:Trig:Fill?", "1")
    position = int(visa.query("ACQ:AXI:SOUR2:Trig:Pos?"))
    deep = visa.query_binary_values(
        f"ACQ:AXI:SOUR2:DATA:Start:N? {position},65536",
        datatype="f",
        is_big_endian=True,
        container=np.array,
    )
    assert deep.shape == (65536,)
    assert np.mean(deep) == pytest.approx(0.4, abs=0.005)
    assert visa.query("SYST:ERR?") == '0,"No error"'


def test_pymeasure_redpitaya_scpi_drives_the_simulator(pymeasure_rp):
    rp = pymeasure_rp
    assert rp.id.startswith("REDPITAYA,INSTR,")
    assert rp.board_name == "STEMlab 125-14 v1.0"
    rp.acquisition_reset()
    rp.decimation = 64
    assert rp.decimation == 64
    rp.average_skipped_samples = False
    assert rp.average_skipped_samples is False
    rp.acq_units = "VOLTS"
    assert rp.acq_units == "VOLTS" and rp.buffer_length == 16384
    rp.acq_format = "ASCII"
    rp.acq_trigger_delay_samples = 100
    assert rp.acq_trigger_delay_samples == 100
    # pymeasure converts at 8 ns a sample whatever the decimation; the board
    # counts decimated samples (100 x 64 x 8 ns)
    assert rp.acq_trigger_delay_ns == 800
    assert rp.values("ACQ:TRig:DLY:NS?") == [51200]
    rp.acq_trigger_level = 0.25
    assert rp.acq_trigger_level == pytest.approx(0.25)
    rp.analog_in[1].gain = "LV"
    assert rp.analog_in[1].gain == "LV"
    # OUT1 drives IN1: a 100 kHz sine through the generator's SCPI commands
    rp.write("SOUR1:FUNC SINE;:SOUR1:FREQ:FIX 100000;:SOUR1:VOLT 0.4")
    rp.write("OUTPUT1:STATE ON;:SOUR1:TRig:INT")
    rp.acquisition_start()
    rp.acq_trigger_source = "CH1_PE"
    for _ in range(5000):
        if rp.acq_trigger_status and rp.acq_buffer_filled:
            break
    assert rp.acq_trigger_status and rp.acq_buffer_filled
    assert 0 <= rp.acq_trigger_position < 16384
    data = rp.analog_in[1].get_data(npts=16384, format="ASCII")
    assert data.shape == (16384,)
    after = data[8192 - 100 :]  # armed at once: only the trigger's side is recent
    step = 0.4 * 2 * np.pi * 1e5 * 64 / 125e6  # the sine's steepest step
    assert 0.25 <= after[0] < 0.25 + step and after[1] > after[0]
    assert np.std(after) * np.sqrt(2) == pytest.approx(0.4, rel=0.05)
    # slow I/O: AOUT0 is looped back to AIN1 on the simulated bench
    rp.analog_out_slow[0].voltage = 1.2
    assert rp.analog_in_slow[1].voltage == pytest.approx(1.2, abs=0.02)
    rp.dioN[2].direction_in = False
    rp.dioN[2].enabled = True
    assert rp.dioN[2].enabled is True and rp.dioN[2].direction_in is False
    rp.led[3].enabled = True
    assert rp.led[3].enabled is True
    assert rp.ask("SYST:ERR?").strip() == '0,"No error"'


def test_pymeasure_sends_the_new_modes_through_its_generic_api(pymeasure_rp):
    rp = pymeasure_rp
    rp.write("SOUR2:SWeep:FREQ:START 500;:SOUR2:SWeep:FREQ:STOP 5000")
    rp.write("SOUR2:SWeep:MODE LOG;:SOUR2:SWeep:DIR UP_DOWN;:SOUR2:SWeep:TIME 20000")
    reply = rp.values("SOUR2:SWeep:FREQ:START?;:SOUR2:SWeep:FREQ:STOP?", separator=";")
    assert reply == [500, 5000]
    assert rp.ask("SOUR2:SWeep:MODE?;:SOUR2:SWeep:DIR?").strip() == "LOG;UP_DOWN"
    rp.write("ACQ:SPLIT:TRig ON")
    assert rp.values("ACQ:SPLIT:TRig?") == [1]
    region = rp.values("ACQ:AXI:START?;:ACQ:AXI:SIZE?", separator=";")
    assert region == [0x1000000, 0x200000]
    assert rp.ask("SYST:ERR?").strip() == '0,"No error"'


def test_pymeasures_clock_setter_uses_the_os_2_00_form_a_2_05_board_refuses(
    pymeasure_rp,
):
    rp = pymeasure_rp
    rp.time = datetime.time(16, 12, 45)  # sends SYST:TIME 16,12,45
    assert (
        rp.ask("SYST:ERR?")
        .strip()
        .startswith('8800,"*SYST:TIME Invalid value for the MINUTES.')
    )
    rp.write('SYST:TIME "16:12:45"')  # the 2.05 form
    assert rp.ask("SYST:TIME?").strip()[:5] == "16:12"
