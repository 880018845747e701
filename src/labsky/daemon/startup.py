"""The RE Worker's startup module: importing it builds the labsky session.

`labsky daemon` starts the queue server's RE Manager with
`--startup-module labsky.daemon.startup`; each time an environment opens,
the manager's worker process imports this module and takes its top-level
names as the environment: `RE` (the session's RunEngine, with the data
pipeline, Tiled registration and 0MQ publishing subscribed), every device by
name, and every plan wrapped so that its arguments get labsky's checks.

This is the one module of labsky with side effects at import: that is the
queue server's contract for startup code. Its inputs come from environment
variables set by the daemon:

- `LABSKY_DAEMON_PROFILE`, `LABSKY_DAEMON_DATA_DIR`: the profile directory
  and the data directory the daemon uses;
- `LABSKY_DAEMON_TILED_URI` / `LABSKY_DAEMON_TILED_KEY`: the daemon's Tiled
  server, used instead of an embedded one so it outlives the worker;
- `LABSKY_DAEMON_PUBLISH`: the 0MQ proxy's input address, if publishing;
- `LABSKY_DAEMON_DEVICES`: where to serve the device API (`device_api`).
"""

from __future__ import annotations

import os

from labsky.daemon.worker import worker_namespace

globals().update(
    worker_namespace(
        os.environ["LABSKY_DAEMON_PROFILE"],
        data_dir=os.environ.get("LABSKY_DAEMON_DATA_DIR"),
        tiled_uri=os.environ.get("LABSKY_DAEMON_TILED_URI"),
        publish=os.environ.get("LABSKY_DAEMON_PUBLISH"),
        device_api=os.environ.get("LABSKY_DAEMON_DEVICES"),
    )
)
