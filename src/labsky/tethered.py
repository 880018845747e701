"""Run a command that dies with its parent: `python -m labsky.tethered PID -- CMD`.

A child asks the kernel for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`,
Linux). Asking from `subprocess.Popen(preexec_fn=...)`, between fork and exec,
is unsafe in a parent that runs threads (CPython's `subprocess` docs): this
small program asks in its own process instead, checks that its parent is still
the process `PID` that started it (if that one died first, nobody would send
the signal: it exits), and then becomes the command (`exec`): the death signal
survives the exec, and the pid the parent holds is the command's.
`tethered(command)` builds the command line; the embedded Tiled server does
the same in `labsky.pipeline.server_main`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from labsky.processes import die_with_parent

USAGE = "usage: python -m labsky.tethered PARENT_PID -- COMMAND [ARGUMENT...]"


def tethered(command: Sequence[str]) -> list[str]:
    """`command` as a child that gets SIGTERM when this process dies (Linux).

    Give the result to `subprocess.Popen`: this module arms the death
    signal in the child and then becomes `command` (same pid). Start children
    in their own session too (`start_new_session=True`), so a Ctrl-C at the
    terminal, which goes to the whole foreground process group, reaches only
    labsky, which then stops them in order.
    """
    return [sys.executable, "-m", "labsky.tethered", str(os.getpid()), "--", *command]


def main(argv: list[str] | None = None) -> None:
    """Arm the death signal, check the parent, exec the command."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        sys.exit(USAGE)
    die_with_parent()
    if os.getppid() != int(args[0]):
        sys.exit(0)  # the parent died before the death signal was armed
    command = args[2:]
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.exit(f"labsky.tethered: cannot run {command[0]}: {exc}")


if __name__ == "__main__":
    main()
