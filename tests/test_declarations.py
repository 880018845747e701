"""Every file in devices/, plans/ and profiles/ is a checked artefact."""

import pytest
import yaml

from labsky.config import load_devices
from labsky.kind_registry import device_kinds
from labsky.plan_loader import load_plan_module
from tests.conftest import REPO

DEVICE_FILES = sorted((REPO / "devices").glob("*.yaml"))
PLAN_FILES = sorted((REPO / "plans").glob("*.py"))
PROFILES = sorted(p.parent for p in (REPO / "profiles").glob("*/profile.yaml"))


def test_folders_are_not_empty():
    assert DEVICE_FILES and PLAN_FILES and PROFILES


@pytest.mark.parametrize("path", DEVICE_FILES, ids=lambda p: p.name)
def test_device_declarations_validate(path):
    written = yaml.safe_load(path.read_text())["devices"]
    declared = load_devices(path, device_kinds())
    # every device of the file, under its name, of the kind it names
    assert {name: d.kind for name, d in declared.items()} == {
        name: entry["kind"] for name, entry in written.items()
    }
    assert {d.kind for d in declared.values()} <= set(device_kinds())
    for name, decl in declared.items():
        assert decl.source.startswith(f"{path}:"), name  # errors can name the line


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name)
def test_plan_modules_load_cleanly(path):
    module = load_plan_module(path)
    assert module.problems == []
    assert module.plans


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profiles_start_in_mock_mode(profile, labsky_session):
    session = labsky_session(profile, mock=True, tiled=False)
    assert session.device_errors == {}
    declared = {n for n, d in session.declarations.items() if not d.skip}
    assert set(session.devices) == declared
