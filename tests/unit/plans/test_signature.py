"""The plan-signature model: what a plan's arguments become, and what is refused.

Devices are ophyd-async's simulated ones and an unconnected Red Pitaya: the
model needs their types and names, never a connection.
"""

import enum
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.protocols import Movable, Readable
from ophyd_async.sim import PatternGenerator, SimMotor, SimPointDetector, SimStage

from labsky.devices.redpitaya import RedPitayaParams, TriggerSource, redpitaya
from labsky.plan_loader import load_plan_module
from labsky.plans import BLUESKY_PLANS, LABSKY_PLANS
from labsky.plans.signature import (
    PlanArgumentError,
    PlanDefinitionError,
    UnknownPlanError,
    plan_signature,
    unknown_plan,
)
from tests.conftest import REPO


@pytest.fixture
def devices():
    pattern = PatternGenerator()
    rp = redpitaya(RedPitayaParams(address="tcp://127.0.0.1:9"))  # never connected
    rp.set_name("rp")
    return {
        "pdet": SimPointDetector(pattern, name="pdet"),
        "stage": SimStage(pattern, name="stage"),
        "laser": SimMotor(name="laser"),
        "rp": rp,
    }


def bind(plan, *args, devices, **kwargs):
    return plan_signature(plan).bind(args, kwargs, devices)


def refusal(plan, *args, devices, **kwargs):
    with pytest.raises(PlanArgumentError) as info:
        bind(plan, *args, devices=devices, **kwargs)
    message = str(info.value)
    assert "\n" not in message  # one line, whatever went wrong
    return message


def test_device_names_resolve_to_the_devices_and_their_parts(devices):
    bound = bind(bp.scan, ["pdet"], "stage.x", -1, 1, devices=devices, num=5)
    assert bound.args == ([devices["pdet"]], devices["stage"].x, -1.0, 1.0)
    assert bound.kwargs == {"num": 5}
    lockin = bind(LABSKY_PLANS["network_analyzer"], "rp.iq", 1e6, 2e6, devices=devices)
    assert lockin.args[0] is devices["rp"].iq


def test_device_objects_from_the_prompt_pass_as_they_are(devices):
    detectors = (devices["pdet"],)
    bound = bind(bp.count, detectors, devices=devices)
    assert bound.args[0] == detectors and bound.args[0][0] is devices["pdet"]


def test_md_is_passed_on_untouched_even_where_it_names_devices(devices):
    """The bug: every string equal to a device name became the device."""
    md = {"laser": "laser", "sample": ["pdet", "stage.x"]}
    bound = bind(bp.count, ["pdet"], devices=devices, md=md)
    assert bound.kwargs["md"] is md
    assert md == {"laser": "laser", "sample": ["pdet", "stage.x"]}


def test_text_parameters_stay_text_even_if_they_name_a_device(devices):
    plan = bp.adaptive_scan
    bound = bind(
        plan, ["pdet"], "pdet", "laser", 0, 1, 0.1, 0.5, 0.1, True, devices=devices
    )
    assert bound.arguments["target_field"] == "pdet"
    assert bound.arguments["motor"] is devices["laser"]


def test_a_missing_axis_is_named_with_the_parts_the_device_has(devices):
    """The bug: `stage.z` stayed a string and bluesky failed with two tracebacks."""
    message = refusal(bp.scan, ["pdet"], "stage.z", -1, 1, devices=devices, num=3)
    assert message == (
        "scan: argument args[0] (motor)='stage.z' is not a device of this session: "
        "stage has no part 'z' (its parts: x, y); did you mean 'stage.y' or "
        "'stage.x'?"
    )


def test_a_misspelled_device_gets_a_did_you_mean(devices):
    assert refusal(bp.count, ["pdte"], devices=devices) == (
        "count: argument detectors[0]='pdte' is not a device of this session; "
        "did you mean 'pdet'?"
    )
    message = refusal(bp.count, ["nothing_like_it"], devices=devices)
    assert "is not a device of this session (devices that fit Readable: " in message


def test_a_device_of_the_wrong_kind_is_refused_with_those_that_fit(devices):
    message = refusal(
        LABSKY_PLANS["network_analyzer"], "rp.pid", 1e6, 2e6, devices=devices
    )
    assert message == (
        "network_analyzer: argument lockin='rp.pid' is a RedPitayaPid, not "
        "RedPitayaLockIn; did you mean 'rp.iq'?"
    )
    message = refusal(bp.scan, ["pdet"], devices["pdet"], 0, 1, 3, devices=devices)
    assert message == (
        "scan: argument args[0] (motor)=pdet is a SimPointDetector, not Movable"
    )


