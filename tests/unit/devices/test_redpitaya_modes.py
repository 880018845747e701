"""The Red Pitaya devices' sweep, split-trigger and deep-memory modes, over TCP.

OUT1 is cabled to IN1 and OUT2 to IN2 on this bench, so what the
generators do is what the scope sees.
"""

import math

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import FailedStatus
from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider

from labsky.devices.redpitaya import (
    RedPitayaParams,
    ScopeMode,
    SweepDirection,
    SweepMode,
    Trace,
    TriggerSource,
    pack_trace,
    redpitaya,
    unpack_trace,
)
from labsky.transports import InstrumentRefusedError

DIRECT = {"inputs": {"in1": {"source": "out1"}, "in2": {"source": "out2"}}}


def call(coroutine):
    return call_in_bluesky_event_loop(coroutine)


@pytest.fixture
def board(simulated_lab, run_engine, connect_devices, tmp_path):
    def make(**params):
        params.setdefault("bench", DIRECT)
        lab = simulated_lab({"rp": {"kind": "redpitaya", "params": params}})
        provider = StaticPathProvider(UUIDFilenameProvider(), tmp_path)
        device = redpitaya(
            RedPitayaParams(address=lab.endpoints["rp"]), path_provider=provider
        )
        device.set_name("rp")
        connect_devices(device)
        return device

    return make


@pytest.fixture
def rp(board):
    return board()


def start_generators(run_engine, rp, f1=1e4, f2=100.0):
    """OUT1 and OUT2: 0.5 V sines at f1 and f2, started together."""
    run_engine(bps.mv(rp.asg1.frequency, f1, rp.asg2.frequency, f2))
    run_engine(bps.mv(rp.asg1.amplitude, 0.5, rp.asg2.amplitude, 0.5))
    run_engine(bps.mv(rp.asg1.output, True, rp.asg2.output, True))
    run_engine(bps.trigger(rp.asg1.start, wait=True))
    run_engine(bps.trigger(rp.asg2.start, wait=True))


def test_a_generator_sweep_is_configured_read_back_and_recorded(
    rp, run_engine, collect_documents
):
    start_generators(run_engine, rp)
    sweep = rp.asg1.sweep
    run_engine(
        bps.mv(
            sweep.start_frequency, 1000.0,
            sweep.stop_frequency, 1e6,
            sweep.time, 10_000_000,
            sweep.mode, SweepMode.LOG,
            sweep.direction, SweepDirection.UP_DOWN,
        )
    )  # fmt: skip
    run_engine(bps.mv(sweep.enabled, True))
    first = call(rp.asg1.frequency.value.get_value(cached=False))
    run_engine(bp.count([rp.asg1], 3, delay=0.1), collect_documents)
    later = call(rp.asg1.frequency.value.get_value(cached=False))
    assert 1000 <= first < later < 1e6  # the readback follows the sweep
    [descriptor] = collect_documents.of("descriptor")
    config = descriptor["configuration"]["rp-asg1"]["data"]
    assert config["rp-asg1-sweep-enabled"] is True
    assert config["rp-asg1-sweep-stop_frequency"] == 1e6
    assert config["rp-asg1-sweep-time"] == 10_000_000
    assert config["rp-asg1-sweep-mode"] == "LOG"
    frequencies = [
        e["data"]["rp-asg1-frequency"] for e in collect_documents.of("event")
    ]
    assert frequencies == sorted(frequencies) and frequencies[0] < frequencies[-1]
    run_engine(bps.trigger(rp.sweep_reset, wait=True))  # back to the start
    assert call(rp.asg1.frequency.value.get_value(cached=False)) < later
    with pytest.raises(FailedStatus) as failure:
        run_engine(bps.mv(sweep.start_frequency, 0.0))
    cause = failure.value.__cause__
    assert isinstance(cause, InstrumentRefusedError)
    assert "SWeep:FREQ:START" in str(cause) and "out of range" in str(cause)
    run_engine(bps.mv(sweep.enabled, False))
    assert call(sweep.enabled.get_value()) is False


