"""`labsky daemon`: bluesky-queueserver's RE Manager running a labsky session.

The daemon owns the hardware and the RunEngine; clients drive it remotely
through the queue server's 0MQ API (`labsky.client`, bluesky-queueserver-api,
`qserver`) or, optionally, REST through bluesky-httpserver. Pieces:

- `redis_server`: a private redis-server on loopback for the queue and history;
- `annotations`: queue-server parameter annotations from each plan's argument model;
- `startup`: the worker's startup module, which builds the session;
- `service`: the daemon itself, starting and stopping all of the above.
"""

from labsky.daemon.service import Daemon, DaemonAddresses, DaemonError

__all__ = ["Daemon", "DaemonAddresses", "DaemonError"]
