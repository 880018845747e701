import asyncio

import pytest
from ophyd_async.core import StandardReadable, soft_signal_rw

from labsky import config
from labsky.devices import DeviceKind, registry
from labsky.session import start


class Unreachable(StandardReadable):
    """A device whose transport never answers."""

    def __init__(self, name: str = "") -> None:
        with self.add_children_as_readables():
            self.value = soft_signal_rw(float)
        super().__init__(name=name)

    async def connect(self, mock=False, timeout=10.0, force_reconnect=False):
        if mock:
            return await super().connect(mock=mock, timeout=timeout)
        await asyncio.sleep(timeout)
        raise TimeoutError(f"no reply from 127.0.0.1:1 within {timeout} s")


def unreachable(params: registry.NoParams) -> Unreachable:
    return Unreachable()


def exploding(params: registry.NoParams) -> Unreachable:
    raise OSError("could not open /dev/ttyUSB9: no such device")


@pytest.fixture
def extra_kinds(monkeypatch):
    original = registry._all_kinds
    monkeypatch.setattr(
        registry,
        "_all_kinds",
        lambda: [
            *original(),
            DeviceKind("unreachable", unreachable),
            DeviceKind("exploding", exploding),
        ],
    )
    config._devices_file_model.cache_clear()
    yield
    config._devices_file_model.cache_clear()


def profile_with(tmp_path, devices_yaml):
    (tmp_path / "devices.yaml").write_text(devices_yaml)
    (tmp_path / "profile.yaml").write_text(
        "devices: [devices.yaml]\nconnect_timeout: 0.3\n"
    )
    return tmp_path


def test_failures_are_reported_by_name_without_hiding_others(tmp_path, extra_kinds):
    profile = profile_with(
        tmp_path,
        """\
devices:
  world: {kind: sim_pattern}
  link: {kind: unreachable}
  port: {kind: exploding}
  pdet: {kind: sim_point_detector, requires: {pattern_generator: world}}
""",
    )
    session = start(profile, tiled=False, progress=False, data_dir=tmp_path / "d")
    try:
        assert set(session.devices) == {"world", "pdet"}
        errors = {name: str(e) for name, e in session.device_errors.items()}
        assert set(errors) == {"link", "port"}
        assert errors["link"].startswith(
            f"link (unreachable, declared at {profile / 'devices.yaml'}:3) failed to connect"
        )
        assert "no reply from 127.0.0.1:1" in errors["link"]
        assert (
            "could not be built: OSError: could not open /dev/ttyUSB9" in errors["port"]
        )
        summary = session.summary()
        assert "FAILED  link" in summary and "FAILED  port" in summary
        # the working device works
        result = session.run("count", ["pdet"], num=2)
        assert result.exit_status == "success"
    finally:
        session.close()


def test_dependents_of_a_failed_device_are_not_built(
    tmp_path, extra_kinds, monkeypatch
):
    registry_all = registry._all_kinds()

    def broken(params):
        raise RuntimeError("world is broken")

    monkeypatch.setattr(
        registry,
        "_all_kinds",
        lambda: [
            k if k.name != "sim_pattern" else DeviceKind("sim_pattern", broken)
            for k in registry_all
        ],
    )
    profile = profile_with(
        tmp_path,
        """\
devices:
  world: {kind: sim_pattern}
  stage: {kind: sim_stage, requires: {pattern_generator: world}}
  rotator: {kind: sim_motor}
""",
    )
    session = start(profile, tiled=False, progress=False, data_dir=tmp_path / "d")
    try:
        assert list(session.devices) == ["rotator"]
        assert "was not built because world failed" in str(
            session.device_errors["stage"]
        )
    finally:
        session.close()


def test_mock_per_device_overrides_profile(tmp_path, extra_kinds):
    profile = profile_with(
        tmp_path,
        """\
devices:
  link: {kind: unreachable, mock: true}
  rotator: {kind: sim_motor}
""",
    )
    session = start(profile, tiled=False, progress=False, data_dir=tmp_path / "d")
    try:
        assert set(session.devices) == {"link", "rotator"}
        assert "link (mock)" in session.summary()
        assert "rotator (mock)" not in session.summary()
    finally:
        session.close()
