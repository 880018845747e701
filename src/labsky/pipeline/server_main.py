"""Run `tiled` as a child process that dies with its parent.

The child asks the kernel for SIGTERM when its parent dies (Linux), itself,
before Tiled starts: a `preexec_fn` would do it between fork and exec, which
is unsafe in a parent that runs threads. If the parent is already gone when
it looks, it exits. A `serve catalog` of a SQLite file that does not exist
yet makes the file whole first (`create_whole`), so a server killed while
starting never leaves a half-made catalog.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from labsky.processes import die_with_parent


def main() -> None:
    """Entry point: die with the parent, then run Tiled's command line."""
    die_with_parent()
    parent = os.environ.get("LABSKY_PARENT_PID")
    if parent is not None and os.getppid() != int(parent):
        sys.exit(0)  # the parent died before the death signal was armed
    args = sys.argv[1:]
    if args[:2] == ["serve", "catalog"] and len(args) > 2 and "://" not in args[2]:
        from labsky.pipeline.catalog_file import create_whole

        create_whole(Path(args[2]))
    sys.argv = ["tiled", *args]
    runpy.run_module("tiled", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
