"""The daemon's device API on a session in this process (no queue server, no browser).

A simulated 1830-C power meter on a stable link (unplugged before the
session starts, so it fails to connect), an ophyd-async sim motor, and the
API's requests and published values over its real 0MQ sockets.
"""

import asyncio
import textwrap
import threading

import bluesky.plan_stubs as bps
import pytest

from labsky.daemon.device_api import DeviceService
from labsky.daemon.device_client import DeviceClient, DeviceRequestError


@pytest.fixture
def lab(tmp_path, simulated_lab, labsky_session):
    link = tmp_path / "ttyUSB-meter"
    host = simulated_lab(
        {"meter": {"kind": "newport1830c", "params": {"link": str(link)}}},
        world={"laser": {"emission": True, "shutter_open": True, "warmup": 0}},
    )
    host.set_fault("meter", "disconnect")  # unplugged when the session starts
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "devices.yaml").write_text(
        textwrap.dedent(
            f"""\
            devices:
              rotator:
                kind: sim_motor
                params: {{units: deg, velocity: 0.0}}
                groups: [motors]
                description: Half-wave plate.
              meter:
                kind: newport1830c
                params: {{port: '{link}'}}
                groups: [detectors]
            """
        )
    )
    (profile / "profile.yaml").write_text(
        "devices: [devices.yaml]\nconnect_timeout: 2\ntiled: {uri: null}\n"
    )
    session = labsky_session(profile)
    service = DeviceService(session).start()
    try:
        yield host, session, service
    finally:
        service.close()


def ask(service, op, **fields):
    async def go():
        client = DeviceClient(service.address, timeout=60)
        try:
            return await client.request(op, **fields)
        finally:
            client.close()

    return asyncio.run(go())


def test_describe_gives_groups_movables_and_the_failed_device(lab):
    _, _, service = lab
    described = ask(service, "describe")
    (rotator,) = described["devices"]
    assert rotator["groups"] == ["motors"] and rotator["kind"] == "sim_motor"
    assert rotator["description"] == "Half-wave plate."
    (movable,) = rotator["movables"]
    assert movable == {
        "name": "rotator",
        "key": "rotator",
        "setpoint": "rotator-user_setpoint",
        "units": "deg",
        "precision": None,
        "dtype": "number",
        "choices": [],
        "limits": None,
        "stoppable": True,
    }
    configuration = {s["key"] for s in rotator["signals"] if s["kind"] == "config"}
    assert {"rotator-velocity", "rotator-acceleration_time"} <= configuration
    (meter,) = described["failed"]
    assert meter["name"] == "meter" and "meter" in meter["error"]
    assert described["publish"].startswith("tcp://127.0.0.1:")


def test_set_checks_then_moves_and_read_returns_the_readback(lab):
    _, session, service = lab
    assert ask(service, "set", name="rotator", value=12.5) == {"value": 12.5}
    ask(service, "watch", seconds=5)

    async def wait_value():
        client = DeviceClient(service.address)
        try:
            async for topic, message, _ in client.updates():
                if topic == "values" and message.get("rotator", [None])[0] == 12.5:
                    return message["rotator"]
        finally:
            client.close()

    value, stamp = asyncio.run(asyncio.wait_for(wait_value(), 10))
    assert value == 12.5 and stamp > 0
    assert ask(service, "read", keys=["rotator"])["values"]["rotator"][0] == 12.5
    for value, message in [
        ("abc", "rotator: 'abc' is not a number"),
        (float("nan"), "rotator: nan is not a finite number"),
    ]:
        with pytest.raises(DeviceRequestError, match=message):
            ask(service, "set", name="rotator", value=value)
    with pytest.raises(DeviceRequestError, match="no device 'rotater'"):
        ask(service, "set", name="rotater", value=1)
    with pytest.raises(DeviceRequestError, match="meter is not connected: .*reconnect"):
        ask(service, "set", name="meter.range", value=1)
    with pytest.raises(DeviceRequestError, match="rotator has no part 'z'"):
        ask(service, "set", name="rotator.z", value=1)
    with pytest.raises(DeviceRequestError, match="unknown request 'fly'"):
        ask(service, "fly")
    ask(service, "stop", name="rotator")  # a stop of a motor at rest is harmless
    # a configuration signal is set by its path, with its own type check
    ask(service, "set", name="rotator.velocity", value=2)
    assert asyncio.run(_value(session.devices["rotator"].velocity)) == 2


async def _value(signal):
    return await signal.get_value()


def test_moves_are_refused_while_a_plan_runs_and_values_come_from_its_events(lab):
    _, session, service = lab
    release = threading.Event()
    running = threading.Event()
    seen = {}

    def plan():
        yield from bps.open_run()
        yield from bps.declare_stream(session.devices["rotator"], name="primary")
        for position in (1.0, 2.0, 3.0):
            yield from bps.mv(session.devices["rotator"], position)
            yield from bps.trigger_and_read([session.devices["rotator"]])
        running.set()
        while not release.is_set():
            yield from bps.sleep(0.02)
        yield from bps.close_run()

    def client():  # the RunEngine wants the main thread: the client has this one
        try:
            assert running.wait(30)
            for op, fields in [
                ("set", {"name": "rotator", "value": 5}),
                ("reconnect", {"name": "meter"}),
            ]:
                try:
                    ask(service, op, **fields)
                except DeviceRequestError as exc:
                    seen[op] = str(exc)
            seen["read"] = ask(service, "read", keys=["rotator"])
        finally:
            release.set()

    thread = threading.Thread(target=client)
    thread.start()
    session.run_engine(plan())
    thread.join(30)
    assert seen["set"] == "a plan is running: pause it before you set rotator"
    assert seen["reconnect"] == "a plan is running: pause it before you reconnect meter"
    # the last event's reading reached the latest values (nothing polled)
    assert seen["read"]["plan_running"] is True
    assert seen["read"]["values"]["rotator"][0] == 3.0
    assert ask(service, "read")["plan_running"] is False


def test_a_failed_device_reconnects_once_its_instrument_is_back(lab):
    host, session, service = lab
    with pytest.raises(DeviceRequestError, match="meter"):
        ask(service, "reconnect", name="meter")
    host.set_fault("meter", "none")
    assert ask(service, "reconnect", name="meter") == {"reconnected": ["meter"]}
    described = ask(service, "describe")
    assert described["failed"] == []
    (meter,) = [d for d in described["devices"] if d["name"] == "meter"]
    assert meter["groups"] == ["detectors"]
    assert any(s["key"] == "meter-power" for s in meter["signals"])
    with pytest.raises(DeviceRequestError, match="no device 'metre' is declared"):
        ask(service, "reconnect", name="metre")
