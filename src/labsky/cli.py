"""The `labsky` command: one entry point for every front end.

Every command builds the same session from a profile (`labsky.session.start`),
so what works at the prompt works here and in notebooks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from labsky.cli_command import LabskyTyper, PlanCommand

app = LabskyTyper(
    help="labsky: data acquisition for optics labs on Bluesky.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ProfileArg = Annotated[
    str, typer.Argument(help="Profile name (folder under ./profiles) or path.")
]


def find_profile(name: str) -> Path:
    """Resolve a profile name or path (see `labsky.config.find_profile`)."""
    from labsky.config import find_profile as find

    try:
        return find(name)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where to keep the demo's data (default: user data dir)."),
    ] = None,
) -> None:
    """Run the demo: simulated lab, real scans, HDF5 frames, a Tiled catalog."""
    from labsky.demo import run_demo
    from labsky.demo.job import DemoError

    _logging()
    try:
        run_demo(data_dir, echo=typer.echo)
    except DemoError as exc:
        raise _fail(str(exc)) from None


@app.command()
def check(
    profile: Annotated[
        str | None, typer.Argument(help="Profile name or path.", show_default=False)
    ] = None,
    connect: Annotated[
        bool, typer.Option(help="Also build and connect every device in mock mode.")
    ] = False,
    kinds: Annotated[
        bool, typer.Option(help="List the device kinds and exit.")
    ] = False,
) -> None:
    """Validate a profile: its settings, device declarations and plan modules."""
    from labsky.config import ConfigError, load_profile
    from labsky.plan_loader import load_plan_module
    from labsky.session import load_declarations
    from labsky.sim import SimulationConfig

    if kinds:
        _print_kinds()
        return
    if profile is None:
        raise _fail("give a profile to check, or --kinds", 2)
    path = find_profile(profile)
    try:
        prof = load_profile(path, SimulationConfig)
        decls = load_declarations(prof.device_files)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    problems = [p for f in prof.plan_files for p in load_plan_module(f).problems]
    problems += _placeholder_problems(prof, decls)
    typer.echo(
        f"profile {prof.name}: {len(decls)} devices, {len(prof.plan_files)} plan files"
    )
    for decl in decls.values():
        skip = " (skipped)" if decl.skip else ""
        typer.echo(f"  {decl.name:<16} {decl.kind:<20} {decl.source}{skip}")
    if connect:
        from labsky.session import start

        with start(path, mock=True, tiled=False, progress=False) as session:
            problems += [str(e) for e in session.device_errors.values()]
    for problem in problems:
        typer.secho(f"  {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok")


def _placeholder_problems(prof: Any, decls: Any) -> list[str]:
    """Declarations naming simulators the profile does not have."""
    from labsky.placeholders import placeholders

    simulated = set(prof.simulation.instruments) if prof.simulation else set()
    problems = []
    for decl in decls.values():
        for name in sorted(placeholders(decl.params)):
            if name.startswith("sim.") and name[4:] not in simulated:
                problems.append(
                    f"{decl.source}: devices.{decl.name}.params: ${{{name}}} names no "
                    "simulator of this profile's `simulation.instruments`"
                )
    return problems


def _print_kinds() -> None:
    from labsky.kind_registry import device_kinds

    for kind in device_kinds().values():
        deps = ", ".join(kind.dependencies) or "-"
        typer.echo(f"{kind.name:<20} needs: {deps:<34} {kind.summary}")
        for field, info in kind.params.model_fields.items():
            default = "(required)" if info.is_required() else f"= {_default(info)}"
            typer.echo(f"    params.{field} {default}: {info.description or ''}")


def _default(info: Any) -> str:
    """A parameter's default as a user would write it in YAML."""
    from pydantic import BaseModel

    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    except yaml.YAMLError:
        return repr(value)
    return text.removesuffix("\n").removesuffix("\n...")


