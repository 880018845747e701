"""The parts of `pid_lock`, each on its own: no board, no simulator.

`search_fringe` runs on bluesky's RunEngineSimulator against an unconnected
Red Pitaya whose PID reads a Lorentzian fringe of the integrator's value;
the end-to-end lock on the simulated cavity is in test_redpitaya.py.
"""

import math

import numpy as np
import pytest
from bluesky.simulators import RunEngineSimulator

from labsky.devices.redpitaya import RedPitayaParams, redpitaya
from labsky.devices.redpitaya.plans import (
    Fringe,
    LockOutcome,
    LockSettings,
    LockWatch,
    engage,
    find_fringe,
    search_fringe,
)

PEAK, CENTRE, HALF_WIDTH = 0.8, 0.3, 0.05


def fringe(u):
    """A cavity's transmission (V) against the piezo output (V)."""
    return PEAK / (1 + ((np.asarray(u) - CENTRE) / HALF_WIDTH) ** 2)


@pytest.fixture
def pid():
    board = redpitaya(RedPitayaParams(address="tcp://127.0.0.1:9"))  # never connected
    board.set_name("rp")
    return board.pid


def test_find_fringe_locks_halfway_down_the_chosen_side():
    outputs = np.linspace(-1, 1, 2001)
    falling = find_fringe(outputs, fringe(outputs), LockSettings())
    # half the peak is one half width from the centre, where |slope| = A / 2w
    assert falling.target == pytest.approx(PEAK / 2)
    assert falling.peak == pytest.approx(PEAK)
    assert falling.crossing == pytest.approx(CENTRE + HALF_WIDTH, abs=1e-3)
    assert falling.slope == pytest.approx(PEAK / (2 * HALF_WIDTH), rel=0.01)
    rising = find_fringe(outputs, fringe(outputs), LockSettings(side="rising"))
    assert rising.crossing == pytest.approx(CENTRE - HALF_WIDTH, abs=1e-3)
    fixed = find_fringe(outputs, fringe(outputs), LockSettings(setpoint=0.2))
    assert fixed.target == 0.2 and fixed.crossing > falling.crossing


def test_find_fringe_says_why_it_cannot_lock():
    outputs = np.linspace(-1, 1, 201)
    with pytest.raises(RuntimeError, match="peaks at 0.8 V .* below the setpoint 1"):
        find_fringe(outputs, fringe(outputs), LockSettings(setpoint=1.0))
    inside = np.linspace(0.2, 0.32, 50)  # the falling side is outside the range
    with pytest.raises(RuntimeError, match="falling side .* widen `search`"):
        find_fringe(inside, fringe(inside), LockSettings())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"setpoint": 4.0}, "setpoint=4.0 V"),
        ({"fraction": 1.5}, "fraction=1.5"),
        ({"side": "up"}, "side='up'"),
        ({"p": -1.0}, "give magnitudes"),
        ({"search": (1.0, 0.0)}, "low < high"),
        ({"search_points": 3}, "search_points=3"),
        ({"interval": 0.0}, "interval=0.0"),
        ({"verify_reads": 0}, "verify_reads >= 1"),
    ],
)
def test_lock_settings_refuse_what_cannot_lock(settings, message):
    with pytest.raises(ValueError, match=message):
        LockSettings(**settings)


def test_gains_have_the_sign_of_negative_feedback_on_the_side():
    p, i = LockSettings().gains(slope=8.0, rate=100.0)
    assert p == pytest.approx(0.2 / 8) and i == pytest.approx(30 / (2 * math.pi * 8))
    assert LockSettings(side="rising").gains(8.0, 100.0) == (-p, -i)
    assert LockSettings(p=0.1, i=2.0).gains(8.0, 100.0) == (0.1, 2.0)


