"""Plan forms: fields from the plan's model, arguments checked as `labsky run` checks them."""

import pytest

from labsky.gui.plans import PlanForms, parse_value
from labsky.plan_loader import load_plans
from labsky.plans.signature import PlanArgumentError, plan_signature

NAMES = {"pdet", "stage", "meter", "camera"}


@pytest.fixture(scope="module")
def forms():
    plans, _ = load_plans([])
    return PlanForms(plans, NAMES)


def test_a_form_has_a_field_per_parameter_and_hides_callables(forms):
    (count,) = [f for f in forms.forms() if f["name"] == "count"]
    fields = {f["name"]: f for f in count["fields"]}
    assert list(fields) == ["detectors", "num", "delay", "md"]  # per_shot hidden
    assert fields["detectors"]["device"] and fields["detectors"]["many"]
    assert fields["detectors"]["required"]
    assert fields["num"]["default"] == "1" and fields["num"]["hint"] == "int | None"
    assert count["summary"].startswith("Take one or more readings")


def test_device_fields_offer_the_fitting_devices_the_queue_server_listed(forms):
    forms.set_allowed(
        {
            "count": {
                "parameters": [
                    {
                        "name": "detectors",
                        "annotation": {
                            "devices": {
                                "ReadableDevices": ["pdet", "pdet.acquire_time"]
                            }
                        },
                    }
                ]
            },
            "scan": {"parameters": []},
        }
    )
    forms.limit_options({"pdet", "stage.x"})
    (count,) = forms.forms()[:1]
    assert count["name"] == "count"
    assert count["fields"][0]["options"] == ["pdet"]  # a signal is not offered
    assert {f["name"] for f in forms.forms()} == {"count", "scan"}


def test_a_filled_in_form_gives_the_plan_call(forms):
    args, kwargs = forms.check(
        "scan",
        {
            "detectors": ["pdet"],
            "args": "[stage.x, -1, 1]",
            "num": "5",
            "md": "{sample: Si}",
        },
    )
    assert args == [["pdet"], "stage.x", -1, 1]
    assert kwargs == {"num": 5, "md": {"sample": "Si"}}
    assert forms.check("count", {"detectors": ["pdet"], "num": "3"}) == (
        [],
        {"detectors": ["pdet"], "num": 3},
    )


def test_a_bad_value_is_refused_with_labsky_runs_message(forms):
    plans, _ = load_plans([])
    with pytest.raises(PlanArgumentError) as cli:
        plan_signature(plans["count"]).bind(
            [["pdet"]], {"num": "five"}, names=NAMES, plan_name="count"
        )
    with pytest.raises(PlanArgumentError) as form:
        forms.check("count", {"detectors": ["pdet"], "num": "five"})
    assert str(form.value) == str(cli.value)
    assert "num='five'" in str(form.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"detectors": ["pdot"]}, "pdot"),
        ({"num": "3"}, "detectors"),
        ({"detectors": ["pdet"], "speed": "3"}, "no parameter speed"),
    ],
)
def test_other_mistakes_name_the_field(forms, values, message):
    with pytest.raises(PlanArgumentError, match=message):
        forms.check("count", values)


def test_scan_axes_must_be_a_list(forms):
    with pytest.raises(PlanArgumentError, match=r"args: write a list"):
        forms.check("scan", {"detectors": ["pdet"], "args": "stage.x"})


def test_values_are_read_as_yaml_with_numbers_as_numbers():
    assert parse_value("1.46e6") == 1.46e6
    assert parse_value("[pdet, meter]") == ["pdet", "meter"]
    assert parse_value("nan") == "nan"
    assert parse_value("{sample: Si}") == {"sample": "Si"}
