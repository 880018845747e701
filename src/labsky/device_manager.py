"""Build declared devices in dependency order and connect them.

This plays the part of dodal's `DeviceManager.build_and_connect`: every device
is attempted, a failure is recorded against the device's name (with the file
and line it was declared on) and never hides the others, and a device whose
dependency failed is reported as such instead of being half-built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ophyd_async.core import Device

from labsky.config import DeviceDeclaration
from labsky.devices import device_kinds
from labsky.devices.link_device import Disconnectable
from labsky.placeholders import PlaceholderError, substitute

logger = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """A declared device could not be built or connected.

    The message names the device, its kind and where it was declared.
    """

    def __init__(self, decl: DeviceDeclaration, what: str, cause: BaseException | None):
        detail = f": {type(cause).__name__}: {cause}" if cause else ""
        super().__init__(
            f"{decl.name} ({decl.kind}, declared at {decl.source}) {what}{detail}"
        )
        self.device_name = decl.name


@dataclass
class BuildResult:
    """What `build_and_connect` made.

    Attributes:
        devices: Built and connected objects by name (ophyd-async devices and
            plain shared objects such as a simulated world).
        errors: Devices that failed, by name.
        mocked: Names of the devices connected in mock mode.
        skipped: Names declared with `skip: true`.
        params: The params each device was built with (placeholders filled).
    """

    devices: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, DeviceError] = field(default_factory=dict)
    mocked: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    params: dict[str, Any] = field(default_factory=dict)


def build_order(decls: Mapping[str, DeviceDeclaration]) -> list[str]:
    """Return device names so that every device comes after its dependencies."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for target in decls[name].requires.values():
            visit(target)
        order.append(name)

    for name in decls:
        visit(name)
    return order


def _build(
    decls: Mapping[str, DeviceDeclaration],
    fixtures: Mapping[str, Any],
    variables: Mapping[str, str],
    result: BuildResult,
) -> None:
    kinds = device_kinds()
    for name in build_order(decls):
        decl = decls[name]
        if decl.skip:
            result.skipped.add(name)
            continue
        failed = [t for t in decl.requires.values() if t in result.errors]
        if failed:
            result.errors[name] = DeviceError(
                decl, f"was not built because {', '.join(failed)} failed", None
            )
            continue
        kind = kinds[decl.kind]
        arguments = {
            slot: result.devices[decl.requires[slot]]
            if slot in decl.requires
            else fixtures[slot]
            for slot in kind.dependencies
        }
        try:
            params = substitute(decl.params, variables)
            obj = kind.factory(params, **arguments)
        except PlaceholderError as exc:
            result.errors[name] = DeviceError(decl, f"could not be built: {exc}", None)
            continue
        except Exception as exc:  # noqa: BLE001 - reported per device
            result.errors[name] = DeviceError(decl, "could not be built", exc)
            continue
        result.params[name] = params
        if isinstance(obj, Device):
            obj.set_name(name)
        result.devices[name] = obj


async def _connect_one(
    decl: DeviceDeclaration, device: Device, params: Any, mock: bool, timeout: float
) -> None:
    kind = device_kinds()[decl.kind]
    await device.connect(mock=mock, timeout=timeout)
    if kind.after_connect is not None and not mock:
        await kind.after_connect(device, params)


async def build_and_connect(
    decls: Mapping[str, DeviceDeclaration],
    *,
    fixtures: Mapping[str, Any],
    variables: Mapping[str, str] | None = None,
    mock: bool = False,
    timeout: float = 10.0,
) -> BuildResult:
    """Build every declared device and connect the ophyd-async ones in parallel.

    Must run in the bluesky event loop (use `call_in_bluesky_event_loop`).

    Args:
        decls: Declarations by name.
        fixtures: Session objects factories may ask for by argument name.
        variables: Values of `${name}` placeholders in params (simulator
            endpoints).
        mock: Mock flag for declarations that do not set their own.
        timeout: Seconds each device may take to connect.

    Returns:
        The devices that work and the errors of those that do not.
    """
    result = BuildResult()
    _build(decls, fixtures, variables or {}, result)
    names = [n for n, d in result.devices.items() if isinstance(d, Device)]
    flags = {n: mock if decls[n].mock is None else bool(decls[n].mock) for n in names}
    outcomes = await asyncio.gather(
        *(
            _connect_one(
                decls[n], result.devices[n], result.params[n], flags[n], timeout
            )
            for n in names
        ),
        return_exceptions=True,
    )
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            del result.devices[name]
            result.errors[name] = DeviceError(
                decls[name], f"failed to connect (timeout {timeout} s)", outcome
            )
        elif flags[name]:
            result.mocked.add(name)
    # A shared object whose users all failed is kept: it costs nothing.
    for error in result.errors.values():
        logger.error("%s", error)
    return result


async def disconnect_all(devices: Mapping[str, Any]) -> None:
    """Close the instrument links of devices that hold one (at session end)."""
    for name, device in devices.items():
        if not isinstance(device, Disconnectable):
            continue
        try:
            await device.disconnect()
        except Exception as exc:  # noqa: BLE001 - closing: report and go on
            logger.warning("%s did not disconnect cleanly: %s", name, exc)
