"""Instruments that come back: `session.reconnect` over the real simulators.

A power meter on a pseudo-terminal (its simulator unplugged and plugged in
again on a stable link, as `/dev/serial/by-id/...` is), a Red Pitaya on TCP
(the board drops off the network and returns), and a controller that was
silent when the session started.
"""

import textwrap

import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call

from labsky.device_manager import DeviceError
from labsky.testing.waiting import wait_until
from labsky.transports import LinkClosedError


@pytest.fixture
def lab(tmp_path, labsky_session):
    (tmp_path / "devices.yaml").write_text(
        textwrap.dedent(
            """\
            devices:
              meter:
                kind: newport1830c
                params: {port: "${sim.meter}", wavelength: 633}
                groups: [detectors, baseline]
              rp:
                kind: redpitaya
                params: {address: "${sim.rp}"}
              stage:
                kind: esp300
                params: {port: "${sim.stage}", axes: {x: 1}, timeout: 0.2}
              bus:
                kind: elliptec_bus
                params: {port: "${sim.bus}"}
              polarizer:
                kind: ell14
                requires: {bus: bus}
                params: {address: "2"}
            """
        )
    )
    (tmp_path / "profile.yaml").write_text(
        textwrap.dedent(
            f"""\
            devices: [devices.yaml]
            connect_timeout: 3
            tiled: {{uri: null}}
            simulation:
              world: {{laser: {{emission: true, shutter_open: true, warmup: 0}}}}
              instruments:
                meter: {{kind: newport1830c, params: {{link: {tmp_path}/meter}}}}
                rp: {{kind: redpitaya}}
                stage: {{kind: esp300, params: {{fault: silent}}}}
                bus: {{kind: ell14, params: {{addresses: ["2"], link: {tmp_path}/bus}}}}
            """
        )
    )
    return labsky_session(tmp_path, tiled=False)


async def power(meter):
    await meter.trigger()
    return await meter.power.get_value()


def test_a_meter_unplugged_and_plugged_in_again_reads_after_reconnect(lab):
    meter = lab.devices["meter"]
    assert call(power(meter)) > 0
    lab.simulators.set_fault("meter", "disconnect")
    with pytest.raises(LinkClosedError) as lost:
        call(power(meter))
    assert str(lost.value).startswith("meter: the connection to ")
    assert "session.reconnect('meter'), or %reconnect meter" in str(lost.value)
    lab.simulators.set_fault("meter", "none")  # plugged in again
    with pytest.raises(LinkClosedError):
        call(power(meter))  # the old connection stays dead: nothing reconnects
    lab.simulators["meter"].wavelength = 800  # as after a power cycle
    assert lab.reconnect("meter") == ["meter"]
    assert call(power(meter)) > 0
    assert call(meter.wavelength.get_value()) == 633  # set up again from params
    result = lab.run("count", ["meter"], num=2)
    assert result.exit_status == "success"


def test_a_red_pitaya_back_on_the_network_reads_after_reconnect(lab):
    frequency = lab.devices["rp"].asg1.frequency.value
    before = call(frequency.get_value())
    lab.simulators.set_fault("rp", "disconnect")
    with pytest.raises(LinkClosedError, match="^rp: the connection to .* lost"):
        call(frequency.get_value())
    lab.simulators.set_fault("rp", "none")
    assert lab.reconnect("rp") == ["rp"]
    assert call(frequency.get_value()) == before


def test_a_device_that_failed_at_start_joins_the_session_when_reconnected(lab):
    assert "stage" not in lab.devices
    assert "no reply to 'VE?'" in str(lab.device_errors["stage"])
    assert "session.reconnect('NAME')" in lab.summary()
    with pytest.raises(DeviceError, match="stage .*failed to reconnect.*VE\\?"):
        lab.reconnect("stage")  # still silent
    assert "stage" in lab.device_errors
    lab.simulators.set_fault("stage", "none")
    assert lab.reconnect("stage") == ["stage"]
    assert "stage" not in lab.device_errors
    stage = lab.devices["stage"]
    assert call(stage.x.user_readback.get_value()) == pytest.approx(0)


def test_reconnecting_a_shared_bus_reconnects_the_mounts_on_it(lab):
    position = lab.devices["polarizer"].position
    assert call(position.get_value()) == pytest.approx(0, abs=0.01)
    lab.simulators.set_fault("bus", "disconnect")
    bus = lab.devices["bus"]
    wait_until(lambda: not bus.link.is_open, "the bus link noticed its loss")
    # the first query finds the loss the bus's reader queued; the next ones
    # (or the first, when the reader had not run yet, as on a loaded
    # machine) find the link closed when they write: each names the mount
    for _ in range(2):
        with pytest.raises(LinkClosedError, match="^polarizer: .*lost"):
            call(position.get_value())
    lab.simulators.set_fault("bus", "none")
    assert lab.reconnect("bus") == ["bus", "polarizer"]
    assert call(position.get_value()) == pytest.approx(0, abs=0.01)


def test_reconnecting_a_name_nobody_declared_lists_the_devices(lab):
    with pytest.raises(KeyError, match="no device named 'metre'; declared: bus, "):
        lab.reconnect("metre")


def test_the_reconnect_magic_puts_a_device_back_at_the_prompt(lab, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from labsky.ipython import LabskyMagics

    shell = InteractiveShell.instance()
    try:
        shell.register_magics(LabskyMagics(shell, lab))
        lab.simulators.set_fault("stage", "none")
        capsys.readouterr()
        shell.run_cell("%reconnect stage", store_history=False)
        assert capsys.readouterr().out == "reconnected: stage\n"
        assert shell.user_ns["stage"] is lab.devices["stage"]
        result = shell.run_cell("%reconnect", store_history=False)
        assert "name one device" in str(result.error_in_exec)
    finally:
        InteractiveShell.clear_instance()
