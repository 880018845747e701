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
from labsky.devices.link_device import Disconnectable
from labsky.errors import LabskyError
from labsky.kind_registry import device_kinds
from labsky.kinds import DeviceKind, Kinds
from labsky.placeholders import PlaceholderError, substitute

logger = logging.getLogger(__name__)


class DeviceError(LabskyError, RuntimeError):
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
        unconnected: Devices built but not connected (their errors are in
            `errors`); `reconnect` tries them again.
        fixtures: The session objects factories were given.
        kinds: The registry the devices were built from.
        variables: The placeholder values params were filled with.
        mock: The mock flag of declarations that do not set one.
        timeout: Seconds each device may take to connect.
    """

    devices: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, DeviceError] = field(default_factory=dict)
    mocked: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    params: dict[str, Any] = field(default_factory=dict)
    unconnected: dict[str, Any] = field(default_factory=dict)
    fixtures: Mapping[str, Any] = field(default_factory=dict)
    kinds: Kinds = field(default_factory=device_kinds)
    variables: Mapping[str, str] = field(default_factory=dict)
    mock: bool = False
    timeout: float = 10.0


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


def _build(decls: Mapping[str, DeviceDeclaration], result: BuildResult) -> None:
    for name in build_order(decls):
        if decls[name].skip:
            result.skipped.add(name)
        else:
            _build_one(decls[name], result)


def _build_one(decl: DeviceDeclaration, result: BuildResult) -> None:
    """Build one device into `result.devices`, or record why it was not."""
    fixtures = result.fixtures
    name = decl.name
    failed = [t for t in decl.requires.values() if t in result.errors]
    if failed:
        result.errors[name] = DeviceError(
            decl, f"was not built because {', '.join(failed)} failed", None
        )
        return
    kind = result.kinds[decl.kind]
    arguments = {
        slot: result.devices[decl.requires[slot]]
        if slot in decl.requires
        else fixtures.get(slot)  # no simulated table: sim_world is None
        if slot == "sim_world"
        else fixtures[slot]
        for slot in kind.dependencies
    }
    try:
        params = substitute(decl.params, result.variables)
        obj = kind.factory(params, **arguments)
    except PlaceholderError as exc:
        result.errors[name] = DeviceError(decl, f"could not be built: {exc}", None)
        return
    except Exception as exc:  # noqa: BLE001 - reported per device
        result.errors[name] = DeviceError(decl, "could not be built", exc)
        return
    result.params[name] = params
    if isinstance(obj, Device):
        obj.set_name(name)
    result.devices[name] = obj


async def _connect_one(
    kind: DeviceKind,
    device: Device,
    params: Any,
    mock: bool,
    timeout: float,
    force_reconnect: bool = False,
) -> None:
    await device.connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)
    if kind.after_connect is not None and not mock:
        await kind.after_connect(device, params)


async def build_and_connect(
    decls: Mapping[str, DeviceDeclaration],
    *,
    fixtures: Mapping[str, Any],
    variables: Mapping[str, str] | None = None,
    mock: bool = False,
    timeout: float = 10.0,
    kinds: Kinds | None = None,
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
        kinds: The registry the declarations were loaded with; default
            `device_kinds()`.

    Returns:
        The devices that work and the errors of those that do not.
    """
    result = BuildResult(
        fixtures=fixtures,
        kinds=device_kinds() if kinds is None else kinds,
        variables=variables or {},
        mock=mock,
        timeout=timeout,
    )
    _build(decls, result)
    names = [n for n, d in result.devices.items() if isinstance(d, Device)]
    flags = {n: mock if decls[n].mock is None else bool(decls[n].mock) for n in names}
    outcomes = await asyncio.gather(
        *(
            _connect_one(
                result.kinds[decls[n].kind],
                result.devices[n],
                result.params[n],
                flags[n],
                timeout,
            )
            for n in names
        ),
        return_exceptions=True,
    )
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            result.unconnected[name] = device = result.devices.pop(name)
            result.errors[name] = DeviceError(
                decls[name], f"failed to connect (timeout {timeout} s)", outcome
            )
            await _let_go(name, device)
        elif flags[name]:
            result.mocked.add(name)
    # A shared object whose users all failed is kept: it costs nothing.
    for error in result.errors.values():
        logger.error("%s", error)
    return result


