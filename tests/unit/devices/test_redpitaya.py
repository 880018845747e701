"""The Red Pitaya devices and plans against the simulator, over real sockets.

Both transports a lab uses: labsky's asyncio TCP link and pyvisa-py's
`TCPIP::host::port::SOCKET`. The physics is the simulator's bench: OUT1
through a 1.5 MHz resonator (Q 250) into IN1, OUT2 on a cavity piezo whose
transmission is on AIN0.
"""

import math

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import FailedStatus

from labsky.devices.redpitaya import (
    RedPitayaParams,
    TriggerSource,
    demodulate,
    redpitaya,
)
from labsky.devices.redpitaya.plans import (
    fit_resonance,
    network_analyzer,
    pid_lock,
    scope_series,
    sweep_frequencies,
)
from labsky.testing.documents import AfterEvents
from labsky.transports import InstrumentRefusedError


def call(coroutine):
    return call_in_bluesky_event_loop(coroutine)


@pytest.fixture
def lab(simulated_lab):
    return simulated_lab({"rp": {"kind": "redpitaya"}})


@pytest.fixture
def rp(lab, run_engine, connect_devices):
    device = redpitaya(RedPitayaParams(address=lab.endpoints["rp"]))
    device.set_name("rp")
    connect_devices(device)
    return device


def visa_resource(endpoint: str) -> str:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return f"TCPIP::{host}::{port}::SOCKET"


@pytest.mark.parametrize("transport", ["tcp", "visa"])
def test_scope_traces_arrive_as_events_over_both_transports(
    lab, run_engine, connect_devices, collect_documents, transport
):
    address = lab.endpoints["rp"]
    if transport == "visa":
        address = visa_resource(address)
    rp = redpitaya(RedPitayaParams(address=address))
    rp.set_name("rp")
    connect_devices(rp)
    run_engine(bps.mv(rp.asg1.frequency, 1.5e6, rp.asg1.amplitude, 0.4))
    run_engine(bps.mv(rp.asg1.output, True))
    run_engine(bps.trigger(rp.asg1.start, wait=True))
    run_engine(bp.count([rp.scope], 3), collect_documents)
    [descriptor] = collect_documents.of("descriptor")
    key = descriptor["data_keys"]["rp-scope-ch1"]
    assert key["shape"] == [16384] and key["dtype_numpy"] == "<f4"
    config = descriptor["configuration"]["rp-scope"]["data"]
    assert config["rp-scope-decimation"] == 1
    assert config["rp-scope-dt"] == pytest.approx(8e-9)
    events = collect_documents.of("event")
    assert [e["data"]["rp-scope-sequence"] for e in events] == [1, 2, 3]
    ch1 = np.asarray(events[-1]["data"]["rp-scope-ch1"])
    assert ch1.shape == (16384,)
    # on resonance: the generator's amplitude comes through
    assert np.std(ch1) * math.sqrt(2) == pytest.approx(0.4, rel=0.05)


def test_asg_moves_report_the_boards_readback_and_refusals_name_the_cause(
    rp, run_engine
):
    run_engine(bps.mv(rp.asg2.frequency, 12345.678))
    # the board answers in %g: six significant digits
    assert call(rp.asg2.frequency.value.get_value()) == 12345.7
    run_engine(bps.mv(rp.asg2.amplitude, 0.7))
    with pytest.raises(FailedStatus) as failure:
        run_engine(bps.mv(rp.asg2.offset, 0.5))  # 0.7 + 0.5 > 1 V
    cause = failure.value.__cause__
    assert isinstance(cause, InstrumentRefusedError)
    assert "SOUR2:VOLT:OFFS" in str(cause) and "out of range" in str(cause)
    with pytest.raises(FailedStatus, match="decimation"):
        run_engine(bps.mv(rp.scope.decimation, 3))


