"""Run `tiled` as a child process that dies with its parent.

The child asks the kernel for SIGTERM when its parent dies (Linux), itself,
before Tiled starts: a `preexec_fn` would do it between fork and exec, which
is unsafe in a parent that runs threads. If the parent is already gone when
it looks, it exits.
"""

from __future__ import annotations

import os
import runpy
import sys

from labsky.processes import die_with_parent


def main() -> None:
    """Entry point: die with the parent, then run Tiled's command line."""
    die_with_parent()
    parent = os.environ.get("LABSKY_PARENT_PID")
    if parent is not None and os.getppid() != int(parent):
        sys.exit(0)  # the parent died before the death signal was armed
    sys.argv = ["tiled", *sys.argv[1:]]
    runpy.run_module("tiled", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
