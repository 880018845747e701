"""The ELL14 simulator's command set at the wire (pyserial on its pty)."""

import time

import pytest
import serial

from labsky.sim.ell14 import CLOCK, PULSES_PER_DEG, from_hex, to_hex


@pytest.fixture
def bus(simulated_lab):
    """A serial port on a bus of mounts at addresses 1, 2 and 3."""
    host = simulated_lab(
        {
            "bus": {
                "kind": "ell14",
                "params": {"addresses": ["1", "2", "3"], "optimize_time": 0.3},
            }
        }
    )
    with serial.Serial(host.endpoints["bus"], 9600, timeout=2) as port:
        port.host = host
        yield port


def ask(port, command, replies=1):
    port.write(command.encode("ascii"))
    answers = [port.readline() for _ in range(replies)]
    assert all(a.endswith(b"\r\n") for a in answers), answers
    return [a[:-2].decode("ascii") for a in answers]


def pulses(degrees):
    return to_hex(round(degrees * PULSES_PER_DEG))


def test_motor_info_answers_i1_and_i2_and_a_third_motor_is_an_error(bus):
    (reply,) = ask(bus, "2i1")
    assert reply.startswith("2I1") and len(reply) == 3 + 22
    loop, motor = reply[3], reply[4]
    forward, backward = int(reply[17:21], 16), int(reply[21:25], 16)
    assert (loop, motor) == ("1", "1")
    assert 70e3 < CLOCK / forward < 120e3 and 70e3 < CLOCK / backward < 120e3
    assert ask(bus, "2i2")[0].startswith("2I2")
    assert ask(bus, "2i3") == ["2GS03"]  # an ELL14 has two motors
    assert ask(bus, "2gs") == ["2GS03"]  # the error is told once more...
    assert ask(bus, "2gs") == ["2GS00"]  # ...then cleared


def test_motor_periods_can_be_set_and_searched(bus):
    assert ask(bus, "2f100B0") == ["2GS00"]  # 176 ticks: 83.75 kHz
    assert ask(bus, "2i1")[0][17:21] == "00B0"
    assert ask(bus, "2b10010") == ["2GS04"]  # 921 kHz: out of range
    assert ask(bus, "2gs") == ["2GS04"]  # told once more
    bus.write(b"2s1")
    assert ask(bus, "2gs") == ["2GS09"]  # busy searching
    assert bus.readline() == b"2GS00\r\n"  # the search's own answer
    assert ask(bus, "2i1")[0][17:21] == "00AB"


def test_a_mount_changes_address_and_keeps_its_axis(bus):
    world = bus.host.world
    assert ask(bus, "3ca7") == ["7GS00"]
    bus.write(b"3gp")
    assert bus.readline() == b""  # nobody at 3 any more
    assert ask(bus, "7ma" + pulses(30)) == ["7PO" + pulses(30)]
    assert world.rotator("3").position() == pytest.approx(30, abs=0.01)
    assert ask(bus, "7us") == ["7GS00"]


def test_a_group_address_moves_two_mounts_with_one_command(bus):
    world = bus.host.world
    assert ask(bus, "3ga1") == ["1GS00"]  # 3 now also listens to 1
    replies = sorted(ask(bus, "1ma" + pulses(45), 2))
    assert replies == ["1PO" + pulses(45), "3PO" + pulses(45)]
    assert world.rotator("3").position() == pytest.approx(45, abs=0.01)
    ask(bus, "1ma" + pulses(10))  # the group lasted one move
    assert world.rotator("3").position() == pytest.approx(45, abs=0.01)


def test_home_offset_jog_step_and_continuous_jog(bus):
    world = bus.host.world
    assert ask(bus, "2so" + pulses(20)) == ["2GS00"]
    assert ask(bus, "2go") == ["2HO" + pulses(20)]
    assert ask(bus, "2ho0") == ["2PO00000000"]  # home is at the offset
    assert world.rotator("2").position() == pytest.approx(20, abs=0.01)
    assert ask(bus, "2sj" + pulses(15)) == ["2GS00"]
    assert ask(bus, "2gj") == ["2GJ" + pulses(15)]
    assert ask(bus, "2bw") == ["2PO" + pulses(345)]
    assert ask(bus, "2sj00000000") == ["2GS00"]  # step 0: turn until stopped
    bus.write(b"2fw")
    assert ask(bus, "2gs") == ["2GS09"]
    (stopped,) = ask(bus, "2st")
    assert stopped.startswith("2PO") and from_hex(stopped[3:]) != from_hex(pulses(345))


def test_optimisation_is_busy_until_done_or_stopped(bus):
    bus.write(b"1om")
    assert ask(bus, "1ma" + pulses(5)) == ["1GS09"]  # busy: no move
    start = time.monotonic()
    assert bus.readline() == b"1GS00\r\n"
    assert time.monotonic() - start > 0.1
    bus.write(b"1cm")
    assert ask(bus, "1st") == ["1GS00"]


def test_isolation_silences_a_mount_until_lifted(bus):
    assert ask(bus, "2is05") == ["2GS00"]  # five minutes
    bus.write(b"2gp")
    assert ask(bus, "2gs") == ["2GS05"]  # the gp got no answer; gs says why
    assert ask(bus, "2is00") == ["2GS06"]  # out of isolation
    assert ask(bus, "2gp") == ["2PO00000000"]


def test_terminators_and_unknown_commands(bus):
    assert ask(bus, "2gp\r\n1gp\r\n", 2) == ["2PO00000000", "1PO00000000"]
    assert ask(bus, "2zz") == ["2GS03"]
    assert ask(bus, "2ho") == ["2PO00000000"]  # no direction: clockwise
