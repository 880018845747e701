"""The simulators at the wire: real pyserial on their pseudo-terminals."""

import time

import pytest
import serial

from labsky.sim.ell14 import PULSES_PER_DEG

LASER_ON = {"laser": {"emission": True, "shutter_open": True, "warmup": 0}}


def port(host, name, **settings):
    return serial.Serial(host.endpoints[name], timeout=1.0, **settings)


def ask_until(s, query, reply, timeout=10.0):
    """Ask again and again, as a host polls an instrument, until it says `reply`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.write(query)
        if s.readline() == reply:
            return
    raise AssertionError(f"{query!r} never answered {reply!r}")


# -- ELL14 ------------------------------------------------------------------


def test_ell14_identifies_reports_and_moves_at_its_speed(simulated_lab):
    host = simulated_lab(
        {"bus": {"kind": "ell14", "params": {"addresses": ["2", "3"]}}}
    )
    with port(host, "bus", baudrate=9600) as s:
        s.write(b"2in")
        reply = s.readline()
        assert reply.startswith(b"2IN0E") and reply.endswith(b"00023000\r\n")
        s.write(b"3gp")
        assert s.readline() == b"3PO00000000\r\n"
        start = time.monotonic()
        s.write(b"2ma" + b"%08X" % round(90 * PULSES_PER_DEG))
        s.write(b"2gs")  # asked while it moves
        assert s.readline() == b"2GS09\r\n"  # busy
        assert s.readline() == b"2PO00008C00\r\n"  # 90 deg, when it arrives
        assert time.monotonic() - start >= 90 / 430  # 430 deg/s
        s.write(b"Fgp")  # an address nobody has: silence
        assert s.readline() == b""


def test_ell14_bus_feeds_two_motors_at_most(simulated_lab):
    host = simulated_lab(
        {"bus": {"kind": "ell14", "params": {"addresses": ["1", "2", "3"]}}}
    )
    with port(host, "bus", baudrate=9600) as s:
        s.write(b"1ma00008C00" + b"2ma00008C00" + b"3ma00008C00")
        assert s.readline() == b"3GS0D\r\n"  # over current: refused at once
        assert sorted([s.readline(), s.readline()]) == [
            b"1PO00008C00\r\n",
            b"2PO00008C00\r\n",
        ]


def test_ell14_drops_noise_and_half_commands(simulated_lab):
    host = simulated_lab({"bus": {"kind": "ell14"}})
    with port(host, "bus", baudrate=9600) as s:
        s.write(b"\xff\x00zz2g")  # noise, then half a command
        time.sleep(0.1)  # longer than the mount waits for the rest
        s.write(b"2gp")
        assert s.readline() == b"2PO00000000\r\n"


def test_a_wrong_baud_rate_gets_silence(simulated_lab):
    host = simulated_lab({"bus": {"kind": "ell14"}})
    with port(host, "bus", baudrate=115200) as s:
        s.write(b"2gp")
        assert s.readline() == b""
    assert "baud rate is not 9600" in host["bus"].port.mismatch


# -- ESP300 -----------------------------------------------------------------


@pytest.mark.parametrize("rtscts", [True, False])
def test_esp300_answers_whether_or_not_the_host_asks_for_rts_cts(simulated_lab, rtscts):
    # The controller sees only the RTS line, which pyserial raises on open.
    host = simulated_lab({"stage": {"kind": "esp300"}})
    with port(host, "stage", baudrate=19200, rtscts=rtscts) as s:
        s.write(b"VE?\r")
        assert s.readline() == b"ESP300 Version 3.04 07/27/01\r\n"
    with port(host, "stage", baudrate=9600) as s:  # a wrong baud rate still fails
        s.write(b"VE?\r")
        assert s.readline() == b""


def test_esp300_moves_and_reports_motion_done_as_the_manual_says(simulated_lab):
    host = simulated_lab({"stage": {"kind": "esp300"}})
    with port(host, "stage", baudrate=19200, rtscts=True) as s:
        s.write(b"VE?\r\n")
        assert s.readline().startswith(b"ESP300 Version")
        s.write(b"1PA5\r\nTB?\r\n")  # motors are off at power-up
        assert s.readline().startswith(b"113, ")  # axis 1: motor not enabled
        s.write(b"1MO;1VA10;1PA5;1MD?\r\n")
        assert s.readline() == b"0\r\n"  # moving: 0
        s.write(b"1WS;1MD?;1TP?\r\n")  # WS: the next command waits for the stop
        assert s.readline() == b"1\r\n"  # done: 1
        assert float(s.readline()) == pytest.approx(5.0)
        s.write(b"1PA30\r\nTB?\r\n")  # beyond the +/-25 mm software limit
        assert s.readline().endswith(b", POSITIVE SOFTWARE LIMIT DETECTED\r\n")
        s.write(b"QQ\r\nTE?\r\n")  # (XX erases programs)
        assert s.readline() == b"6\r\n"  # command does not exist


# -- 1830-C -------------------------------------------------------------------


def test_1830c_echoes_until_told_not_to_and_reads_the_beam(simulated_lab):
    host = simulated_lab({"meter": {"kind": "newport1830c"}}, world=LASER_ON)
    with port(host, "meter", baudrate=9600) as s:
        s.write(b"W?\n")
        assert s.readline() == b"W?\n"  # echo is on at power-up
        assert s.readline() == b"0800\n"
        s.write(b"E0\n")
        assert s.readline() == b"E0\n"
        s.write(b"D?\n")
        assert s.readline() == b"SAT\n"  # 25 mW on the bare detector
        s.write(b"A1\nD?\n")
        assert float(s.readline()) == pytest.approx(2.5e-2, rel=0.02)
        s.write(b"R3\nD?\n")  # fixed range, 200 nW full scale
        assert s.readline() == b"OVER\n"
        s.write(b"X?\n")
        assert s.readline() == b"ERR\n"


def test_1830c_corrects_for_the_wavelength_it_is_set_to(simulated_lab):
    host = simulated_lab({"meter": {"kind": "newport1830c"}}, world=LASER_ON)
    with port(host, "meter", baudrate=9600) as s:
        s.write(b"E0\n")
        s.readline()
        s.write(b"A1\nD?\n")
        right = float(s.readline())
        s.write(b"W0600\nD?\n")  # set for 600 nm while the laser is at 800
        wrong = float(s.readline())
    assert wrong / right == pytest.approx(0.55 / 0.36, rel=0.02)


# -- MaiTai -----------------------------------------------------------------


def test_maitai_understands_short_and_long_scpi_and_tunes_over_time(simulated_lab):
    host = simulated_lab(
        {"laser": {"kind": "maitai"}},
        world={"laser": {"warmup": 0.2, "tune_rate": 400}},
    )
    with port(host, "laser", baudrate=115200) as s:
        s.write(b"*IDN?\n")
        assert b"MaiTai" in s.readline()
        s.write(b"on\n*STB?\n")
        assert int(s.readline()) & 1 == 0  # not warmed up: ON is ignored
        ask_until(s, b"READ:PCTWARMEDUP?\n", b"100.00%\n")  # after 0.2 s
        s.write(b"on\n*stb?\n")
        assert int(s.readline()) & 9 == 9  # emission and warmed up
        s.write(b"WAVELENGTH 900\nwav?\nread:wav?\n")
        assert s.readline() == b"900nm\n"  # the target at once
        assert s.readline() != b"900nm\n"  # the laser is still tuning
        ask_until(s, b"READ:WAVelength?\n", b"900nm\n")  # tuned, at 400 nm/s
        s.write(b"read:pow?\n")
        assert s.readline().endswith(b"W\n")


def test_faults_silence_and_garble(simulated_lab):
    host = simulated_lab({"meter": {"kind": "newport1830c"}})
    with port(host, "meter", baudrate=9600) as s:
        host.set_fault("meter", "silent")  # returns once the meter acted on it
        s.write(b"W?\n")
        assert s.readline() == b""
        host.set_fault("meter", "garbage")
        s.write(b"W?\n")
        garbage = s.read(3)
        assert garbage and all(b >= 128 for b in garbage)