async def _let_go(name: str, device: Any) -> None:
    """Close the link of a device that failed to connect (a port stays locked)."""
    if isinstance(device, Disconnectable):
        try:
            await device.disconnect()
        except Exception as exc:  # noqa: BLE001 - the connect error matters
            logger.debug("%s did not disconnect after failing: %s", name, exc)


async def reconnect_device(
    decls: Mapping[str, DeviceDeclaration], result: BuildResult, name: str
) -> list[str]:
    """Connect a device again, as at start, once its instrument is back.

    ophyd-async keeps a device's first successful connect, so connecting it
    again does nothing; this forces it (`force_reconnect=True`): the link is
    opened again and the instrument greeted and set up (`after_connect`). A
    device that failed at start is tried again, the devices it needs first,
    then the failed devices that need it (all the devices on a shared bus);
    each that works moves from `result.errors` to `result.devices`. Must run
    in the bluesky event loop.

    Args:
        decls: The session's declarations.
        result: What `build_and_connect` made (updated in place).
        name: The device.

    Returns:
        The names of the devices connected, `name` first.

    Raises:
        KeyError: If no device of that name is declared.
        DeviceError: If it still cannot be built or connected.
    """
    if name not in decls:
        known = ", ".join(sorted(decls))
        raise KeyError(f"no device named {name!r}; declared: {known}")
    decl = decls[name]
    if decl.skip:
        raise ValueError(f"{name} is declared with `skip: true`; it is never built")
    for target in decl.requires.values():
        if target in result.errors:
            await reconnect_device(decls, result, target)
    if name in result.errors and name not in result.unconnected:
        del result.errors[name]  # not built: build it now
        _build_one(decl, result)
        if name in result.errors:
            raise result.errors[name]
        result.unconnected[name] = result.devices.pop(name)
    await _connect_again(decl, result)
    done = [name]
    # Devices that failed for want of this one; all users of a shared object
    # (a bus has no connection of its own: its devices open it).
    shared = not isinstance(result.devices[name], Device)
    for other in build_order(decls):
        if name in decls[other].requires.values() and (
            other in result.errors or shared
        ):
            try:
                done += await reconnect_device(decls, result, other)
            except Exception as exc:  # noqa: BLE001 - it stays failed, reported
                logger.warning("%s", exc)
    return done


async def _connect_again(decl: DeviceDeclaration, result: BuildResult) -> None:
    name = decl.name
    device = result.devices.get(name, result.unconnected.get(name))
    mock = result.mock if decl.mock is None else bool(decl.mock)
    try:
        if isinstance(device, Device):  # a shared object has nothing to connect
            await _connect_one(
                result.kinds[decl.kind],
                device,
                result.params[name],
                mock,
                result.timeout,
                True,
            )
    except Exception as exc:
        error = DeviceError(
            decl, f"failed to reconnect (timeout {result.timeout:g} s)", exc
        )
        if name in result.unconnected:
            result.errors[name] = error
            await _let_go(name, device)
        raise error from exc
    result.devices[name] = device
    result.unconnected.pop(name, None)
    result.errors.pop(name, None)
    if mock and isinstance(device, Device):
        result.mocked.add(name)
    logger.info("%s connected again", name)


async def disconnect_all(devices: Mapping[str, Any]) -> None:
    """Close the instrument links of devices that hold one (at session end)."""
    for name, device in devices.items():
        if not isinstance(device, Disconnectable):
            continue
        try:
            await device.disconnect()
        except Exception as exc:  # noqa: BLE001 - closing: report and go on
            logger.warning("%s did not disconnect cleanly: %s", name, exc)
