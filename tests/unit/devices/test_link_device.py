"""Connecting devices over their links: a failed greeting lets go of the port."""

import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call

from labsky.devices.newport import Esp300, Newport1830C
from labsky.transports import (
    InstrumentError,
    InstrumentTimeoutError,
    LinkClosedError,
    SerialLink,
)


def test_a_failed_handshake_closes_the_port_so_the_next_attempt_can_lock_it(
    simulated_lab, run_engine, connect_devices
):
    lab = simulated_lab({"stage": {"kind": "esp300", "params": {"fault": "garbage"}}})
    port = lab.endpoints["stage"]
    first = Esp300(port, {"x": 1}, timeout=0.2, name="stage")
    with pytest.raises(InstrumentError, match="stage: "):
        call(first.connect(timeout=3))
    lab.set_fault("stage", "none")  # the controller is healthy again
    second = Esp300(port, {"x": 1}, name="stage")  # as a new session builds it
    connect_devices(second)  # before: "Could not exclusively lock port"
    assert not first.link.is_open
    assert call(second.x.user_readback.get_value()) == pytest.approx(0)


def test_a_handshake_cut_by_the_connect_timeout_closes_the_port(
    simulated_lab, run_engine, connect_devices
):
    lab = simulated_lab(
        {"meter": {"kind": "newport1830c", "params": {"fault": "silent"}}}
    )
    port = lab.endpoints["meter"]
    slow = Newport1830C(port, timeout=5.0, name="meter")
    with pytest.raises(
        InstrumentTimeoutError, match="meter: .*connect timeout of 0.5 s"
    ):
        call(slow.connect(timeout=0.5))
    lab.set_fault("meter", "none")
    again = Newport1830C(port, name="meter")
    connect_devices(again)
    assert not slow.link.is_open
    assert call(again.wavelength.get_value()) > 0


def test_a_port_another_program_holds_says_so(simulated_lab, run_engine):
    lab = simulated_lab({"meter": {"kind": "newport1830c"}})
    holder = SerialLink(lab.endpoints["meter"], label="other")
    call(holder.open())
    try:
        with pytest.raises(LinkClosedError) as info:
            call(SerialLink(lab.endpoints["meter"], label="meter").open())
        message = str(info.value)
        assert message.startswith(f"meter: cannot open {lab.endpoints['meter']}")
        assert "another program (or another session) has" in message
        assert f"fuser -v {lab.endpoints['meter']}" in message
    finally:
        call(holder.close())