def test_scans_trailing_num_is_checked_as_an_integer(devices):
    """The prompt's `scan([pdet], stage.x, -1, 1, 'five')` printed 215 lines."""
    stage = devices["stage"]
    assert refusal(
        bp.scan, [devices["pdet"]], stage.x, -1, 1, "five", devices=devices
    ) == (
        "scan: argument args[3] (num)='five' does not fit int: input should be a "
        "valid integer, unable to parse string as an integer"
    )
    bound = bind(bp.scan, ["pdet"], "stage.x", "-1", 1, 5, devices=devices)
    assert bound.args[1:] == (stage.x, -1.0, 1.0, 5)


def test_axes_that_do_not_make_whole_groups(devices):
    message = refusal(bp.scan, ["pdet"], "stage.x", -1, 1, 3, devices=devices, num=3)
    assert message == (
        "scan: args: give motor, start, stop for each axis, then num (or num=); "
        "got 4: 'stage.x', -1, 1, 3"
    )
    grid = bind(
        bp.grid_scan, ["pdet"], "stage.x", -1, 1, 3, "stage.y", 0, 1, 2, True,
        devices=devices,
    )  # fmt: skip
    assert grid.args[5] is devices["stage"].y and grid.args[-1] is True
    snaked = bind(
        bp.grid_scan, ["pdet"], "stage.x", -1, 1, 3, "stage.y", 0, 1, 2,
        devices=devices, snake_axes=["stage.y"],
    )  # fmt: skip
    assert snaked.kwargs["snake_axes"] == [devices["stage"].y]
    listed = bind(bp.list_scan, ["pdet"], "laser", np.arange(3.0), devices=devices)
    assert listed.args[1] is devices["laser"]


def test_scalars_are_coerced_to_the_declared_types(devices):
    bound = bind(
        LABSKY_PLANS["network_analyzer"], "rp.iq", "1.46e6", 1.54e6, "31",
        devices=devices,
    )  # fmt: skip
    assert bound.args[1:] == (1.46e6, 1.54e6, 31)
    series = bind(
        LABSKY_PLANS["scope_series"], "rp.scope", devices=devices, trigger="CH1_NE"
    )
    assert series.kwargs["trigger"] is TriggerSource.CH1_NE
    lock = bind(LABSKY_PLANS["pid_lock"], "rp.pid", devices=devices, search=[0, 1])
    assert lock.kwargs["search"] == (0.0, 1.0)


def test_wrong_scalars_name_the_argument_the_value_and_the_type(devices):
    assert refusal(bp.count, ["pdet"], devices=devices, num="many") == (
        "count: argument num='many' does not fit int | None: input should be a "
        "valid integer, unable to parse string as an integer"
    )
    message = refusal(
        LABSKY_PLANS["pid_lock"], "rp.pid", devices=devices, side="up", fraction="x"
    )
    assert message == (
        "pid_lock: argument fraction='x' does not fit float: input should be a "
        "valid number, unable to parse string as a number; argument side='up' does "
        "not fit 'falling' | 'rising': input should be 'falling' or 'rising'"
    )
    message = refusal(
        LABSKY_PLANS["scope_series"], "rp.scope", devices=devices, trigger="X"
    )
    assert (
        "argument trigger='X' does not fit TriggerSource: input should be 'NOW'"
        in message
    )


def test_unknown_and_missing_arguments(devices):
    assert refusal(bp.count, ["pdet"], devices=devices, nmu=3) == (
        "count: it has no argument 'nmu'; did you mean 'num'? "
        "(it takes: detectors, num, delay, per_shot, md)"
    )
    assert refusal(bp.count, devices=devices).startswith(
        "count: missing a required argument: 'detectors'"
    )


def test_list_parameters_take_arrays_and_refuse_text(devices):
    series = LABSKY_PLANS["exposure_series"]
    bound = bind(series, ["pdet"], "laser", np.array([1e-3, 2e-3]), devices=devices)
    assert bound.args[2] == [1e-3, 2e-3]
    words = bind(series, ["pdet"], "laser", ["1e-3", 2e-3], devices=devices)
    assert words.args[2] == [1e-3, 2e-3]  # YAML leaves 1e-3 as text
    assert refusal(bp.count, "pdet", devices=devices) == (
        "count: argument detectors='pdet' does not fit Sequence[Readable]: expected "
        "a list, got str"
    )


