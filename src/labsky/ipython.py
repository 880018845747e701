"""The IPython front end: a session at the prompt, with labsky's magics.

`%wa`, `%mov`, `%movr`, `%md` and `%reconnect`: bluesky's own magics find
devices through ophyd v1 labels and import a second RunEngine that replaces
the event loop, so labsky brings small ophyd-async aware versions instead.
A profile's startup file is two lines::

    from labsky.ipython import start_in_ipython
    start_in_ipython()
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import yaml
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.protocols import Locatable
from bluesky.utils import ProgressBarManager
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_magic, magics_class
from ophyd_async.core import Signal

from labsky.plans.signature import checked_plan
from labsky.session import Session, start


def _move_pairs(
    shell: InteractiveShell, session: Session, magic: str, line: str
) -> list[tuple[str, Any, Any]]:
    """`stage.x 1 rotator 2` as (name, device, position) triples, all checked.

    Raises:
        UsageError: For an odd number of words, a name that is no movable
            device (with a did-you-mean) or a position that does not evaluate.
    """
    import difflib

    words = line.split()
    usage = f"%{magic} DEVICE POSITION [DEVICE POSITION ...], e.g. %{magic} stage.x 1.5"
    if not words or len(words) % 2:
        given = f"got {line.strip()!r}" if words else "got nothing"
        raise UsageError(f"%{magic}: give each device a position ({given}); {usage}")
    movables = list(_locatables(session, None))
    pairs = []
    for name, text in zip(words[::2], words[1::2], strict=True):
        try:
            device = eval(name, shell.user_ns)  # the user's own prompt
        except Exception:  # noqa: BLE001 - a typo: say what is there instead
            close = difflib.get_close_matches(name, movables, n=2, cutoff=0.6)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise UsageError(
                f"%{magic}: no device {name!r}; {hint}(movables: "
                f"{', '.join(movables)}; %wa shows where they are)"
            ) from None
        if not isinstance(device, Locatable):
            raise UsageError(f"%{magic}: {name} cannot move (not a movable device)")
        try:
            value = eval(text, shell.user_ns)  # the user's own prompt
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback
            raise UsageError(
                f"%{magic}: position {text!r} of {name}: {type(exc).__name__}: {exc}"
            ) from None
        pairs.append((name, device, value))
    return pairs


def _cause(exc: BaseException) -> str:
    """The device's own error behind bluesky's FailedStatus, as one line."""
    while exc.__cause__ is not None and "FailedStatus" in type(exc).__name__:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@contextmanager
def _quiet_bluesky_errors() -> Iterator[None]:
    """Keep bluesky's logged traceback of a failed move off the prompt."""

    def quiet(record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.levelno >= logging.ERROR)

    log = logging.getLogger("bluesky")
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


