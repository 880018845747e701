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
import shlex
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import yaml
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.protocols import Locatable
from bluesky.utils import ProgressBarManager
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_magic, magics_class
from ophyd_async.core import Signal

from labsky.plans.signature import checked_plan
from labsky.session import Session, start


def _evaluate(shell: InteractiveShell, line: str) -> list[Any]:
    return list(eval(f"[{', '.join(line.split())}]", shell.user_ns))  # noqa: S307


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
        args = _evaluate(self._shell, line)
        self.session.run_engine(bps.mv(*args))

    @line_magic
    def movr(self, line: str) -> None:
        """Move relative to the current positions: `%movr stage.x 0.1`."""
        args = _evaluate(self._shell, line)
        self.session.run_engine(bps.mvr(*args))

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
    session = start(directory, **kwargs)
    session.run_engine.waiting_hook = ProgressBarManager()  # type: ignore[assignment]
    bec = live_table_and_plots(session)
    shell.push({**prompt_namespace(session), "bec": bec})
    shell.register_magics(LabskyMagics(shell, session))
    autoawait_in_bluesky_event_loop(shell)
    _set_prompt(shell, session)
    print(session.summary())
    return session


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
