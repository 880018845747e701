"""Helpers for the child processes labsky starts (Tiled, Redis, the RE Manager)."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In the child itself: get SIGTERM when the parent dies (Linux).

    Not as `preexec_fn` (unsafe once threads run): children run through
    `tethered`, which calls this in their own process before their program.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this computer)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    try:  # a zombie (killed, not yet reaped by its parent) is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def wait_for_exit(pid: int, timeout: float | None) -> bool:
    """Wait for another process (not a child) to exit; True once it has.

    Waits on the process itself (a pidfd), not on a timer.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else int(timeout * 1000)))
    finally:
        os.close(fd)


def describe_process(pid: int) -> str:
    """The command line of a process, for messages ("labsky shell sim")."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"process {pid}"
    words = [w for w in raw.decode(errors="replace").split("\0") if w]
    if len(words) > 2 and words[1] == "-m":
        words = [words[2].split(".")[0], *words[3:]]
    elif words and words[0].endswith(("python", "python3")) and len(words) > 1:
        words = words[1:]
    command = " ".join(
        Path(words[0]).name if i == 0 else w for i, w in enumerate(words)
    )
    return f"process {pid} ({command[:120]})"


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Terminate a child, kill it if it is still there after `timeout`, reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
