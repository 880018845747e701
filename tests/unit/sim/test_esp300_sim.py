"""The ESP300 simulator's command set at the wire (pyserial on its pty)."""

import time

import pytest
import serial

from labsky.sim.esp300 import SETTINGS, VERSION


@pytest.fixture
def esp(simulated_lab):
    """A serial port on a simulated ESP300 (no hardware flow control asked)."""
    host = simulated_lab({"stage": {"kind": "esp300"}})
    with serial.Serial(host.endpoints["stage"], 19200, timeout=2) as port:
        port.host = host
        yield port


def ask(port, line, replies=1):
    """Send one command line; return the reply lines, decoded."""
    port.write(line.encode("ascii") + b"\r")
    answers = [port.readline() for _ in range(replies)]
    assert all(a.endswith(b"\r\n") for a in answers), answers
    return [a[:-2].decode("ascii") for a in answers]


def errors(port):
    """Empty the error buffer; return the codes it held."""
    codes = []
    while (code := int(ask(port, "TE?")[0])) != 0:
        codes.append(code)
    return codes


def test_every_axis_setting_answers_its_query(esp):
    for mnemonic in SETTINGS:
        (reply,) = ask(esp, f"1{mnemonic}?")
        if SETTINGS[mnemonic].kind == "word":
            assert reply.endswith("H") and int(reply[:-1], 16) >= 0, mnemonic
        else:
            float(reply)
    assert errors(esp) == []


def test_queries_that_used_to_stay_silent(esp):
    assert ask(esp, "1SN?;1AG?;1VU?;1DP?", 4) == [
        "2",
        "80.000000",
        "100.000000",
        "0.000000",
    ]
    assert ask(esp, "2ID?;VE?", 2) == ["ILS50CC, B3041", VERSION]
    assert errors(esp) == []


def test_wait_for_stop_holds_the_next_command_until_the_axis_stops(esp):
    start = time.monotonic()
    (done,) = ask(esp, "1MO;1VA20;1PA4;1WS0;1MD?")
    assert done == "1"  # answered only once the axis has stopped
    assert time.monotonic() - start >= 4 / 20
    assert ask(esp, "1TP?") == ["4.000000"]
    # with a delay after the stop, in milliseconds
    start = time.monotonic()
    assert ask(esp, "1PR-1;1WS300;1MD?") == ["1"]
    assert time.monotonic() - start >= 1 / 20 + 0.3
    assert errors(esp) == []


def test_define_home_and_units_change_the_numbers_not_the_stage(esp):
    world_axis = esp.host.world.stage_axis(1)
    assert ask(esp, "1MO;1PA2;1WS;1MD?") == ["1"]
    assert ask(esp, "1DH;1TP?;1DH?", 2) == ["0.000000", "0.000000"]
    assert world_axis.position() == pytest.approx(2.0)
    ask(esp, "1DH5", 0)
    assert ask(esp, "1TP?;1SN3;1TP?;1VA?", 3) == [
        "5.000000",
        "5000.000000",  # micrometres
        "20000.000000",
    ]
    assert ask(esp, "1PA6000;1WS;1MD?") == ["1"]  # 6000 um: 1 mm more
    assert world_axis.position() == pytest.approx(3.0)
    assert ask(esp, "1SN?;1SN2;1TP?", 2) == ["3", "6.000000"]
    assert errors(esp) == []


def test_errors_carry_the_manuals_codes_and_messages(esp):
    ask(esp, "1PA1;PA1;4PA1;1PA;1VA200;QQ", 0)
    assert errors(esp) == [113, 37, 9, 38, 110, 6]
    ask(esp, "1MO;1PA30;1PA-30;1QM2;1KP0.5", 0)
    assert errors(esp) == [106, 107, 117]  # QM is protected on ESP stages
    ask(esp, "1PA30", 0)
    code, stamp, message = ask(esp, "TB?")[0].split(", ")
    assert (code, message) == ("106", "POSITIVE SOFTWARE LIMIT DETECTED")
    assert int(stamp) > 0  # servo cycles since power-up
    assert ask(esp, "TB?")[0].endswith(", NO ERROR DETECTED")


