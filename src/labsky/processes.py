"""Helpers for the child processes labsky starts (Tiled, Redis, the RE Manager)."""

from __future__ import annotations

import ctypes
import signal
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In the child (as `preexec_fn`): get SIGTERM when the parent dies (Linux).

    Children are also started in their own session (`start_new_session`), so
    a Ctrl-C at the terminal, which goes to the whole foreground process
    group, reaches only labsky, which then stops them in order.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