def test_split_mode_gives_each_input_its_own_trigger_and_time_base(
    rp, run_engine, collect_documents
):
    start_generators(run_engine, rp)
    scope = rp.scope
    run_engine(
        bps.mv(
            scope.mode, ScopeMode.SPLIT,
            scope.decimation, 16,
            scope.trigger_source, TriggerSource.CH1_PE,
            scope.trigger_level, 0.1,
            scope.ch2_decimation, 1024,
            scope.ch2_trigger_source, TriggerSource.CH2_NE,
            scope.ch2_trigger_level, -0.2,
            scope.ch2_trigger_delay, 4096,
        )
    )  # fmt: skip
    run_engine(bp.count([scope], 2), collect_documents)
    [descriptor] = collect_documents.of("descriptor")
    config = descriptor["configuration"]["rp-scope"]["data"]
    assert config["rp-scope-mode"] == "SPLIT"
    assert config["rp-scope-dt"] == pytest.approx(16 / 125e6)
    assert config["rp-scope-ch2_dt"] == pytest.approx(1024 / 125e6)
    assert config["rp-scope-ch2_t0"] == pytest.approx(-4096 * 1024 / 125e6)
    trace = scope.last_trace
    assert trace is not None and trace.mode is ScopeMode.SPLIT
    assert (trace.ch2_decimation, trace.ch2_delay) == (1024, 4096)
    # IN1 rises through 0.1 V at sample 8192, IN2 falls through -0.2 V at 4096
    assert trace.ch1[8192] == pytest.approx(0.1, abs=0.03)
    assert trace.ch1[8193] > trace.ch1[8192]
    assert trace.ch2[4096] == pytest.approx(-0.2, abs=0.03)
    assert trace.ch2[4097] < trace.ch2[4096]
    events = collect_documents.of("event")
    assert np.asarray(events[-1]["data"]["rp-scope-ch2"]).shape == (16384,)
    # back to NORMAL: one trigger for both, IN2 at the common level again
    run_engine(bps.mv(scope.mode, ScopeMode.NORMAL, scope.trigger_source, "CH2_PE"))
    run_engine(bp.count([scope], 1))
    normal = scope.last_trace
    assert normal is not None and normal.mode is ScopeMode.NORMAL
    assert normal.ch2[8192] == pytest.approx(0.1, abs=0.03)
    assert normal.ch2[8192 + 300] > normal.ch2[8192 - 300]  # 100 Hz: slowly


def test_split_mode_on_a_board_that_cannot_names_the_fix(board, run_engine):
    rp = board(split_trigger=False)
    run_engine(bps.mv(rp.scope.mode, ScopeMode.SPLIT))
    with pytest.raises(FailedStatus) as failure:
        run_engine(bp.count([rp.scope], 1))
    message = str(failure.value.__cause__)
    assert "ACQ:SPLIT:TRig ON" in message and "Command not supported" in message
    assert "2.07-48" in message and "NORMAL" in message
    run_engine(bps.mv(rp.scope.mode, ScopeMode.NORMAL))
    run_engine(bp.count([rp.scope], 1))  # the board still works