def test_a_lock_is_lost_on_a_large_error_a_full_integrator_or_a_railed_output():
    watch = LockWatch(0.4, (-1.0, 1.0), "e", "out", "ival")
    assert not watch.lost({"e": 0.01, "out": 0.35, "ival": 0.35})
    assert watch.lost({"e": 0.21, "out": 0.35, "ival": 0.35})  # beyond half of 0.4
    assert watch.lost({"e": 0.0, "out": 0.35, "ival": 3.7})  # 0.9 of the 4 V limit
    assert watch.lost({"e": 0.0, "out": 1.0, "ival": 0.35})  # on the upper limit


def test_the_outcome_has_every_key_the_plan_returns():
    assert set(LockOutcome().as_dict()) == {
        "locked", "relocks", "setpoint", "peak", "slope", "p", "i", "output",
        "error_rms",
    }  # fmt: skip


def test_search_fringe_steps_the_integrator_with_the_gains_at_zero(pid):
    sim = RunEngineSimulator()
    for signal, value in (
        (pid.min_voltage, -1.0),
        (pid.max_voltage, 1.0),
        (pid.rate, 100.0),
    ):
        located = {"setpoint": value, "readback": value}
        sim.add_handler("locate", lambda msg, where=located: where, signal.name)
    ival = [0.0]
    sim.add_handler("set", lambda msg: ival.__setitem__(0, msg.args[0]), pid.ival.name)
    iterations = [0]  # the loop runs once each time the plan looks

    def tick(msg):
        iterations[0] += 1
        return {msg.obj.name: {"value": iterations[0], "timestamp": 0.0}}

    sim.add_handler("read", tick, pid.iterations.name)
    measured = pid.setpoint.measured.name

    def read_pid(msg):
        return {measured: {"value": float(fringe(ival[0])), "timestamp": 0.0}}

    sim.add_handler("read", read_pid, pid.name)
    messages = sim.simulate_plan(search_fringe(pid, LockSettings(search_points=401)))
    found = sim.return_value
    assert isinstance(found, Fringe)
    assert found.crossing == pytest.approx(CENTRE + HALF_WIDTH, abs=0.01)
    sets = [(m.obj.name, m.args[0]) for m in messages if m.command == "set"]
    # the loop stops, its gains go to zero, then the integrator starts the sweep
    assert sets[:5] == [
        ("rp-pid-enabled", False), ("rp-pid-p", 0.0), ("rp-pid-i", 0.0),
        ("rp-pid-ival", -1.0), ("rp-pid-enabled", True),
    ]  # fmt: skip
    steps = [value for name, value in sets[5:] if name == "rp-pid-ival"]
    np.testing.assert_allclose(steps, np.linspace(-1, 1, 401))
    streams = [m.kwargs["name"] for m in messages if m.command == "create"]
    assert streams == ["search"] * 401
    # each step waits for three loop iterations (looking every half period
    # at 100 Hz) before it reads the input, however slow the loop runs
    assert iterations[0] == 401 * 4
    sleeps = {m.args[0] for m in messages if m.command == "sleep"}
    assert sleeps == {0.005}


def test_search_fringe_names_the_pid_whose_loop_stopped_running(pid):
    sim = RunEngineSimulator()
    rate = {"setpoint": 100.0, "readback": 100.0}
    sim.add_handler("locate", lambda msg: rate, pid.rate.name)
    sim.add_read_handler_for(pid.iterations, 7)  # never advances
    with pytest.raises(RuntimeError, match="rp-pid: the loop has not run for 1 s"):
        sim.simulate_plan(search_fringe(pid, LockSettings(search=(-1.0, 1.0))))


def test_engage_starts_the_integrator_at_the_crossing_with_the_gains(pid):
    sim = RunEngineSimulator()
    messages = sim.simulate_plan(engage(pid, Fringe(0.4, 0.35, 8.0, 0.8), (0.025, 0.6)))
    sets = [(m.obj.name, m.args[0]) for m in messages if m.command == "set"]
    assert sets == [
        ("rp-pid-enabled", False),
        ("rp-pid-setpoint-target", 0.4), ("rp-pid-ival", 0.35),
        ("rp-pid-p", 0.025), ("rp-pid-i", 0.6),
        ("rp-pid-enabled", True),
    ]  # fmt: skip
