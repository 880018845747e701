"""The simulator against the vendor's own command list (2024.3, OS 2.05).

A client of our own walks every header pattern the vendor's SCPI server
registers (tests/data/redpitaya/scpi-commands-2024.3.txt), in every form a
client may write it, and checks the simulator knows it: whatever else it
answers, never -113 "Undefined header".
"""

import pytest

from tests.unit.sim.scpi_client import (
    ScpiClient,
    headers,
    is_core,
    vendor_patterns,
)


@pytest.fixture
def connect(simulated_lab):
    clients: list[ScpiClient] = []

    def make(**params) -> ScpiClient:
        host = simulated_lab({"rp": {"kind": "redpitaya", "params": params}})
        client = ScpiClient(host.endpoints["rp"])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_the_list_is_the_vendors_2024_3_table():
    patterns = vendor_patterns()
    assert len(patterns) == 313
    assert sum(is_core(p) for p in patterns) == 203
    assert patterns[0] == "*CLS" and patterns[-1] == "LCR:EXT:MODULE?"
    assert headers("SOUR#:FREQ:FIX:Direct") == [
        "SOUR1:FREQ:FIX:D",
        "SOUR1:FREQ:FIX:DIRECT",
        "SOUR2:FREQ:FIX:D",
        "SOUR2:FREQ:FIX:DIRECT",
        "SOUR:FREQ:FIX:D",
        "SOUR:FREQ:FIX:DIRECT",
    ]
    assert "SYST:ERR?" in headers("SYSTem:ERRor[:NEXT]?")


def test_every_header_of_the_vendors_list_is_known(connect):
    rp = connect()
    undefined = []
    for pattern in vendor_patterns():
        for header in headers(pattern):
            # a query that fails sends nothing: *OPC? ends every exchange
            reply = rp.query(f"{header};*OPC?")
            assert reply is not None and reply.endswith("1"), (header, reply)
            if -113 in rp.codes():
                undefined.append(header)
    assert undefined == []


def test_the_help_lists_the_vendors_table_in_its_order(connect):
    rp = connect()
    rp.send("SYST:HELP?")
    text = rp.line(timeout=5)
    assert text is not None
    assert text.split("\n") == vendor_patterns()


def test_scpi_long_forms_are_accepted_unless_the_simulator_is_strict(connect):
    lenient, strict = connect(), connect(long_forms=False)
    commands = (
        "SOURce1:FREQuency:FIXed 2500",
        "SOURCE1:VOLTAGE:OFFSET 0.1",
        "OUTP1:STATE ON",
        "ACQuire:DECimation 8",
        "ACQ:TRig:LEVel 0.2",
    )
    for rp in (lenient, strict):
        rp.send(";:".join(commands))
    assert lenient.codes() == []
    assert lenient.query("SOUR1:FREQ:FIX?;:SOUR1:VOLT:OFFS?;:OUTPUT1:STATE?") == (
        "2500;0.1;1"
    )
    assert lenient.query("ACQ:DEC?;:ACQ:TRIG:LEV?") == "8;0.2"
    # the vendor's parser only knows the forms its patterns spell
    assert strict.codes() == [-113] * len(commands)
    strict.send("sour1:freq:fix 2500;:ACQ:TR:LEV 0.2;:SOUR1:SWEEP:TIME 1000")
    assert strict.codes() == []


def test_what_a_stemlab_125_14_lacks_answers_command_not_supported(connect):
    rp = connect(split_trigger=False)
    for command in (
        "ACQ:SOUR1:COUP AC",
        "TRig:EXT:LEV 1",
        "SOUR1:LOAD L50",
        "RP:PLL:ENable ON",
        "ACQ:SPLIT:TRig ON",
        "ACQ:DEC:CH2 8",
        "ACQ:START:CH1",
    ):
        rp.send(command)
        [error] = rp.errors()
        assert error.startswith("9524,") and "Command not supported" in error
    # the split-trigger state query still answers, as the vendor's server does
    assert rp.query("ACQ:TRig:STAT:CH1?") == "WAIT"
    assert rp.codes() == [9524]
    # queries of options it lacks fail: nothing comes back
    assert rp.query("SOUR1:LOAD?", timeout=0.3) is None
    assert rp.codes() == [9524]


def test_the_peripheral_buses_and_the_lcr_meter_answer_as_absent(connect):
    rp = connect()
    assert rp.query("LCR:EXT:MODULE?;:CAN:FPGA?") == "0;OFF"
    rp.send("UART:INIT;:SPI:INIT;:I2C:DEV80 1;:CAN1:START;:LCR:START")
    codes = rp.codes()
    assert codes == [9524, 9524, 9524, 9524, 9523]


def test_errors_the_server_logs_itself_carry_its_base_code(connect):
    rp = connect()
    rp.send("ACQ:DEC 3")  # not a power of two
    [error] = rp.errors()
    assert error == '8891,"*ACQ:DEC Parameter decimation is invalid."'
    rp.send("SOUR3:VOLT 0.1")  # no third generator
    assert rp.errors() == ['9500,"*SOUR3:VOLT Invalid channel number"']
    assert rp.query("SYST:COMM:TCPIP:CONTROL?", timeout=0.3) is None
    assert rp.errors() == ['-200,"Execution error"']


def test_status_questionable_registers_per_connection(connect):
    rp = connect()
    assert rp.query("STAT:QUES?;:STAT:QUES:EVEN?;:STAT:QUES:ENAB?") == "0;0;0"
    rp.send("STATus:QUEStionable:ENABle 5")
    assert rp.query("STATUS:QUESTIONABLE:ENABLE?") == "5"
    rp.send("STAT:PRES")
    assert rp.query("STAT:QUES:ENAB?") == "0"


def test_the_clock_is_set_as_os_2_05_takes_it(connect):
    rp = connect()
    rp.send('SYST:TIME "16:12:45";:SYST:DATE "2023-04-04"')
    assert rp.codes() == []
    time_of_day, date = (rp.query("SYST:TIME?;:SYST:DATE?") or "").split(";")
    assert time_of_day[:5] == "16:12" and date == "2023-04-04"
    # the comma form was OS 2.00-18 to 2.00-36: 2.05 reads "16" and no minutes
    rp.send("SYST:TIME 16,12,45")
    assert rp.errors() == [
        '8800,"*SYST:TIME Invalid value for the MINUTES. Parameter must be '
        'between 0 and 59."'
    ]


def test_the_arbitrary_table_is_formatted_like_a_trace(connect):
    rp = connect()
    table = rp.query("SOUR1:TRAC:DATA:DATA?")
    assert table == "{" + ",".join(["0"] * 16384) + "}"  # the API starts zeroed
    rp.send("SOUR1:TRAC:DATA:DATA 1,0.5,-0.25,0")
    assert rp.query("SOUR1:TRAC:DATA:DATA?") == "{1,0.5,-0.25,0}"
    trace = rp.query("ACQ:SOUR1:DATA?")
    assert trace is not None and trace.startswith("{") and trace.endswith("}")
    rp.send("ACQ:DATA:FORMAT BIN")
    block = rp.block("SOUR1:TRAC:DATA:DATA?")
    assert block == b"\x3f\x80\x00\x00\x3f\x00\x00\x00\xbe\x80\x00\x00" + bytes(4)