def _parse_value(text: str) -> Any:
    """A YAML value, with numbers like `1.46e6` (text to YAML 1.1) as numbers."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in _NOT_NUMBERS else value
        except ValueError:
            return value
    return value


_NOT_NUMBERS = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}


def plan_call_arguments(
    args: list[str], arg: list[str], md: list[str]
) -> tuple[list[Any], dict[str, Any]]:
    """Turn `labsky run`'s words into a plan's positional and keyword arguments.

    Args:
        args: Positional arguments, each a YAML value (`"[pdet]"`, `1.5e6`).
        arg: `NAME=VALUE` keyword arguments, VALUE in YAML.
        md: `KEY=VALUE` metadata entries, VALUE in YAML.

    Returns:
        The positional arguments and the keyword arguments (with `md`).

    Raises:
        ValueError: If an `--arg` or `--md` entry has no `=`.
    """
    kwargs: dict[str, Any] = {}
    for item in arg:
        if "=" not in item:
            raise ValueError(f"--arg {item!r}: write NAME=VALUE, e.g. --arg num=5")
        key, value = item.split("=", 1)
        kwargs[key] = _parse_value(value)
    for item in md:
        if "=" not in item:
            raise ValueError(f"--md {item!r}: write KEY=VALUE, e.g. --md sample=Si")
    if md:
        kwargs["md"] = {k: _parse_value(v) for k, v in (m.split("=", 1) for m in md)}
    return [_parse_value(a) for a in args], kwargs


@app.command(cls=PlanCommand)
def run(
    profile: ProfileArg,
    plan: Annotated[str, typer.Argument(help="Plan name (see `labsky check`).")],
    args: Annotated[
        list[str] | None,
        typer.Argument(help="Positional plan arguments, as YAML values."),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            "-a",
            metavar="NAME=VALUE",
            help="Keyword argument of the plan (VALUE is YAML; repeatable).",
        ),
    ] = None,
    md: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Run metadata (repeatable)."),
    ] = None,
    mock: Annotated[
        bool | None, typer.Option("--mock/--no-mock", help="Override the profile.")
    ] = None,
    show_traceback: Annotated[
        bool,
        typer.Option("--traceback", help="Print the traceback of a plan that fails."),
    ] = False,
) -> None:
    """Run one plan of a profile, e.g. `labsky run sim count "[pdet]" --arg num=5`.

    Negative numbers are values (`scan "[pdet]" stage.x -2 2`). When
    `labsky daemon PROFILE` runs, the plan runs on its session (seconds, not a
    minute of start-up). The last line says how it ended and where the data is.
    """
    from labsky.attach import ring_holder, running_daemon
    from labsky.config import ConfigError, load_profile
    from labsky.pipeline import ring_path

    _logging()
    try:
        positional, kwargs = plan_call_arguments(args or [], arg or [], md or [])
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    try:
        prof = load_profile(find_profile(profile))
        _check_plan_call(prof, plan, positional, kwargs)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    daemon = running_daemon(prof.data_path)
    if daemon is not None:
        if mock is not None:
            raise _fail(
                f"the daemon of {prof.name} runs its session as it started: "
                "--mock/--no-mock cannot apply; drop the option, or stop the daemon",
                2,
            )
        _run_on_daemon(prof, daemon, plan, positional, kwargs, show_traceback)
        return
    holder = ring_holder(ring_path(prof.ring, prof.name, prof.data_path))
    if holder is not None:
        raise _fail(
            f"{plan}: not run, nothing stored: a session of {prof.name} is open in "
            f"{holder}; run the plan at its prompt, or close it (`exit`) and run "
            f"this again (`labsky daemon {prof.name}` lets `labsky run` share one "
            "session)"
        )
    _run_standalone(prof, plan, positional, kwargs, mock, show_traceback)


def _run_standalone(
    prof: Any,
    plan: str,
    positional: list[Any],
    kwargs: dict[str, Any],
    mock: bool | None,
    show_traceback: bool,
) -> None:
    """`labsky run` in a session of its own."""
    from labsky.plans.signature import PlanArgumentError
    from labsky.run_report import device_names, where_stored
    from labsky.session import start

    try:
        session = start(prof, mock=mock)
    except Exception as exc:  # noqa: BLE001 - the CLI says it in one line
        raise _fail(
            f"{plan}: not run, nothing stored: the session of {prof.name} did not "
            f"start: {exc}"
        ) from None
    with session:
        typer.echo(session.summary())
        failed = sorted(device_names([positional, kwargs]) & set(session.device_errors))
        if failed:
            errors = "; ".join(str(session.device_errors[n]) for n in failed)
            raise _fail(
                f"{plan}: not run, nothing stored: {errors}; once it is fixed, run "
                f"again (`labsky check {prof.name} --connect` tries every device)"
            )
        try:
            generator = session.plan(plan, *positional, **kwargs)
        except (PlanArgumentError, KeyError) as exc:
            raise _fail(str(exc).strip('"'), 2) from None
        result, watch, lag = _execute(session, generator, show_traceback)
        stored = where_stored(result.run_start_uids, session.run_file, watch, lag)
        typer.echo(f"{plan}: {result.exit_status}; {stored}")
        if result.plan_result is not None and not isinstance(result.plan_result, str):
            typer.echo(f"result: {result.plan_result}")
        if result.exit_status != "success":
            raise typer.Exit(1)


def _run_on_daemon(
    prof: Any,
    daemon: dict[str, Any],
    plan: str,
    positional: list[Any],
    kwargs: dict[str, Any],
    show_traceback: bool,
) -> None:
    """`labsky run` on the profile's running daemon."""
    from labsky.attach import run_on_daemon
    from labsky.client import PlanRefusedError
    from labsky.run_report import find_run_file, where_stored

    typer.echo(
        f"running {plan} on the daemon of {prof.name} (pid {daemon.get('pid')}, "
        f"{daemon['control']}); data in {prof.data_path}"
    )
    try:
        outcome = run_on_daemon(daemon, plan, positional, kwargs)
    except PlanRefusedError as exc:
        raise _fail(f"not run, nothing stored: {exc}", 2) from None
    except KeyboardInterrupt:
        raise _fail(
            f"{plan}: aborted by Ctrl-C on the daemon; its run is stored with "
            f"exit_status abort in {prof.data_path / 'runs'}",
            130,
        ) from None
    runs_dir = prof.data_path / "runs"
    stored = where_stored(outcome.run_uids, lambda u: find_run_file(runs_dir, u))
    if outcome.exit_status == "completed":
        typer.echo(f"{plan}: success; {stored}")
        return
    if show_traceback and outcome.traceback:
        typer.echo(outcome.traceback, err=True)
    raise _fail(
        f"{plan} {outcome.exit_status} on the daemon: {outcome.message}; {stored}; "
        "fix the cause and run again (the daemon's log: "
        f"{prof.data_path / 'daemon'})"
    )


