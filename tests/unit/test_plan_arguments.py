import bluesky.plans as bp
import pytest
from ophyd_async.sim import SimMotor, SimPointDetector

from labsky.plan_arguments import PlanArgumentError, bind_plan_arguments


@pytest.fixture
def devices():
    return {"m": SimMotor(name="m"), "det": SimPointDetector(None, name="det")}


def test_device_names_resolve_including_children(devices):
    from ophyd_async.sim import PatternGenerator, SimStage

    devices["stage"] = SimStage(PatternGenerator(), name="stage")
    bound = bind_plan_arguments(
        bp.scan, [["det"], "stage.x", -1, 1], {"num": 5}, devices
    )
    assert bound.args[0] == [devices["det"]]
    assert bound.args[1] is devices["stage"].x


def test_unknown_device_is_named_with_the_known_ones(devices):
    with pytest.raises(PlanArgumentError) as info:
        bind_plan_arguments(bp.count, (), {"detectors": ["dte"]}, devices)
    assert str(info.value) == (
        "count: argument detectors[0]='dte' does not fit Sequence[Readable]: "
        "'dte' is not a device of this session (devices: det, m)"
    )


def test_wrong_types_and_unknown_parameters(devices):
    with pytest.raises(PlanArgumentError, match="argument num='five' does not fit int"):
        bind_plan_arguments(
            bp.count, (), {"detectors": ["det"], "num": "five"}, devices
        )
    with pytest.raises(
        PlanArgumentError,
        match="unexpected keyword argument 'nmu'.*it takes: detectors, num",
    ):
        bind_plan_arguments(bp.count, (), {"detectors": ["det"], "nmu": 3}, devices)


def test_strings_stay_strings_where_a_string_is_wanted(devices):
    def plan(detectors: list, label: str, md: dict | None = None):
        yield from ()

    bound = bind_plan_arguments(
        plan, (), {"detectors": ["det"], "label": "det"}, devices
    )
    assert bound.arguments["label"] == "det"


def test_text_is_coerced_to_the_declared_scalar_types(devices):
    import enum

    class Edge(enum.StrEnum):
        RISING = "PE"
        FALLING = "NE"

    def sweep(start: float, num: int, edge: Edge = Edge.RISING):
        yield from ()

    bound = bind_plan_arguments(sweep, ["1.46e6", "31"], {"edge": "NE"}, devices)
    assert bound.args == (1.46e6, 31, Edge.FALLING)
    with pytest.raises(PlanArgumentError, match=r"num='3.5' does not fit int"):
        bind_plan_arguments(sweep, [1.0, "3.5"], {}, devices)


def test_cli_words_become_plan_arguments():
    from labsky.cli import plan_call_arguments

    args, kwargs = plan_call_arguments(
        ["[pdet]", "1.46e6", "nan-x"], ["num=5", "log=true"], ["sample=Si"]
    )
    assert args == [["pdet"], 1.46e6, "nan-x"]
    assert kwargs == {"num": 5, "log": True, "md": {"sample": "Si"}}
    with pytest.raises(ValueError, match="--md 'sample': write KEY=VALUE"):
        plan_call_arguments([], [], ["sample"])
