"""Queue-server annotations come from each plan's argument model."""

import bluesky.plans as bp
from ophyd_async.sim import PatternGenerator, SimMotor, SimPointDetector, SimStage

from labsky.daemon.annotations import queue_annotation
from labsky.devices.redpitaya import RedPitayaParams, TriggerSource, redpitaya
from labsky.plans import LABSKY_PLANS


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


def test_device_parameters_list_the_devices_that_fit():
    lockin = queue_annotation(LABSKY_PLANS["network_analyzer"], devices())
    assert lockin["parameters"]["lockin"] == {
        "annotation": "RedPitayaLockInDevices",
        "devices": {"RedPitayaLockInDevices": ["rp.iq"]},
    }
    assert lockin["parameters"]["start"] == {"annotation": "float"}
    assert lockin["description"].startswith("Sweep the lock-in's generator")
    count = queue_annotation(bp.count, devices())["parameters"]["detectors"]
    assert count["annotation"] == "typing.List[ReadableDevices]"
    assert {"pdet", "stage.x", "laser", "rp.iq"} <= set(
        count["devices"]["ReadableDevices"]
    )


def test_the_model_decides_what_the_queue_server_sees():
    parameters = queue_annotation(LABSKY_PLANS["scope_series"])["parameters"]
    values = ", ".join(repr(m.value) for m in TriggerSource)
    assert parameters["trigger"] == {"annotation": f"typing.Literal[{values}]"}
    assert parameters["scope"] == {"annotation": "__DEVICE__"}  # none to list
    assert parameters["md"] == {"annotation": "typing.Union[dict, None]"}
    grid = queue_annotation(bp.grid_scan, devices())["parameters"]
    assert "args" not in grid  # checked by the model when the plan runs
    assert grid["snake_axes"]["annotation"] == (
        "typing.Union[typing.List[MovableDevices], bool, None]"
    )