def test_an_iterable_hint_takes_a_generator_unread(devices):
    delays = (d for d in [0.1, 0.2])
    bound = bind(bp.count, ["pdet"], 2, delays, devices=devices)
    assert bound.args[2] is delays
    message = refusal(bp.count, ["pdet"], 2, [0.1, "a"], devices=devices)
    assert message.startswith(
        "count: argument delay[1]='a' does not fit float | Iterable[float]"
    )


def test_names_alone_check_a_call_before_any_device_is_built():
    model = plan_signature(bp.scan)
    bound = model.bind(
        (["pdet"], "stage.x", -1, 1), {"num": 3}, names={"pdet", "stage"}
    )
    assert bound.args[:2] == (["pdet"], "stage.x")  # nothing is resolved
    with pytest.raises(
        PlanArgumentError,
        match=r"'stag.x' is not a device .*; did you mean 'stage.x'\?",
    ):
        model.bind((["pdet"], "stag.x", -1, 1), {"num": 3}, names={"pdet", "stage"})
    with pytest.raises(PlanArgumentError, match="num='x' does not fit"):
        model.bind((["pdet"], "stage.x", -1, 1), {"num": "x"}, names={"pdet", "stage"})


def test_an_unknown_plan_is_a_key_error_with_a_did_you_mean():
    error = unknown_plan("cuont", ["count", "scan"])
    assert isinstance(error, KeyError) and isinstance(error, UnknownPlanError)
    assert (
        str(error)
        == "no plan named 'cuont'; did you mean 'count'? (plans: count, scan)"
    )


def test_ipython_shows_a_plan_argument_error_as_its_one_line(devices):
    with pytest.raises(PlanArgumentError) as info:
        bind(bp.count, ["pdte"], devices=devices)
    assert info.value._render_traceback_() == [f"PlanArgumentError: {info.value}"]


def test_every_plan_a_session_offers_has_a_model():
    modules = [
        load_plan_module(REPO / "plans" / f) for f in ("common.py", "imaging.py")
    ]
    plans = {**BLUESKY_PLANS, **LABSKY_PLANS}
    for module in modules:
        assert module.problems == []
        plans.update(module.plans)
    for name, plan in plans.items():
        model = plan_signature(plan)
        assert model.name == plan.__name__, name


def test_device_references_are_only_protocols_and_device_classes():
    class Edge(enum.Enum):
        RISING = "PE"

    def plan(
        detectors: Sequence[Readable],
        motor: Movable | None,
        label: str,
        edge: Edge,
        extra: Iterable[Any],
        md: dict[str, Any] | None = None,
    ):
        yield from ()

    model = plan_signature(plan)
    refs = {name: p.device for name, p in model.parameters.items()}
    assert str(refs.pop("detectors")) == "Readable"
    assert refs == dict.fromkeys(["motor", "label", "edge", "extra", "md"])
    assert model.parameters["motor"].hint == Movable | None


def test_hints_that_cannot_be_evaluated_are_a_definition_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(
        textwrap.dedent('''
            from bluesky.utils import MsgGenerator
            __all__ = ["wobble"]

            def wobble(amount: "Wobbly", md: dict | None = None) -> MsgGenerator:
                """Wobble."""
                yield from ()
        ''')
    )
    module = load_plan_module(path)
    assert module.plans == {}
    [problem] = module.problems
    assert problem.startswith(f"{path}:5: wobble: type hints cannot be evaluated: ")
    assert "'Wobbly' is not defined" in problem

    def wobble(amount: "Wobbly"):  # noqa: F821 - the point of the test
        yield from ()

    with pytest.raises(PlanDefinitionError, match="wobble: type hints cannot be"):
        plan_signature(wobble)


def test_cli_words_become_plan_arguments():
    from labsky.cli import plan_call_arguments

    args, kwargs = plan_call_arguments(
        ["[pdet]", "1.46e6", "nan-x"], ["num=5", "log=true"], ["sample=Si"]
    )
    assert args == [["pdet"], 1.46e6, "nan-x"]
    assert kwargs == {"num": 5, "log": True, "md": {"sample": "Si"}}
    with pytest.raises(ValueError, match="--md 'sample': write KEY=VALUE"):
        plan_call_arguments([], [], ["sample"])
