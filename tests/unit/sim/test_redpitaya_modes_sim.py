"""Sweep, split trigger and deep memory at the wire, as the vendor's examples use them.

The flows are those of the vendor's own examples (Examples/python/
generate_sweep.py; Documentation: acqRF-5-split_trig, deepMemoryAcq), over a
raw TCP socket. OUT1 is cabled straight to IN1 and OUT2 to IN2 here, so the
traces show the generators.
"""

import time

import numpy as np
import pytest

from tests.unit.sim.scpi_client import ScpiClient

DIRECT = {"inputs": {"in1": {"source": "out1"}, "in2": {"source": "out2"}}}


@pytest.fixture
def connect(simulated_lab):
    clients: list[ScpiClient] = []

    def make(**params) -> ScpiClient:
        params.setdefault("bench", DIRECT)
        host = simulated_lab({"rp": {"kind": "redpitaya", "params": params}})
        client = ScpiClient(host.endpoints["rp"])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def frequencies(samples: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Times and local frequencies between rising zero crossings."""
    rising = np.nonzero((samples[:-1] < 0) & (samples[1:] >= 0))[0]
    # interpolate each crossing between its two samples
    crossings = rising + samples[rising] / (samples[rising] - samples[rising + 1])
    times = crossings * dt
    return times[1:], 1 / np.diff(times)


def wait_for(rp: ScpiClient, query: str, expected: str, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while (reply := rp.query(query)) != expected:
        assert time.monotonic() < deadline, f"{query} still {reply!r}"


def test_the_vendors_sweep_example_sweeps_the_output(connect):
    rp = connect()
    for command in (  # Examples/python/generate_sweep.py, but a 10 s linear sweep
        "GEN:RST",
        "SOUR1:FUNC SINE",
        "SOUR1:VOLT 0.5",
        "OUTPUT1:STATE ON",
        "SOUR1:TRIG:INT",
        "SOUR:SWEEP:RESET",
        "SOUR1:SWEEP:FREQ:START 1000",
        "SOUR1:SWEEP:FREQ:STOP 1000000",
        "SOUR1:SWEEP:TIME 10000000",
        "SOUR1:SWEEP:MODE LINEAR",
        "SOUR1:SWEEP:DIR UP_DOWN",
        "SOUR1:SWEEP:STATE ON",
    ):
        rp.send(command)
    start = time.monotonic()
    assert rp.codes() == []
    assert (
        rp.query(
            "SOUR1:SWEEP:STATE?;:SOUR1:SWEEP:FREQ:START?;:SOUR1:SWEEP:FREQ:STOP?;"
            ":SOUR1:SWEEP:TIME?;:SOUR1:SWEEP:MODE?;:SOUR1:SWEEP:DIR?"
        )
        == "ON;1000;1e+06;10000000;LINEAR;UP_DOWN"
    )
    # the readback follows the sweep: 999 kHz in 10 s
    readings = []
    while time.monotonic() - start < 0.3:
        sent = time.monotonic()
        value = float(rp.query("SOUR1:FREQ:FIX?") or "nan")
        readings.append(((sent + time.monotonic()) / 2 - start, value))
    t, f = np.array(readings).T
    slope, intercept = np.polyfit(t, f, 1)
    assert slope == pytest.approx(99_900, rel=0.02)
    # it left 1 kHz when the command was sent: within 0.1 s, the host's load
    # (the line reaches 1 kHz at t0; `start` is when the client had sent it)
    t0 = (1000 - intercept) / slope
    assert -0.1 < t0 < 0.1, f"the sweep left 1 kHz {t0:+.3f} s after the command"
    # the scope sees a chirp at that frequency, rising at that rate
    rp.send("ACQ:DATA:FORMAT BIN;:ACQ:DEC 64;:ACQ:START")
    before = float(rp.query("SOUR1:FREQ:FIX?") or "nan")
    rp.send("ACQ:TRig NOW")
    wait_for(rp, "ACQ:TRig:FILL?", "1")
    after = float(rp.query("SOUR1:FREQ:FIX?") or "nan")
    trace = np.frombuffer(rp.block("ACQ:SOUR1:DATA?"), ">f4").astype(float)
    times, local = frequencies(trace, 64 / 125e6)
    # captured between the two readings, however long the host took between
    assert 0.97 * before < np.median(local) < 1.03 * after
    chirp, _ = np.polyfit(times, local, 1)
    assert chirp == pytest.approx(99_900, rel=0.1)
    assert np.std(trace) * np.sqrt(2) == pytest.approx(0.5, rel=0.03)


def test_sweep_pause_reset_log_mode_and_defaults(connect):
    rp = connect()
    rp.send("SOUR1:FUNC SINE;:OUTPUT1:STATE ON;:SOUR1:TRIG:INT")
    rp.send(
        "SOUR1:SWEEP:FREQ:START 100;:SOUR1:SWEEP:FREQ:STOP 1e6;"
        ":SOUR1:SWEEP:TIME 4000000;:SOUR1:SWEEP:MODE LOG;:SOUR1:SWEEP:STATE ON"
    )
    first = float(rp.query("SOUR1:FREQ:FIX?") or "nan")
    assert 100 <= first < 200  # a log sweep starts slowly: x10 per second
    rp.send("SOUR:SWEEP:PAUSE ON")
    held = rp.query("SOUR1:FREQ:FIX?")
    wait_until = time.monotonic() + 0.2
    while time.monotonic() < wait_until:
        assert rp.query("SOUR1:FREQ:FIX?") == held  # paused: it stays
    rp.send("SOUR:SWEEP:PAUSE OFF")
    rp.send("SOUR:SWEEP:RESET")  # the clock restarts: back at the start
    assert 100 <= float(rp.query("SOUR1:FREQ:FIX?") or "nan") < 150
    rp.send("SOUR1:SWEEP:FREQ:START 0")  # refused by the API
    assert rp.errors() == [
        '9506,"*SOUR1:SWEEP:FREQ:START Failed to set start frequency: Value out '
        'of range."'
    ]
    rp.send("SOUR1:SWEEP:STATE OFF")
    stopped = rp.query("SOUR1:FREQ:FIX?")
    assert rp.query("SOUR1:FREQ:FIX?") == stopped  # left where the sweep was
    rp.send("SOUR:SWEEP:DEFAULT")
    assert (
        rp.query(
            "SOUR1:SWEEP:FREQ:START?;:SOUR1:SWEEP:FREQ:STOP?;:SOUR1:SWEEP:TIME?;"
            ":SOUR1:SWEEP:MODE?;:SOUR1:SWEEP:DIR?;:SOUR2:SWEEP:STATE?"
        )
        == "1000;1000;1000;LINEAR;NORMAL;OFF"
    )


def run_split_example(rp: ScpiClient) -> list[np.ndarray]:
    """The vendor's split-trigger example (acqRF-5-split_trig), for two inputs."""
    ch_num, dec, trig_lvl = 2, [64, 1024], 0.1
    triggers = ["CH1_PE", "CH2_PE"]
    rp.send("ACQ:RST")
    rp.send("ACQ:SPLIT:TRig ON")
    for i in range(ch_num):
        rp.send(f"ACQ:RST:CH{i + 1}")
    rp.send("ACQ:DATA:FORMAT ASCII")
    rp.send("ACQ:DATA:Units VOLTS")
    for i in range(ch_num):
        rp.send(f"ACQ:DEC:Factor:CH{i + 1} {dec[i]}")
        rp.send(f"ACQ:TRig:LEV:CH{i + 1} {trig_lvl}")
    for i in range(ch_num):
        rp.send(f"ACQ:START:CH{i + 1}")
    for i in range(ch_num):
        rp.send(f"ACQ:TRig:CH{i + 1} {triggers[i]}")
    for i in (2, 1):
        wait_for(rp, f"ACQ:TRig:STAT:CH{i}?", "TD")
        wait_for(rp, f"ACQ:TRig:FILL:CH{i}?", "1")
        rp.send(f"ACQ:STOP:CH{i}")
    buffers = []
    for i in range(1, ch_num + 1):
        text = rp.query(f"ACQ:SOUR{i}:DATA:TRig? 6000,POST_TRIG")
        assert text is not None, rp.errors()
        buffers.append(np.array(text.strip("{}").split(","), dtype=float))
    return buffers


def test_the_vendors_split_trigger_example_completes(connect):
    rp = connect()
    # IN1: 10 kHz, IN2: 100 Hz; each input triggers on its own rising edge
    rp.send("SOUR1:FUNC SINE;:SOUR1:FREQ:FIX 10000;:SOUR1:VOLT 0.5;:OUTPUT1:STATE ON")
    rp.send("SOUR2:FUNC SINE;:SOUR2:FREQ:FIX 100;:SOUR2:VOLT 0.5;:OUTPUT2:STATE ON")
    rp.send("SOUR:TRig:INT")
    ch1, ch2 = run_split_example(rp)
    assert rp.codes() == []
    assert ch1.shape == ch2.shape == (6001,)
    for samples, frequency, dt in ((ch1, 1e4, 64 / 125e6), (ch2, 100, 1024 / 125e6)):
        assert samples[0] == pytest.approx(0.1, abs=0.02)  # the trigger sample...
        assert samples[1] > samples[0]  # ...on a rising edge
        _, local = frequencies(samples, dt)
        assert np.median(local) == pytest.approx(frequency, rel=0.01)
    # each input kept its own settings
    assert rp.query("ACQ:DEC:CH1?;:ACQ:DEC:CH2?;:ACQ:SPLIT:TRig?") == "64;1024;1"
    assert rp.query("ACQ:SRATe:CH2?") == "   122070 Hz"


def test_a_board_without_split_trigger_fails_the_example(connect):
    rp = connect(split_trigger=False)
    rp.send("ACQ:SPLIT:TRig ON;:ACQ:START:CH1;:ACQ:TRig:CH1 NOW")
    assert rp.codes() == [9524, 9524, 9524]
    for _ in range(3):  # on 2.05 a STEMlab 125-14 waits forever
        assert rp.query("ACQ:TRig:STAT:CH1?") == "WAIT"


def test_the_vendors_deep_memory_example_reads_long_traces(connect):
    rp = connect()
    rp.send("SOUR1:FUNC SINE;:SOUR1:FREQ:FIX 100000;:SOUR1:VOLT 0.5;:OUTPUT1:STATE ON")
    rp.send("SOUR2:FUNC DC;:SOUR2:VOLT 0;:SOUR2:VOLT:OFFS 0.3;:OUTPUT2:STATE ON")
    rp.send("SOUR:TRig:INT")
    data_size = read_data_size = 1024 * 16  # as in the example
    dec, trig_lvl = 32, 0
    rp.send("ACQ:RST")
    start_address = int(rp.query("ACQ:AXI:START?") or 0)
    size = int(rp.query("ACQ:AXI:SIZE?") or 0)
    assert (start_address, size) == (0x1000000, 0x200000)  # the stock reservation
    start_address2 = round(start_address + size / 2)
    rp.send(f"ACQ:AXI:DEC {dec}")
    rp.send("ACQ:AXI:DATA:Units VOLTS")
    rp.send(f"ACQ:AXI:SOUR1:Trig:Dly {data_size}")
    rp.send(f"ACQ:AXI:SOUR2:Trig:Dly {data_size}")
    rp.send(f"ACQ:AXI:SOUR1:SET:Buffer {start_address},{size / 2:.0f}")
    rp.send(f"ACQ:AXI:SOUR2:SET:Buffer {start_address2},{size / 2:.0f}")
    rp.send("ACQ:AXI:SOUR1:ENable ON")
    rp.send("ACQ:AXI:SOUR2:ENable ON")
    rp.send(f"ACQ:TRig:LEV {trig_lvl}")
    rp.send("ACQ:START")
    rp.send("ACQ:TRig CH1_PE")
    wait_for(rp, "ACQ:TRig:STAT?", "TD")
    wait_for(rp, "ACQ:AXI:SOUR1:TRig:FILL?", "1")
    rp.send("ACQ:STOP")
    pos1 = int(rp.query("ACQ:AXI:SOUR1:Trig:Pos?") or -1)
    pos2 = int(rp.query("ACQ:AXI:SOUR2:Trig:Pos?") or -1)
    assert pos1 == pos2  # one trigger for both
    written = int(rp.query("ACQ:AXI:SOUR1:Write:Pos?") or -1)
    assert written == (pos1 + data_size) % (size // 4)  # 2 bytes a sample
    text1 = rp.query(f"ACQ:AXI:SOUR1:DATA:Start:N? {pos1},{read_data_size}")
    text2 = rp.query(f"ACQ:AXI:SOUR2:DATA:Start:N? {pos2},{read_data_size}")
    assert rp.codes() == []
    buff1 = np.array((text1 or "").strip("{}").split(","), float)
    buff2 = np.array((text2 or "").strip("{}").split(","), float)
    assert buff1.shape == buff2.shape == (read_data_size,)
    assert 0 <= buff1[0] < buff1[1]  # the rising edge through 0 V
    _, local = frequencies(buff1, dec / 125e6)
    assert np.median(local) == pytest.approx(1e5, rel=1e-3)
    assert np.mean(buff2) == pytest.approx(0.3, abs=0.005)
    rp.send("ACQ:AXI:SOUR1:ENable OFF;:ACQ:AXI:SOUR2:ENable OFF")
    assert rp.codes() == []


def test_deep_memory_takes_the_whole_region_in_one_buffer(connect):
    rp = connect()
    rp.send("SOUR1:FUNC SINE;:SOUR1:FREQ:FIX 1000000;:SOUR1:VOLT 0.4;:OUTPUT1:STATE ON")
    rp.send("SOUR1:TRig:INT")
    samples = 0x200000 // 2  # one input, the whole reservation
    rp.send(f"ACQ:AXI:SOUR1:SET:Buffer {0x1000000},{0x200000}")
    rp.send(f"ACQ:AXI:SOUR1:Trig:Dly {samples // 2}")
    rp.send("ACQ:AXI:SOUR1:ENable ON;:ACQ:AXI:DATA:Units RAW;:ACQ:DATA:FORMAT BIN")
    rp.send("ACQ:START")
    previous = 0  # wait for the pre-trigger half (or a wrap of the buffer)
    while (written := int(rp.query("ACQ:AXI:SOUR1:Write:Pos?") or 0)) < samples // 2:
        if written < previous:
            break
        previous = written
    rp.send("ACQ:TRig NOW")
    wait_for(rp, "ACQ:AXI:SOUR1:TRig:FILL?", "1")
    trigger = int(rp.query("ACQ:AXI:SOUR1:Trig:Pos?") or -1)
    codes = np.frombuffer(
        rp.block(f"ACQ:AXI:SOUR1:DATA:Start:N? {trigger - samples // 2},{samples}"),
        ">i2",
    )
    assert codes.shape == (samples,)  # 1 Mi samples, 8.4 ms at 125 MS/s
    assert np.std(codes) * np.sqrt(2) == pytest.approx(0.4 * 8192, rel=0.02)
    # the buffer holds this acquisition only: the pre-trigger part is written
    assert np.count_nonzero(codes[: samples // 2]) > samples // 4
    rp.send(f"ACQ:AXI:SOUR1:SET:Buffer {0x1000000},{0x200000 + 64}")
    assert rp.codes() == [9506]  # larger than the reservation