async def _positions(devices: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    async def one(name: str, device: Any) -> tuple[str, Any, Any]:
        try:
            location = await device.locate()
            return name, location["readback"], location["setpoint"]
        except Exception as exc:  # noqa: BLE001 - shown in the table
            return name, f"error: {exc}", ""

    return list(await asyncio.gather(*(one(n, d) for n, d in devices.items())))


def _locatables(session: Session, group: str | None) -> dict[str, Any]:
    names = session.groups.get(group, []) if group else list(session.devices)
    found: dict[str, Any] = {}
    for name in names:
        device = session.devices.get(name)
        if device is None:
            continue
        if isinstance(device, Locatable):
            found[name] = device
        for child_name, child in getattr(device, "children", lambda: [])():
            if isinstance(child, Locatable) and not isinstance(child, Signal):
                found[f"{name}.{child_name}"] = child
    return found


@magics_class
class LabskyMagics(Magics):
    """`%wa`, `%mov`, `%movr`, `%md` and `%reconnect` for ophyd-async devices."""

    def __init__(self, shell: InteractiveShell, session: Session):
        super().__init__(shell)
        self._shell = shell
        self.session = session

    @line_magic
    def wa(self, line: str) -> None:
        """Print where every movable is: `%wa` or `%wa GROUP`."""
        from bluesky.run_engine import call_in_bluesky_event_loop

        group = line.strip() or None
        rows = call_in_bluesky_event_loop(_positions(_locatables(self.session, group)))
        width = max((len(r[0]) for r in rows), default=4)
        print(f"{'name':<{width}}  {'readback':>14}  {'setpoint':>14}")
        for name, readback, setpoint in rows:
            print(f"{name:<{width}}  {_fmt(readback):>14}  {_fmt(setpoint):>14}")

    @line_magic
    def mov(self, line: str) -> None:
        """Move to absolute positions: `%mov stage.x 1.5 stage.y -0.5`."""
        self._move("mov", line, bps.mv)

    @line_magic
    def movr(self, line: str) -> None:
        """Move relative to the current positions: `%movr stage.x 0.1`."""
        self._move("movr", line, bps.mvr)

    def _move(self, magic: str, line: str, plan: Any) -> None:
        """Check the words, move, and print where each device went.

        A bad line (no position, a misspelled device) is a one-line usage
        error before anything moves; so is a move the device refuses.
        """
        from bluesky.run_engine import call_in_bluesky_event_loop

        pairs = _move_pairs(self._shell, self.session, magic, line)
        located = {name: device for name, device, _ in pairs}
        before = {n: r for n, r, _ in call_in_bluesky_event_loop(_positions(located))}
        args = [x for _, device, value in pairs for x in (device, value)]
        with _quiet_bluesky_errors():
            try:
                self.session.run_engine(plan(*args))
            except Exception as exc:  # noqa: BLE001 - one line says why
                raise UsageError(f"%{magic}: {_cause(exc)}") from None
        after = call_in_bluesky_event_loop(_positions(located))
        width = max(len(n) for n in located)
        for name, readback, _ in after:
            print(f"{name:<{width}}  {_fmt(before[name])} -> {_fmt(readback)}")

    @line_magic
    def reconnect(self, line: str) -> None:
        """Connect a device again once its instrument is back: `%reconnect meter`.

        A device that failed at start joins the namespace when it connects.
        """
        names = line.split()
        if len(names) != 1:
            raise ValueError("%reconnect: name one device, e.g. %reconnect meter")
        done = self.session.reconnect(names[0])
        self._shell.push({n: self.session.devices[n] for n in done})
        print(f"reconnected: {', '.join(done)}")

    @line_magic
    def md(self, line: str) -> None:
        """Show or set the metadata of every following run (kept across restarts).

        `%md` shows it, `%md sample=Si operator="A. Student"` sets keys (values
        are YAML), `%md -d sample` removes one.
        """
        md = self.session.run_engine.md
        words = shlex.split(line)
        if words[:1] == ["-d"]:
            for key in words[1:]:
                md.pop(key, None)
        elif words:
            if any("=" not in w for w in words):
                raise ValueError("%md: write KEY=VALUE pairs, e.g. %md sample=Si")
            md.update(
                {k: yaml.safe_load(v) for k, v in (w.split("=", 1) for w in words)}
            )
        for key, value in sorted(md.items()):
            print(f"{key:<16} {value!r}")


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def start_in_ipython(
    profile: str | Path | None = None,
    shell: InteractiveShell | None = None,
    **kwargs: Any,
) -> Session:
    """Start a session and put it at the IPython prompt.

    Args:
        profile: Profile directory; defaults to IPython's `--profile-dir`.
        shell: The IPython shell; defaults to the running one.
        **kwargs: Passed on to `labsky.session.start`.

    Returns:
        The session, also available as `session` at the prompt.
    """
    from bluesky.run_engine import autoawait_in_bluesky_event_loop

    shell = shell or InteractiveShell.instance()
    if profile is None:
        if shell.profile_dir is None:
            raise ValueError("no profile given and IPython was started without one")
        profile = str(shell.profile_dir.location)
    directory = Path(profile)
    # The live table prints a row per event; a progress bar redrawn beside it
    # breaks into its rows, so at the prompt the table shows the progress.
    kwargs.setdefault("progress", False)
    session = start(directory, **kwargs)
    _close_before_thread_pools_stop(session)
    session.run_engine.waiting_hook = ProgressBarManager()  # type: ignore[assignment]
    bec = live_table_and_plots(session)
    shell.push({**prompt_namespace(session), "bec": bec})
    shell.register_magics(LabskyMagics(shell, session))
    autoawait_in_bluesky_event_loop(shell)
    _set_prompt(shell, session)
    print(session.summary())
    return session


def _close_before_thread_pools_stop(session: Session) -> None:
    """Close the session at exit while devices can still use their threads.

    `atexit` (where the session closes itself otherwise) runs after the
    interpreter has stopped every thread pool, so a device that disconnects
    on a thread of its own (the camera) failed with "cannot schedule new
    futures after shutdown". Hooks registered with `threading` run before
    that, latest first.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(session.close)


def prompt_namespace(session: Session) -> dict[str, Any]:
    """The names at the prompt: the session's, with plans that check their arguments.

    A plan called at the prompt checks its arguments with its model
    (`labsky.plans.signature`) before it returns its generator, so
    `RE(scan([pdet], stage.x, -1, 1, "five"))` fails in one line, before the
    RunEngine opens a run. Device names given as text are resolved.
    """
    names = session.namespace()
    checked = {
        name: checked_plan(plan, session.devices, name)
        for name, plan in session.plans.items()
    }
    for name, plan in session.plans.items():
        if names.get(name) is plan:  # a device of the same name keeps the name
            names[name] = checked[name]
    names["plans"] = checked
    return names


def live_table_and_plots(session: Session) -> BestEffortCallback:
    """Subscribe bluesky's BestEffortCallback: a live table, and plots on a display.

    Plots need an interactive matplotlib backend; on a terminal without a
    display (ssh, CI) only the table is shown. `bec.disable_table()` and
    `bec.disable_plots()` turn either off at the prompt.

    Returns:
        The callback (also `bec` at the prompt).
    """
    import matplotlib

    bec = BestEffortCallback()
    if matplotlib.get_backend().lower() in _NON_INTERACTIVE:
        bec.disable_plots()
    session.subscribe(bec)
    return bec


_NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "cairo", "template"}


def _set_prompt(shell: InteractiveShell, session: Session) -> None:
    from IPython.terminal.prompts import Prompts
    from pygments.token import Token

    if not hasattr(shell, "prompts"):
        return  # not a terminal shell (kernel): nothing to draw

    class SessionPrompts(Prompts):
        def in_prompt_tokens(self) -> list[tuple[Any, str]]:
            return [
                (Token.Prompt, f"labsky:{session.profile.name} "),
                (Token.Comment, f"[{session.data_dir}] "),
                *super().in_prompt_tokens(),
            ]

    shell.prompts = SessionPrompts(shell)  # type: ignore[attr-defined]
