"""A daemon's instrument that comes back: `LabClient.reconnect` over the queue server.

The simulated power meter runs in this test process on a stable link, the
daemon's session opens that link like a lab's `/dev/serial/by-id/...` port,
and the test unplugs it and plugs it in again.
"""

import shutil
import textwrap

import pytest

from labsky.client import LabClient, PlanFailedError
from labsky.daemon import Daemon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed: run .ci/install-system-packages",
    ),
]


@pytest.fixture
def meter_lab(tmp_path, simulated_lab, monkeypatch):
    link = tmp_path / "ttyUSB-meter"
    host = simulated_lab(
        {"meter": {"kind": "newport1830c", "params": {"link": str(link)}}},
        world={"laser": {"emission": True, "shutter_open": True, "warmup": 0}},
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "devices.yaml").write_text(
        f"devices:\n  meter: {{kind: newport1830c, params: {{port: '{link}'}}}}\n"
    )
    (profile / "profile.yaml").write_text(
        textwrap.dedent(
            """\
            devices: [devices.yaml]
            connect_timeout: 3
            tiled: {uri: null}
            """
        )
    )
    monkeypatch.setenv("LABSKY_DATA_DIR", str(tmp_path / "data"))
    daemon = Daemon(profile, publish_port=None)
    daemon.start()
    try:
        addresses = daemon.addresses
        with LabClient(addresses.control, addresses.info, addresses) as client:
            yield host, client
    finally:
        daemon.close()


def test_a_meter_back_from_an_unplug_is_reconnected_through_the_daemon(meter_lab):
    host, client = meter_lab
    assert client.run("count", ["meter"], num=1)["result"]["exit_status"] == (
        "completed"
    )
    host.set_fault("meter", "disconnect")
    with pytest.raises(PlanFailedError, match="meter: the connection to .* lost"):
        client.run("count", ["meter"], num=1)
    host.set_fault("meter", "none")
    assert client.reconnect("meter") == ["meter"]
    assert client.run("count", ["meter"], num=2)["result"]["exit_status"] == (
        "completed"
    )
    with pytest.raises(PlanFailedError, match="no device named 'metre'"):
        client.reconnect("metre")