def test_an_edge_trigger_puts_the_crossing_at_the_trigger_sample(rp, run_engine):
    run_engine(bps.mv(rp.asg1.frequency, 1.5e6, rp.asg1.amplitude, 0.5))
    run_engine(bps.mv(rp.asg1.output, True))
    run_engine(bps.trigger(rp.asg1.start, wait=True))
    run_engine(scope_series(rp.scope, 2, trigger=TriggerSource.CH1_NE, level=0.2))
    trace = rp.scope.last_trace
    assert trace is not None and trace.trigger == TriggerSource.CH1_NE
    t = trace.times()
    k = int(np.argmin(abs(t)))
    assert k == 8192 and trace.ch1[k - 1] > trace.ch1[k + 1]  # falling
    assert trace.ch1[k] == pytest.approx(0.2, abs=0.12)


def test_a_trigger_that_never_comes_is_a_timeout_naming_the_source(rp, run_engine):
    run_engine(bps.mv(rp.scope.timeout, 0.3))
    with pytest.raises(FailedStatus) as failure:
        run_engine(scope_series(rp.scope, 1, trigger="EXT_PE"))
    message = str(failure.value.__cause__)
    assert "no EXT_PE trigger within 0.3 s" in message and "external" in message


def test_the_lockin_reads_the_resonators_gain_and_phase(rp, run_engine):
    run_engine(bps.mv(rp.asg1.amplitude, 0.5))
    run_engine(bps.mv(rp.asg1.output, True))
    readings = {}
    for f in (1.5e6, 1.5e6 * (1 + 1 / 500)):  # f0, and f0 + half a linewidth
        run_engine(bps.mv(rp.asg1.frequency, f))
        run_engine(bps.trigger(rp.iq, wait=True))
        readings[f] = (
            call(rp.iq.amplitude.get_value()),
            call(rp.iq.phase.get_value()),
        )
    (a0, p0), (a1, p1) = readings.values()
    assert a0 == pytest.approx(0.5, rel=0.02)
    assert a1 / a0 == pytest.approx(1 / math.sqrt(2), rel=0.05)  # -3 dB
    assert (p0 - p1) % 360 == pytest.approx(45, abs=3)  # and 45 deg behind


def test_demodulate_recovers_amplitude_and_phase_at_any_decimation():
    rng = np.random.default_rng(1)
    for decimation in (1, 8, 64):
        clock = np.arange(16384 * decimation) / 125e6 + 3e-6  # 125 MS/s
        f = 125e6 / (decimation * 7.3)  # 7.3 samples per period after decimation
        x = 0.3 * np.sin(2 * np.pi * f * clock + 0.5)
        samples = x.reshape(-1, decimation).mean(axis=1)  # the FPGA's averaging
        samples += rng.normal(0, 0.01, samples.size)
        result = demodulate(samples, f, decimation, 3e-6)
        assert result.amplitude == pytest.approx(0.3, rel=0.01)
        assert result.phase == pytest.approx(math.degrees(0.5), abs=0.5)


def test_network_analyzer_finds_the_simulated_resonance(
    rp, run_engine, collect_documents
):
    result = run_engine(
        network_analyzer(rp.iq, 1.47e6, 1.53e6, 61, amplitude=0.5, md={"dut": "Q250"}),
        collect_documents,
    )
    fit = result.plan_result
    assert fit["f0"] == pytest.approx(1.5e6, rel=1e-4)
    assert fit["q"] == pytest.approx(250, rel=0.1)
    assert fit["amplitude"] == pytest.approx(0.5, rel=0.03)
    [start] = collect_documents.of("start")
    assert start["plan_name"] == "network_analyzer" and start["dut"] == "Q250"
    events = collect_documents.of("event")
    assert len(events) == 61
    phases = [e["data"]["rp-iq-phase"] for e in events]
    assert max(phases) - min(phases) > 150  # the phase turns through resonance