def _check_plan_call(prof: Any, plan: str, args: list[Any], kwargs: Any) -> None:
    """Refuse a bad plan name or argument before any simulator or server starts.

    Device names are checked against the declarations (their first part); the
    devices themselves are checked once they are built.
    """
    from labsky.plan_loader import load_plans
    from labsky.plans.signature import PlanArgumentError, plan_signature, unknown_plan
    from labsky.session import load_declarations

    names = {n for n, d in load_declarations(prof.device_files).items() if not d.skip}
    plans, modules = load_plans(prof.plan_files)
    if plan not in plans:
        why = [p for m in modules for p in m.problems if f": {plan}: " in p]
        if why:  # it is there, but not offered: say why
            raise _fail(f"plan {plan!r} is not offered: {'; '.join(why)}", 2)
        raise _fail(str(unknown_plan(plan, plans)), 2)
    try:
        plan_signature(plans[plan]).bind(args, kwargs, names=names, plan_name=plan)
    except PlanArgumentError as exc:
        raise _fail(str(exc), 2) from None


def _quiet_abort(record: logging.LogRecord) -> bool:
    """Drop bluesky's traceback of an abort we asked for (one line says it)."""
    from bluesky.utils import RequestAbort

    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, RequestAbort)


def _quiet_failure(record: logging.LogRecord) -> bool:
    """Drop bluesky's traceback of a failed plan (`--traceback` prints it)."""
    return not (record.exc_info and record.levelno >= logging.ERROR)