def test_deep_mode_writes_long_traces_to_hdf5(rp, run_engine, collect_documents):
    start_generators(run_engine, rp, f1=1e5, f2=1e3)
    scope = rp.scope
    samples = 131072
    run_engine(
        bps.mv(
            scope.mode, ScopeMode.DEEP,
            scope.deep_samples, samples,
            scope.decimation, 4,
            scope.trigger_source, TriggerSource.CH1_PE,
            scope.trigger_level, 0.0,
            scope.trigger_delay, 16384,
        )
    )  # fmt: skip
    run_engine(bp.count([scope], 2), collect_documents)
    [descriptor] = collect_documents.of("descriptor")
    key = descriptor["data_keys"]["rp-scope-deep_ch1"]
    assert key["shape"] == [1, samples] and key["external"] == "STREAM:"
    assert "rp-scope-ch1" not in descriptor["data_keys"]
    config = descriptor["configuration"]["rp-scope"]["data"]
    half = samples // 2
    assert config["rp-scope-t0"] == pytest.approx(-(half - 16384) * 4 / 125e6)
    assert "rp-scope-deep_ch1_mean" in descriptor["hints"]["rp-scope"]["fields"]
    [resource, *_] = collect_documents.of("stream_resource")
    datums = collect_documents.of("stream_datum")
    assert datums[-1]["indices"]["stop"] == 2
    path = resource["uri"].removeprefix("file://localhost")
    with h5py.File(path, "r", swmr=True) as f:
        ch1 = f["entry/ch1"][:]
        ch2 = f["entry/ch2"][:]
        means = f["entry/ch2_mean"][:]
    assert ch1.shape == ch2.shape == (2, samples) and ch1.dtype == np.float32
    trigger = half - 16384  # the trigger sits delay samples before the middle
    assert 0 <= ch1[0, trigger] < ch1[0, trigger + 1]  # IN1's rising edge
    assert np.std(ch2[1]) * math.sqrt(2) == pytest.approx(0.5, rel=0.03)
    np.testing.assert_allclose(means, ch2.mean(axis=1), atol=1e-6)
    assert scope.last_trace is not None and len(scope.last_trace.ch1) == samples


def test_deep_mode_refuses_more_samples_than_the_board_reserves(rp, run_engine):
    run_engine(bps.mv(rp.scope.mode, ScopeMode.DEEP, rp.scope.deep_samples, 524296))
    with pytest.raises(FailedStatus) as failure:
        run_engine(bp.count([rp.scope], 1))
    message = str(failure.value.__cause__)
    assert "2097152 bytes" in message and "at most 524288 samples" in message
    with pytest.raises(FailedStatus, match="multiple of 8"):
        run_engine(bps.mv(rp.scope.deep_samples, 1001))


def test_deep_mode_needs_a_path_provider(simulated_lab, run_engine, connect_devices):
    lab = simulated_lab({"rp": {"kind": "redpitaya"}})
    rp = redpitaya(RedPitayaParams(address=lab.endpoints["rp"]))
    rp.set_name("rp")
    connect_devices(rp)
    run_engine(bps.mv(rp.scope.mode, ScopeMode.DEEP))
    with pytest.raises(Exception, match="path provider"):
        run_engine(bp.count([rp.scope], 1))


def test_a_split_trace_keeps_its_second_time_base_through_the_ioc_format():
    trace = Trace(
        np.zeros(4, np.float32),
        np.ones(4, np.float32),
        decimation=8,
        delay=10,
        trigger=TriggerSource.CH1_PE,
        sequence=7,
        mode=ScopeMode.SPLIT,
        ch2_decimation=1024,
        ch2_delay=-300,
        ch2_trigger=TriggerSource.EXT_NE,
    )
    back = unpack_trace(pack_trace(trace, token=99))
    assert back.mode is ScopeMode.SPLIT and back.sequence == 7
    assert (back.ch2_decimation, back.ch2_delay) == (1024, -300)
    assert (
        back.ch2_trigger is TriggerSource.EXT_NE
        and back.trigger is TriggerSource.CH1_PE
    )
    plain = unpack_trace(pack_trace(Trace(trace.ch1, trace.ch2, 8, 10)))
    assert plain.mode is ScopeMode.NORMAL and plain.ch2_decimation is None


def test_a_deep_trace_through_the_ioc_is_refused_with_the_fix(run_engine):
    from ophyd_async.core import set_mock_value

    from labsky.transports import InstrumentError

    rp = redpitaya(RedPitayaParams(ioc_prefix="RPTEST:"))
    rp.set_name("rp")
    call(rp.connect(mock=True))
    acquirer = rp.scope.acquirer
    set_mock_value(acquirer.mode, ScopeMode.DEEP)  # type: ignore[attr-defined]
    with pytest.raises(InstrumentError, match="reach the board directly"):
        call(acquirer.acquire())