def test_fit_resonance_on_an_exact_lorentzian():
    f = np.linspace(9e5, 1.1e6, 401)
    a = 1 / np.abs(1 + 1j * 50 * (f / 1e6 - 1e6 / f))
    fit = fit_resonance(f, a)
    assert fit["f0"] == pytest.approx(1e6, rel=1e-4)
    assert fit["q"] == pytest.approx(50, rel=0.01)
    assert math.isnan(fit_resonance(f[:150], a[:150])["q"])  # no upper half-power


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 0, "stop": 1e6}, "0 < start < stop"),
        ({"start": 1e6, "stop": 1e8}, "6.25e\\+07"),
        ({"start": 1e3, "stop": 1e6, "num": 1}, "at least 2"),
    ],
)
def test_bad_sweeps_fail_before_the_run_opens(rp, run_engine, kwargs, message):
    documents = []
    with pytest.raises(ValueError, match=message):
        run_engine(network_analyzer(rp.iq, **kwargs), lambda n, d: documents.append(n))
    assert documents == []
    with pytest.raises(ValueError, match="decimation=3"):
        list(scope_series(rp.scope, decimation=3))
    with pytest.raises(ValueError, match="fraction"):
        list(pid_lock(rp.pid, fraction=1.5))
    assert len(sweep_frequencies(10, 1e6, 5, log=True)) == 5


def test_pid_lock_searches_engages_and_holds_the_cavity(
    rp, run_engine, collect_documents
):
    result = run_engine(pid_lock(rp.pid, hold=1.0), collect_documents)
    lock = result.plan_result
    assert lock["locked"] and lock["relocks"] == 0
    assert lock["peak"] == pytest.approx(0.8, rel=0.05)  # the cavity's peak
    assert lock["setpoint"] == pytest.approx(0.4, rel=0.05)
    # the falling side of a resonance at 0.3 V with a 0.05 V half width
    assert lock["output"] == pytest.approx(0.35, abs=0.03)
    assert lock["error_rms"] < 0.01
    assert lock["p"] > 0 and lock["i"] > 0  # negative feedback on that side
    streams = {d["name"] for d in collect_documents.of("descriptor")}
    assert streams == {"search", "primary"}
    assert call(rp.pid.enabled.get_value())  # still locked after the plan
    measured = call(rp.pid.setpoint.measured.get_value())
    assert measured == pytest.approx(0.4, abs=0.03)


def test_pid_lock_relocks_after_a_knock_on_the_table(lab, rp, run_engine):
    # 4 half widths, once the lock is engaged: primary's readings are the
    # verify's (about 7) and then the hold's (30)
    knock = AfterEvents(10, lambda: lab["rp"].kick(0.2))
    result = run_engine(pid_lock(rp.pid, hold=3.0), knock)
    assert knock.fired.wait(10)
    lock = result.plan_result
    assert lock["locked"] and lock["relocks"] >= 1
    assert lock["output"] == pytest.approx(0.55, abs=0.05)  # the new fringe


def test_the_pid_setpoint_is_a_movable_that_waits_for_the_input(rp, run_engine):
    run_engine(pid_lock(rp.pid, hold=0.0))
    before = call(rp.pid.setpoint.measured.get_value())
    assert abs(before - 0.3) > 0.05  # so the move has to wait for the input
    run_engine(bps.mv(rp.pid.setpoint, 0.3))
    # the move ended within its 0.02 V tolerance; read again later, the locked
    # input has the loop's noise on top (more on a loaded host)
    assert call(rp.pid.setpoint.measured.get_value()) == pytest.approx(0.3, abs=0.04)


def test_slow_io_reads_the_inputs_and_sets_the_outputs(rp, run_engine):
    run_engine(bps.mv(rp.io.aout[0], 1.1))
    reading = call(rp.io.read())
    assert reading["rp-io-ain-1"]["value"] == pytest.approx(1.1, abs=0.02)
    assert reading["rp-io-aout-0"]["value"] == pytest.approx(1.1, abs=1e-3)


def test_a_board_that_goes_away_mid_series_fails_with_its_name(
    lab, rp, run_engine, collect_documents
):
    unplug = AfterEvents(3, lambda: lab.set_fault("rp", "disconnect"))
    with pytest.raises(Exception, match="rp"):
        run_engine(
            scope_series(rp.scope, 1000, delay_time=0.01), [collect_documents, unplug]
        )
    assert unplug.fired.wait(10)
    [stop] = collect_documents.of("stop")
    assert stop["exit_status"] == "fail"
    assert 1 < len(collect_documents.of("event")) < 1000