def _execute(session: Any, generator: Any, show_traceback: bool = False) -> Any:
    """Run a plan for `labsky run`: however it ends, one line says where the data is.

    At the prompt a Ctrl-C pauses (bluesky's semantics, `RE.resume()`); a
    command line cannot resume, so here it aborts: the run gets its stop
    document (`exit_status: abort`) in its file and the catalog, and one
    line says where it is (exit 130). A plan that raises ends its run with
    `exit_status: fail`; the line names the error, where it was raised and
    the run file (exit 1).

    Returns:
        The RunEngine's result, what was seen of the runs, the catalog's lag.
    """
    import traceback

    from bluesky.utils import RunEngineInterrupted

    from labsky.pipeline import StorageError
    from labsky.run_report import RunWatch, plan_error, where_stored

    run_engine = session.run_engine
    bluesky_log = logging.getLogger("bluesky")
    bluesky_log.addFilter(_quiet_abort)
    if not show_traceback:
        bluesky_log.addFilter(_quiet_failure)
    watch = RunWatch()
    token = run_engine.subscribe(watch)
    try:
        try:
            result = session.execute(generator)
            return result, watch, session.catalogued()
        except RunEngineInterrupted:
            run_engine.abort("Ctrl-C at labsky run")
            lag = session.stored()
            where = where_stored(watch.uids, session.run_file, watch, lag)
            typer.secho(f"aborted by Ctrl-C: {where}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None
        except StorageError as exc:
            raise _fail(f"the run could not be stored: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a plan's error: one line says it
            if show_traceback:
                traceback.print_exception(exc)
            try:
                lag = session.stored()
            except StorageError as storage:
                raise _fail(
                    f"the plan failed ({plan_error(exc)}) and its run could not be "
                    f"stored: {storage}"
                ) from None
            where = where_stored(watch.uids, session.run_file, watch, lag)
            hint = "" if show_traceback else " (--traceback shows the traceback)"
            raise _fail(
                f"the plan failed: {plan_error(exc)}; {where}; fix the cause and run "
                f"again{hint}"
            ) from None
    finally:
        run_engine.unsubscribe(token)
        bluesky_log.removeFilter(_quiet_failure)


@app.command()
def shell(profile: ProfileArg) -> None:
    """Open IPython with the profile's session (RE, devices, plans, %wa, %mov)."""
    import IPython

    path = find_profile(profile)
    sys.exit(IPython.start_ipython(argv=[f"--profile-dir={path}"]))


def _load_profile(profile: str, data_dir: Path | None = None) -> Any:
    """A profile, with its data directory overridden; a bad one fails in one line."""
    from labsky.config import ConfigError, load_profile

    try:
        prof = load_profile(find_profile(profile))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if data_dir is not None:
        prof = prof.model_copy(update={"data_dir": data_dir.resolve()}).located(
            prof.directory
        )
    return prof


@app.command()
def serve(
    profile: Annotated[
        str | None,
        typer.Argument(
            help="Profile whose data to serve (or give --data-dir).",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory of a profile or the demo.")
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            help="Interface to bind; beyond loopback needs LABSKY_TILED_API_KEY."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="SQL catalog URI, e.g. postgresql://user@db/labsky "
            "(default: the SQLite catalog in the data directory)."
        ),
    ] = None,
    create: Annotated[
        bool, typer.Option(help="Serve a directory that holds no runs yet.")
    ] = False,
) -> None:
    """Serve the runs of a profile (or a data directory) with Tiled.

    The API key comes from the environment (LABSKY_TILED_API_KEY), never the
    command line, where every local user could read it; on loopback the
    key stored with the data is the default.
    """
    from labsky.pipeline.catalog_file import CatalogFileError
    from labsky.pipeline.server import (
        PARENT_ENV,
        check_api_key,
        key_hint,
        serve_command,
        server_environment,
        stored_key,
    )

    if (profile is None) == (data_dir is None):
        raise _fail("give a profile, or --data-dir DIR (not both)", 2)
    directory = (
        data_dir.resolve()
        if data_dir is not None
        else _load_profile(str(profile)).data_path
    )
    if not create and not _holds_runs(directory):
        raise _fail(
            f"{directory} holds no labsky runs (no runs/ with run files, no "
            "catalog): check the path, or pass --create to serve a new empty "
            "catalog there",
            2,
        )
    api_key = os.environ.get("LABSKY_TILED_API_KEY") or None
    try:
        check_api_key(api_key, host)
    except ValueError as exc:
        raise _fail(f"error: {exc}", 2) from None
    key = api_key or stored_key(directory)
    try:
        args = serve_command(directory, host, port, catalog)
    except CatalogFileError as exc:
        raise _fail(f"error: {exc}") from None
    shown = host if ":" not in host else f"[{host}]"
    typer.echo(f"Tiled serving {directory} at http://{shown}:{port}")
    source = "LABSKY_TILED_API_KEY" if api_key else f"{directory}/tiled/api_key"
    typer.echo(f"api key: {key_hint(key)} (from {source})   (Ctrl-C to stop)")
    sys.stdout.flush()
    env = {**server_environment(key), PARENT_ENV: str(os.getpid())}
    _run_masked([sys.executable, "-m", "labsky.pipeline.server_main", *args], env, key)


def _holds_runs(directory: Path) -> bool:
    return (directory / "tiled" / "catalog.db").exists() or any(
        (directory / "runs").rglob("*.h5")
    )


def _run_masked(command: list[str], env: dict[str, str], secret: str) -> None:
    """Run a server in the foreground, masking `secret` in what it prints."""
    import signal
    import subprocess

    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    # A SIGTERM for us is one for the server (it also dies with us, see
    # labsky.pipeline.server_main); Ctrl-C reaches it through the terminal.
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    assert process.stdout is not None
    try:
        for line in process.stdout:
            sys.stdout.buffer.write(line.replace(secret.encode(), b"<api key>"))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass  # the server got the Ctrl-C too: let it finish
    raise typer.Exit(process.wait())


@app.command()
def recover(
    profile: ProfileArg,
    data_dir: Annotated[
        Path | None, typer.Option(help="Override the profile's data directory.")
    ] = None,
    tiled: Annotated[
        bool, typer.Option(help="Register the recovered runs in the catalog.")
    ] = True,
    without_ring: Annotated[
        bool,
        typer.Option(
            help="Close runs left open although their ring is gone (after a "
            "reboot), with the rows their files hold."
        ),
    ] = False,
) -> None:
    """Finish runs a crashed session left open: drain its ring into HDF5.

    What cannot be read is refused (exit 1), naming the file and the damage;
    nothing is deleted then.
    """
    from labsky.pipeline import RecoveryError, RingInUseError
    from labsky.pipeline.catalog_file import CatalogFileError
    from labsky.pipeline.maintenance import recover_profile

    _logging()
    prof = _load_profile(profile, data_dir)
    try:
        report, lag = recover_profile(prof, tiled=tiled, without_ring=without_ring)
    except (RecoveryError, RingInUseError, CatalogFileError) as exc:
        raise _fail(f"labsky recover: {exc}") from None
    typer.echo(str(report))
    if lag.runs_behind:
        typer.echo(str(lag))


catalog_app = LabskyTyper(
    help="Look after a profile's Tiled catalog.", no_args_is_help=True
)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("rebuild")
def catalog_rebuild(
    profile: ProfileArg,
    data_dir: Annotated[
        Path | None, typer.Option(help="Override the profile's data directory.")
    ] = None,
) -> None:
    """Register every run file of PROFILE's data directory again, from the files.

    For a catalog that was lost, or written by an older labsky: each run is
    registered in the current layout (an earlier entry of it is replaced).
    """
    from tqdm import tqdm

    from labsky.pipeline.maintenance import rebuild_catalog, run_files

    _logging()
    prof = _load_profile(profile, data_dir)
    total = len(run_files(prof.data_path / "runs"))
    with tqdm(total=total, unit="run", desc="registering") as bar:

        def advance(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        lag = rebuild_catalog(prof, progress=advance)
    for error in lag.errors:
        typer.secho(error, fg=typer.colors.RED, err=True)
    typer.echo(f"registered {total - lag.runs_behind} of {total} runs")
    if lag.runs_behind:
        raise typer.Exit(1)


@app.command()
def schema(
    out: Annotated[
        Path | None,
        typer.Option(help="Write devices.schema.json and profile.schema.json here."),
    ] = None,
) -> None:
    """Print (or write) the JSON schemas of device and profile files."""
    from labsky.config import devices_schema, profile_schema
    from labsky.kind_registry import device_kinds
    from labsky.sim import SimulationConfig

    schemas = {
        "devices": devices_schema(device_kinds()),
        "profile": profile_schema(SimulationConfig),
    }
    if out is None:
        typer.echo(json.dumps(schemas, indent=2))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, content in schemas.items():
        (out / f"{name}.schema.json").write_text(json.dumps(content, indent=2) + "\n")
    typer.echo(f"wrote {out}/devices.schema.json and {out}/profile.schema.json")


def _simulation_for(name: str, port: int | None) -> Any:
    """The simulation of a profile, or of one simulator kind (`redpitaya`)."""
    from labsky.config import ConfigError, load_profile
    from labsky.sim import SimulationConfig, simulator_kinds

    kinds = simulator_kinds()
    try:
        path = find_profile(name)
    except typer.BadParameter:
        if name not in kinds:
            raise _fail(
                f"{name!r} is neither a profile nor a simulator "
                f"({', '.join(sorted(kinds))})",
                2,
            ) from None
        params: dict[str, Any] = {} if port is None else {"port": port}
        return SimulationConfig.model_validate(
            {"instruments": {name: {"kind": name, "params": params}}}
        )
    try:
        prof = load_profile(path, SimulationConfig)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if prof.simulation is None or not prof.simulation.instruments:
        raise _fail(f"profile {prof.name} has no `simulation.instruments`", 2)
    if port is not None:
        raise _fail("--port applies to one simulator (labsky sim redpitaya)", 2)
    return prof.simulation


@app.command()
def sim(
    name: Annotated[
        str,
        typer.Argument(
            help="A profile (its simulation section), or one simulator kind: "
            "redpitaya, ell14, esp300, newport1830c, maitai."
        ),
    ],
    port: Annotated[
        int | None, typer.Option(help="TCP port of a network simulator (redpitaya).")
    ] = None,
    links: Annotated[
        Path | None,
        typer.Option(
            help="Make DIR/NAME a symlink to each simulated serial port, so "
            "another process can use stable port names."
        ),
    ] = None,
) -> None:
    """Run simulated instruments in the foreground (Ctrl-C stops)."""
    import signal
    import threading

    from labsky.sim import SimulatorHost

    _logging()
    config = _simulation_for(name, port)
    if links is not None:
        config = config.model_copy(deep=True)
        for sim_name, declaration in config.instruments.items():
            if hasattr(declaration.params, "link"):
                declaration.params.link = links.resolve() / sim_name
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SimulatorHost(config) as host:
        for sim_name, endpoint in host.endpoints.items():
            typer.echo(f"{sim_name:<16} {endpoint}")
        typer.echo("simulating; Ctrl-C to stop")
        sys.stdout.flush()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


@app.command()
def daemon(
    profile: ProfileArg,
    redis: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of a Redis to use; default: a private one."),
    ] = None,
    control_port: Annotated[
        int, typer.Option(help="RE Manager control port on 127.0.0.1 (0: free).")
    ] = 60615,
    info_port: Annotated[
        int, typer.Option(help="RE Manager console port on 127.0.0.1 (0: free).")
    ] = 60625,
    publish_port: Annotated[
        int, typer.Option(help="Port of the 0MQ document feed (0: free, -1: off).")
    ] = 5578,
    publish_host: Annotated[
        str, typer.Option(help="Interface of the feed; off loopback needs --curve-dir.")
    ] = "127.0.0.1",
    curve_dir: Annotated[
        Path | None, typer.Option(help="CURVE keys for the feed (server.key_secret).")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(help="Serve REST (bluesky-httpserver) on this port.")
    ] = None,
    http_api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the REST API key.")
    ] = "LABSKY_HTTP_API_KEY",
) -> None:
    """Run PROFILE's session under bluesky-queueserver for remote control.

    Starts Redis (unless --redis), Tiled, the 0MQ document feed, the RE
    Manager with the session in its worker, and optionally REST; all on
    127.0.0.1. Clients: `labsky.client.LabClient.of_profile(PROFILE)`,
    bluesky-queueserver-api, or `qserver -a tcp://127.0.0.1:60615`.
    """
    import signal

    from labsky.daemon import Daemon, DaemonError
    from labsky.daemon.redis_server import RedisMissingError

    _logging()
    try:
        runner = Daemon(
            find_profile(profile),
            redis=redis,
            control_port=control_port,
            info_port=info_port,
            publish_port=None if publish_port < 0 else publish_port,
            publish_host=publish_host,
            curve_dir=curve_dir,
            http_port=http_port,
            http_api_key=os.environ.get(http_api_key_env),
        )
        typer.echo(f"starting the daemon of {profile} (log: {runner.directory})")
        addresses = runner.start()
    except (DaemonError, RedisMissingError) as exc:
        raise _fail(str(exc)) from None
    for key, value in vars(addresses).items():
        if value and key != "tiled_api_key":
            typer.echo(f"  {key:<10} {value}")
    typer.echo("ready; Ctrl-C stops it (the environment closes first)")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does
    try:
        code = runner.wait()
        typer.echo(f"the RE Manager exited with {code}:\n{runner.log_tail()}", err=True)
    except KeyboardInterrupt:
        typer.echo("stopping ...")
    finally:
        runner.close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command()
def gui(
    profile: ProfileArg,
    host: Annotated[
        str, typer.Option(help="Interface; beyond loopback needs LABSKY_GUI_API_KEY.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the page (0: free).")] = 8765,
) -> None:
    """Serve the lab cockpit for PROFILE in a browser and print its URL.

    Attaches to the profile's running `labsky daemon`, or starts one (which
    stops with the cockpit). Devices, plans and queue, live plots, camera,
    runs, log. Ctrl-C stops it.
    """
    from labsky.daemon import DaemonError
    from labsky.daemon.redis_server import RedisMissingError
    from labsky.gui.server import CockpitError, api_key_from_environment, serve

    _logging()
    try:
        serve(
            find_profile(profile),
            host=host,
            port=port,
            api_key=api_key_from_environment(),
            echo=typer.echo,
        )
    except (CockpitError, DaemonError, RedisMissingError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("stopped")


ioc_app = LabskyTyper(
    help="Own an instrument and serve it to other processes over Channel Access.",
    no_args_is_help=True,
)
app.add_typer(ioc_app, name="ioc")


def _settings_option(values: list[str]) -> dict[str, Any]:
    from labsky.devices.redpitaya import check_setting

    settings = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep:
            raise _fail(f"--set {item!r}: write NAME=VALUE (asg1.frequency=1e6)", 2)
        try:
            settings[key.strip()] = check_setting(key.strip(), _parse_value(text))
        except ValueError as exc:
            raise _fail(f"--set {item}: {exc}", 2) from None
    return settings


@ioc_app.command("redpitaya")
def ioc_redpitaya(
    host: Annotated[
        str | None,
        typer.Option(help="The board: host, host:port or a VISA resource."),
    ] = None,
    prefix: Annotated[str, typer.Option(help="PV prefix.")] = "RP:",
    simulate: Annotated[
        bool, typer.Option("--sim", help="Own a simulated board (no --host).")
    ] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE applied at start (repeatable)."),
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(help="Address to serve on (repeatable; default all)."),
    ] = None,
    scan_rate: Annotated[
        float, typer.Option(help="Polls per second of slow inputs and the PID.")
    ] = 10.0,
) -> None:
    """Serve a Red Pitaya's scope, generators, PID and I/O as PVs."""
    import asyncio
    import contextlib

    from labsky.ioc.redpitaya import run_ioc

    _logging()
    logging.getLogger("labsky.ioc").setLevel(logging.INFO)
    if (host is None) == (not simulate):
        raise _fail("give --host HOST (a board) or --sim (a simulated one)", 2)
    initial = _settings_option(settings or [])
    with contextlib.ExitStack() as stack:
        if simulate:
            from labsky.sim import SimulatorHost

            config = _simulation_for("redpitaya", None)
            sim_host = stack.enter_context(SimulatorHost(config))
            host = sim_host.endpoints["redpitaya"]
            typer.echo(f"simulated board at {host}")
        assert host is not None

        async def main() -> None:
            ready = asyncio.Event()
            task = asyncio.create_task(
                run_ioc(host, prefix, initial, interface, scan_rate, ready)
            )
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if ready.is_set():
                typer.echo(f"serving {host} as {prefix}*; Ctrl-C to stop")
                sys.stdout.flush()
            waiter.cancel()
            await task

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        except Exception as exc:  # noqa: BLE001 - the CLI reports, not a traceback
            raise _fail(f"ioc redpitaya: {exc}") from None


ring_app = LabskyTyper(help="Inspect the Arrow ring buffer.", no_args_is_help=True)
app.add_typer(ring_app, name="ring")


@ring_app.command("path")
def ring_path_command(profile: ProfileArg) -> None:
    """Print the ring file a session of PROFILE writes (for live readers)."""
    from labsky.pipeline.live import profile_ring_path

    typer.echo(profile_ring_path(find_profile(profile)))


@ring_app.command("tail")
def ring_tail(
    target: Annotated[
        str, typer.Argument(help="The ring file, or a profile whose ring to follow.")
    ],
    from_start: Annotated[
        bool, typer.Option(help="Begin at the oldest batch still in the ring.")
    ] = False,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many batches.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop after this many idle seconds.")
    ] = None,
) -> None:
    """Print batches as they are published, from any process."""
    import time

    from labsky.pipeline.live import profile_ring_path
    from labsky.pipeline.ring import RingReader

    path = Path(target)
    if not path.is_file():
        try:
            path = profile_ring_path(target)
        except FileNotFoundError as exc:
            where = path.resolve()
            looked = "it is a folder" if path.is_dir() else f"no file {where}"
            raise _fail(
                f"{target} is neither a ring file ({looked}) nor a profile ({exc}); "
                "`labsky ring path PROFILE` prints a profile's ring file",
                2,
            ) from None
    if not path.exists():
        raise _fail(f"no ring file at {path}: is a session of it running?", 2)
    reader = RingReader(path, start=None if from_start else "latest")
    seen, idle_since = 0, time.monotonic()
    try:
        while count is None or seen < count:
            item = reader.read_next()
            if item is None:
                if timeout is not None and time.monotonic() - idle_since > timeout:
                    break
                time.sleep(0.005)  # noqa: TID251 - polls the ring: its writer rings no bell
                continue
            idle_since = time.monotonic()
            seen += 1
            meta = {
                k.decode(): v.decode()
                for k, v in (item.batch.schema.metadata or {}).items()
            }
            if item.missed:
                typer.secho(f"... missed {item.missed} batches", fg=typer.colors.YELLOW)
            typer.echo(f"#{item.seq} {meta} rows={item.batch.num_rows}")
            for row in item.batch.to_pylist()[:20]:
                typer.echo(f"  {row}")
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


def _logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def main() -> None:
    """Entry point of the `labsky` console script."""
    app()