def test_home_search_sets_the_preset_position_and_st_aborts_it(esp):
    world_axis = esp.host.world.stage_axis(1)
    ask(esp, "1MO;1PA3;1WS;1SH1.5", 0)
    assert ask(esp, "1OR1;1WS;1TP?") == ["1.500000"]
    assert world_axis.position() == pytest.approx(0.0)  # the home switch
    ask(esp, "1OH1;1PA10;1WS;1OR2", 0)
    ask(esp, "1ST", 0)
    assert errors(esp) == [120]  # homing aborted


def test_moves_to_limits_indexes_and_for_ever(esp):
    world_axis = esp.host.world.stage_axis(2)
    assert ask(esp, "2MO;2VA100;2AC400;2MV+;2WS;2TP?") == ["25.000000"]
    assert ask(esp, "2SL-20;2MV-;2WS;2MD?") == ["1"]
    assert world_axis.position() == pytest.approx(-20.0)  # the software limit
    assert ask(esp, "2ZS0;2MT-;2WS;2MD?") == ["1"]
    assert world_axis.position() == pytest.approx(-25.0)  # the hardware limit
    assert ask(esp, "2PA-24.3;2WS;2MZ+;2WS;2MD?") == ["1"]
    assert world_axis.position() == pytest.approx(-24.0)  # index every 1 mm
    # software limits off: the limit switch stops it
    assert ask(esp, "2PA-40;2WS;2MD?") == ["1"]
    assert errors(esp) == [205]  # negative hardware limit
    assert world_axis.position() == pytest.approx(-25.0)


def test_status_characters_follow_motion_and_power(esp):
    assert ask(esp, "TS;TX", 2) == ["@", "@"]
    replies = ask(esp, "1MO;1VA5;1PA2;TS;TX;1ST;TS", 3)
    assert [ord(c) for c in replies] == [0x51, 0x50, 0x50]  # moving, power on
    registers = ask(esp, "PH")[0].split(", ")
    assert all(r.endswith("H") for r in registers)


def test_a_stored_program_runs_while_the_host_keeps_talking(esp):
    world_axis = esp.host.world.stage_axis(3)
    ask(esp, "3MO;3VA50", 0)
    for line in ("2EP", "1DL", "3PR1", "3WS", "1JL2", "QP"):
        esp.write(line.encode() + b"\r")
    assert ask(esp, "2LP", 4) == ["1DL", "3PR1", "3WS", "1JL2"]
    assert int(ask(esp, "XM?")[0]) == 65536 - len("1DL3PR13WS1JL2") - 4
    ask(esp, "2EX", 0)
    assert ask(esp, "VE?") == [VERSION]  # answered while the program runs
    assert ord(ask(esp, "TX")[0]) & 1  # a program is executing
    deadline = time.monotonic() + 2
    while ord(ask(esp, "TX")[0]) & 1:
        assert time.monotonic() < deadline, "the program did not end"
        ask(esp, "WT20", 0)  # the controller waits, so the next TX comes later
    assert world_axis.position() == pytest.approx(3.0)  # 1 + 2 jumps back
    ask(esp, "2XX;2EX", 0)
    assert errors(esp) == [35]  # erased


def test_a_group_moves_its_axes_along_a_line(esp):
    ask(esp, "1MO;2MO;1HN1,2;1HO;1HV10;1HA100", 0)
    start = time.monotonic()
    assert ask(esp, "1HL3,4;1HW;1HP?") == ["3.000000, 4.000000"]
    assert time.monotonic() - start >= 5 / 10  # 5 mm of path at 10 mm/s
    assert ask(esp, "1HZ?;HB?", 2) == ["1, 2", "1"]
    ask(esp, "1HN1,3;2HN1,3;3HN1,2", 0)
    assert errors(esp) == [16, 18, 14]
