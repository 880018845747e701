"""One session object, built from a profile, that every front end uses.

`start(profile)` does, in order: load and validate the profile and its device
declarations; create the single RunEngine of the process (its metadata
persisted in the data directory, so `scan_id` keeps counting across restarts);
build and connect the devices (a failing device is reported by name and the
others still work); load the plan modules; subscribe the callbacks (progress,
catalog); and install the baseline. The IPython profile, the notebooks, the
`labsky` CLI and the tests all call it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluesky import RunEngine
from bluesky.preprocessors import SupplementalData
from bluesky.run_engine import RunEngineResult
from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider

from labsky.callbacks import RunProgress
from labsky.config import (
    ConfigError,
    DeviceDeclaration,
    Profile,
    load_devices,
    load_profile,
)
from labsky.device_manager import (
    BuildResult,
    DeviceError,
    build_and_connect,
    disconnect_all,
    reconnect_device,
)
from labsky.errors import LabskyError
from labsky.kind_registry import device_kinds
from labsky.metadata import PersistentMetadata
from labsky.pipeline import CatalogAddress, CatalogLag, DataPipeline, ring_path
from labsky.pipeline.server import (
    LocalTiled,
    key_hint,
    remote_client,
    runs_container,
)
from labsky.plan_loader import PlanModule, load_plans
from labsky.plans.signature import plan_signature, unknown_plan
from labsky.sim import SimulatedTable, SimulationConfig, SimulatorHost

logger = logging.getLogger(__name__)


class SessionError(LabskyError, RuntimeError):
    """The session cannot start; the message says what to fix."""


@dataclass
class Session:
    """Everything a front end needs, built from one profile.

    Attributes:
        profile: The profile it was built from.
        run_engine: The process's single RunEngine.
        devices: Working devices by name.
        declarations: Every declaration, including failed and skipped ones.
        device_errors: Devices that failed to build or connect, by name.
        plans: Plans by name (bluesky's, labsky's and the profile's modules).
        plan_modules: The loaded plan modules with their problems.
        groups: Device names by group (`detectors`, `baseline`, `motors`, ...).
        mocked: Names of the devices connected in mock mode.
        tiled: The embedded Tiled server, if the profile asked for one.
        runs: The Tiled container runs are written to, if any (connected on
            first use, so a session is ready before its catalog server).
        pipeline: Ring buffer, HDF5 sink and Tiled registrar of the runs.
        simulators: The simulated instruments, if the profile has any
            (`session.simulators["meter"]`, faults via `set_fault`).
    """

    profile: Profile
    run_engine: RunEngine
    devices: dict[str, Any]
    declarations: dict[str, DeviceDeclaration]
    device_errors: dict[str, DeviceError]
    plans: dict[str, Callable[..., Any]]
    plan_modules: list[PlanModule]
    groups: dict[str, list[str]]
    mocked: set[str] = field(default_factory=set)
    tiled: LocalTiled | None = None
    pipeline: DataPipeline | None = None
    simulators: SimulatorHost | None = None
    _tokens: list[int] = field(default_factory=list)
    _runs: Any = None
    _connect_runs: Callable[[], Any] | None = None
    _built: BuildResult | None = None

    @property
    def runs(self) -> Any:
        """The Tiled container of the runs (None without a catalog).

        Reading runs back needs the catalog: this waits until every run stored
        so far is in it (while registration makes progress; see
        `catalogued`).
        """
        self.catalogued()
        return self._runs_container()

    def _runs_container(self) -> Any:
        if self._runs is None and self._connect_runs is not None:
            self._runs = self._connect_runs()
            self._connect_runs = None
        return self._runs

    @runs.setter
    def runs(self, container: Any) -> None:
        self._runs, self._connect_runs = container, None

    @property
    def data_dir(self) -> Path:
        """Where this session's data lives."""
        return self.profile.data_path

    @property
    def runs_dir(self) -> Path:
        """Where the run files are written."""
        return self.data_dir / "runs"

    def stored(self) -> CatalogLag:
        """Wait until every run so far is complete in its HDF5 file.

        Returns:
            How far the catalog is behind (it is not waited for).
        """
        if self.pipeline is None:
            return CatalogLag()
        return self.pipeline.wait_stored()

    def catalogued(self) -> CatalogLag:
        """Wait until every run so far is stored and in the catalog.

        The wait goes on while the catalog makes progress; when it stalls
        (the profile's `tiled.stall_seconds`) the returned lag says how many
        runs are still behind, and a warning says they are stored.
        """
        if self.pipeline is None or self.pipeline.catalog is None:
            return self.stored()
        lag = self.pipeline.wait_catalogued()
        if lag.runs_behind:
            logger.warning("%s", lag)
        return lag

    def run_file(self, uid: str) -> Path | None:
        """The HDF5 file of a run of this session's data directory, if it exists."""
        return next(self.runs_dir.rglob(f"scan*-{uid[:8]}.h5"), None)

    def subscribe(self, callback: Any, name: str = "all") -> int:
        """Subscribe a document callback to the RunEngine until `close`.

        Returns:
            The RunEngine's token for it.
        """
        token = self.run_engine.subscribe(callback, name)  # type: ignore[arg-type]
        self._tokens.append(token)
        return token

    def group(self, name: str) -> list[Any]:
        """Return the working devices of a group, in declaration order."""
        return [self.devices[n] for n in self.groups.get(name, []) if n in self.devices]

    def reconnect(self, name: str) -> list[str]:
        """Connect device `name` again once its instrument is back.

        For an instrument switched off, unplugged or restarted: its link is
        opened again and it is greeted and set up as at start (ophyd-async's
        `connect(force_reconnect=True)`; a plain `connect()` keeps the first
        connection). A device in `device_errors` is built and connected,
        with the devices it needs, and joins `devices`; so do the failed
        devices that need it. `%reconnect NAME` does this at the prompt and
        the daemon's function `reconnect` for its clients.

        Returns:
            The names of the devices connected, `name` first.

        Raises:
            KeyError: If no device of that name is declared.
            DeviceError: If it still fails (it stays in `device_errors`).
            RuntimeError: If a plan is running (pause it first).
        """
        if self._built is None:
            raise RuntimeError("this session did not build its devices")
        if self.run_engine.state == "running":
            raise RuntimeError(
                f"a plan is running: pause it before reconnecting {name}"
            )
        done = _on_loop(
            self.run_engine.loop, reconnect_device(self.declarations, self._built, name)
        )
        for supplement in self.run_engine.preprocessors:  # back in the baseline
            if isinstance(supplement, SupplementalData):
                supplement.baseline.extend(
                    d
                    for d in self.group("baseline")
                    if d.name in done and d not in supplement.baseline
                )
        return done

    def plan(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Return the generator of plan `name` with checked arguments.

        The plan's argument model (`labsky.plans.signature`) resolves device
        names and checks every argument; a wrong one raises `PlanArgumentError`
        here, before any run opens (an unknown plan `UnknownPlanError`, a
        `KeyError`).
        """
        if name not in self.plans:
            raise unknown_plan(name, self.plans)
        model = plan_signature(self.plans[name])
        bound = model.bind(args, kwargs, self.devices, plan_name=name)
        return self.plans[name](*bound.args, **bound.kwargs)

    def run(self, name: str, *args: Any, **kwargs: Any) -> RunEngineResult:
        """Check the arguments, then run plan `name` on the RunEngine."""
        return self.execute(self.plan(name, *args, **kwargs))

    def execute(self, plan: Any) -> RunEngineResult:
        """Run a plan generator and return when its data is stored.

        The result comes back once the run's HDF5 file is complete (`stored`);
        if the catalog lags, a log line says so. Reading the run back through
        `runs` waits for the catalog.
        """
        result = self.run_engine(plan)
        assert isinstance(result, RunEngineResult)
        lag = self.stored()
        if lag.runs_behind:
            logger.info("%s", lag)
        return result

    def namespace(self) -> dict[str, Any]:
        """Names for an interactive prompt: `RE`, devices, plans, `bp/bps/bpp`."""
        import bluesky.plan_stubs as bps
        import bluesky.plans as bp
        import bluesky.preprocessors as bpp

        return {
            **self.plans,
            **self.devices,
            "session": self,
            "devices": self.devices,
            "plans": self.plans,
            "RE": self.run_engine,
            "run_engine": self.run_engine,
            "bp": bp,
            "bps": bps,
            "bpp": bpp,
            "runs": self._runs_container(),
        }

    def summary(self) -> str:
        """A few lines saying what is connected, what failed and where data goes."""
        lines = [f"labsky session '{self.profile.name}' -- data in {self.data_dir}"]
        working = ", ".join(
            n + (" (mock)" if n in self.mocked else "") for n in self.devices
        )
        lines.append(f"  devices: {working or 'none'}")
        for error in self.device_errors.values():
            lines.append(f"  FAILED  {error}")
        if self.device_errors:
            lines.append(
                "  once an instrument is fixed: session.reconnect('NAME') "
                "(%reconnect NAME at the prompt)"
            )
        for module in self.plan_modules:
            for problem in module.problems:
                lines.append(f"  PLAN PROBLEM  {problem}")
        lines.append(f"  plans: {', '.join(sorted(self.plans))}")
        if self.simulators is not None:
            simulated = ", ".join(
                f"{n} ({e})" for n, e in self.simulators.endpoints.items()
            )
            lines.append(f"  simulated instruments: {simulated}")
        if self.tiled is not None:
            lines.append(
                f"  tiled: {self.tiled.url} (api key {key_hint(self.tiled.api_key)}, "
                f"kept in {self.data_dir / 'tiled' / 'api_key'})"
            )
        return "\n".join(lines)

    def close(self) -> None:
        """Store what is pending, stop the catalog server and the RE loop.

        Safe to call more than once (it also runs at interpreter exit, until
        it has run). The devices disconnect on this session's RunEngine loop,
        the one they were connected on, even when a later RunEngine has since
        become bluesky's loop of the process.
        """
        atexit.unregister(self.close)
        run_engine = self.run_engine
        if run_engine.state not in ("idle", "panicked"):
            # Before the callbacks go: the stop document it emits must reach
            # the ring, so the run file says how the run ended.
            run_engine.abort("the session closed during the run")
        for token in self._tokens:
            run_engine.unsubscribe(token)
        self._tokens.clear()
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        if self.tiled is not None:
            self.tiled.close()
            self.tiled = None
        loop = run_engine.loop
        if loop.is_running() and self.devices:
            try:
                _on_loop(loop, disconnect_all(self.devices), timeout=10)
            except Exception as exc:  # noqa: BLE001 - closing: report and go on
                logger.warning("devices did not disconnect: %s", exc)
        if self.simulators is not None:
            self.simulators.close()
            self.simulators = None
        _stop_loop(run_engine)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_declarations(files: Sequence[Path]) -> dict[str, DeviceDeclaration]:
    """Load several declaration files; a name declared twice is an error."""
    decls: dict[str, DeviceDeclaration] = {}
    kinds = device_kinds()
    for path in files:
        for name, decl in load_devices(path, kinds).items():
            if name in decls:
                line = int(decl.source.rsplit(":", 1)[1])
                raise ConfigError(
                    path,
                    [
                        (
                            line,
                            f"devices.{name}: already declared at {decls[name].source}",
                        )
                    ],
                )
            decls[name] = decl
    return decls


def _groups(decls: Mapping[str, DeviceDeclaration]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, decl in decls.items():
        for group in decl.groups:
            groups.setdefault(group, []).append(name)
    return groups


def _run_engine(data_dir: Path, metadata: Mapping[str, Any], profile: str) -> RunEngine:
    md = PersistentMetadata(data_dir / "runengine-metadata.json")
    run_engine = RunEngine(md, call_returns_result=True)  # type: ignore[arg-type]
    run_engine.md.update({"profile": profile, **metadata})
    return run_engine


def _load_plans(
    profile: Profile,
) -> tuple[dict[str, Callable[..., Any]], list[PlanModule]]:
    return load_plans(profile.plan_files)


def _launch_catalog(
    profile: Profile, data_dir: Path
) -> tuple[LocalTiled | None, CatalogAddress | None]:
    """Start the embedded Tiled server (without waiting), or name the remote one."""
    uri = profile.tiled.uri
    container = profile.tiled.container
    if uri is None:
        return None, None
    timing = {
        "flush_seconds": profile.tiled.flush_seconds,
        "stall_seconds": profile.tiled.stall_seconds,
    }
    if uri == "embedded":
        server = LocalTiled(data_dir, wait=False)
        return server, CatalogAddress(server.url, server.api_key, container, **timing)
    key = os.environ.get(profile.tiled.api_key_env)
    return None, CatalogAddress(uri, key, container, **timing)


def _import_catalog_client() -> None:
    """Import Tiled's client and bluesky's run client (while devices connect)."""
    import bluesky_tiled_plugins  # noqa: F401
    import tiled.client  # noqa: F401


def _runs_client(profile: Profile, server: LocalTiled | None) -> Any:
    if server is not None:
        server.wait_ready()
        return runs_container(server.client(), profile.tiled.container)
    return runs_container(remote_client(profile.tiled), profile.tiled.container)


def start(
    profile: str | Path | Profile,
    *,
    mock: bool | None = None,
    tiled: bool = True,
    data_dir: Path | None = None,
    progress: bool | None = None,
) -> Session:
    """Build the session described by a profile.

    The slow parts start first and come up while the devices connect: the
    embedded Tiled server (a child process) and the storage worker (another,
    which also recovers runs a crashed session left open).

    Args:
        profile: A profile directory, its `profile.yaml`, or a `Profile`.
        mock: Override the profile's default mock flag (declarations that set
            `mock` themselves keep it).
        tiled: Set False to skip the catalog (quick checks, unit tests).
        data_dir: Override the profile's data directory.
        progress: Show a progress bar per run; None shows it on a terminal.

    Returns:
        The session. Devices that failed are in `device_errors`, not raised.

    Raises:
        ConfigError: If the profile or a declaration file is invalid.
    """
    profile = _located(profile, mock=mock, data_dir=data_dir)
    decls = load_declarations(profile.device_files)
    data_dir = profile.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    detector_dir = data_dir / "detectors"
    detector_dir.mkdir(exist_ok=True)

    with contextlib.ExitStack() as undo:  # what started, stopped if a later part fails
        server, catalog = _launch_catalog(profile, data_dir) if tiled else (None, None)
        if server is not None:
            undo.callback(server.close)
        if catalog is not None:  # the client's imports take ~3 s: do them meanwhile
            threading.Thread(target=_import_catalog_client, daemon=True).start()
        pipeline = DataPipeline(
            ring_path(profile.ring, profile.name, data_dir),
            data_dir / "runs",
            ring=profile.ring,
            storage=profile.storage,
            catalog=catalog,
        )
        undo.callback(pipeline.close)
        run_engine = _run_engine(data_dir, profile.metadata, profile.name)
        undo.callback(_stop_loop, run_engine)
        simulators = _start_simulators(profile)
        if simulators is not None:
            undo.callback(simulators.close)
        fixtures: dict[str, Any] = {
            "path_provider": StaticPathProvider(UUIDFilenameProvider(), detector_dir),
            "sim_world": SimulatedTable(simulators.world if simulators else None),
        }
        built: BuildResult = _on_loop(
            run_engine.loop,
            build_and_connect(
                decls,
                fixtures=fixtures,
                variables=simulators.variables() if simulators else {},
                mock=profile.mock,
                timeout=profile.connect_timeout,
            ),
        )
        undo.pop_all()  # the session owns them from here
    plans, modules = _load_plans(profile)
    session = Session(
        profile=profile,
        run_engine=run_engine,
        devices=built.devices,
        declarations=decls,
        device_errors=built.errors,
        plans=plans,
        plan_modules=modules,
        groups=_groups(decls),
        mocked=built.mocked,
        tiled=server,
        pipeline=pipeline,
        simulators=simulators,
    )
    session._built = built  # what `reconnect` rebuilds from
    baseline = session.group("baseline")
    if baseline:
        run_engine.preprocessors.append(SupplementalData(baseline=baseline))
    session.subscribe(RunProgress(disable=_no_tty(progress)))
    try:
        if catalog is not None:  # the server may still be starting: connect later
            session._connect_runs = functools.partial(_runs_client, profile, server)
        pipeline.start()
    except Exception:
        session.close()
        raise
    session.subscribe(pipeline.writer)
    atexit.register(session.close)  # drain the sink even if nobody closes it
    if pipeline.recovered.runs:
        logger.warning("%s", pipeline.recovered)
    logger.info("%s", session.summary())
    return session


def _located(
    profile: str | Path | Profile, *, mock: bool | None, data_dir: Path | None
) -> Profile:
    """The profile, loaded if need be, with the caller's overrides."""
    if not isinstance(profile, Profile):
        profile = load_profile(profile, SimulationConfig)
    updates: dict[str, Any] = {}
    if mock is not None:
        updates["mock"] = mock
    if data_dir is not None:
        updates["data_dir"] = Path(data_dir).resolve()
    if updates:
        directory = profile.directory
        profile = profile.model_copy(update=updates).located(directory)
    return profile


def _stop_loop(run_engine: RunEngine) -> None:
    """Stop a RunEngine's loop and its thread, and close the loop."""
    loop = run_engine.loop
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
        thread = getattr(run_engine, "_th", None)
        if thread is not None:
            thread.join(timeout=5)
    if not loop.is_running() and not loop.is_closed():
        loop.close()  # its selector and self-pipe, not left to the GC


def _on_loop(
    loop: asyncio.AbstractEventLoop, coroutine: Any, timeout: float | None = None
) -> Any:
    """Run a coroutine on this session's RunEngine loop and wait for it.

    Not bluesky's process-wide loop, which the newest RunEngine of the
    process replaces: devices are connected, reconnected and disconnected on
    the loop of the RunEngine that uses them.
    """
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)


def _start_simulators(profile: Profile) -> SimulatorHost | None:
    if profile.simulation is None:
        return None
    simulation = SimulationConfig.model_validate(profile.simulation)  # a dict too
    if not simulation.instruments:
        return None
    host = SimulatorHost(simulation).start()
    logger.info("simulated instruments: %s", host.endpoints)
    return host


def _no_tty(progress: bool | None) -> bool | None:
    # tqdm's disable=None means "off when not a terminal".
    return None if progress is None else not progress
