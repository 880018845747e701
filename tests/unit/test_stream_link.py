"""Replies are matched to their queries: late ones dropped, just-in-time ones kept."""

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from labsky.devices.elliptec import ElliptecBus
from labsky.devices.link_device import query_retrying
from labsky.transports import InstrumentTimeoutError, LineSettings, TcpLink

TIMEOUT = 0.5


#: Seconds the instrument takes: the first query after the host gave up.
LATE = 1.5 * TIMEOUT


async def instrument(delays: dict[str, list[float]]):
    """A line instrument answering in order, each query after its next delay."""

    async def serve(reader, writer):
        while line := await reader.readline():
            command = line.decode().strip()
            if delays.get(command):
                await asyncio.sleep(delays[command].pop(0))
            writer.write(command.lower().rstrip("?").encode() + b"\r\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@contextlib.asynccontextmanager
async def linked(delays: dict[str, list[float]], answers_every_query: bool = True):
    """A link to `instrument(delays)`, both closed at the end."""
    server = await instrument(delays)
    port = server.sockets[0].getsockname()[1]
    line = LineSettings(timeout=TIMEOUT, answers_every_query=answers_every_query)
    link = TcpLink("127.0.0.1", port, line, label="meter")
    await link.open()
    try:
        yield link
    finally:
        await link.close()
        server.close()


async def test_the_retry_of_a_late_query_leaves_no_reply_for_the_next():
    # the retry's own reply comes 0.1 s after the late one
    async with linked({"D?": [LATE, 0.1]}) as link:
        assert await query_retrying(link, "D?") == "d"  # asked twice
        assert await link.query("F?") == "f"  # not the second "d"


async def test_a_timed_out_query_s_late_reply_is_dropped_before_the_next():
    async with linked({"D?": [LATE]}) as link:
        with pytest.raises(InstrumentTimeoutError, match="meter"):
            await link.query("D?")
        assert await link.query("F?") == "f"


async def test_an_instrument_that_refuses_by_silence_is_not_waited_for():
    # SCPI servers do not answer a query they refuse: its next query is
    # sent at once (and a late reply would be taken for its own)
    async with linked({"D?": [LATE]}, answers_every_query=False) as link:
        with pytest.raises(InstrumentTimeoutError):
            await link.query("D?")
        assert await link.query("F?") == "d"


@contextlib.contextmanager
def prompt_instrument(reply: bytes):
    """An instrument in a thread of its own, answering its first command with `reply`.

    Yields:
        Its port and an event set once the reply is sent: the instrument
        answers while the test holds the event loop, as a loaded host does.
    """
    replied = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve():
            connection, _ = server.accept()
            with connection:
                connection.recv(64)  # the command (one short write)
                connection.sendall(reply)
                replied.set()
                connection.recv(64)  # until the host closes

        threading.Thread(target=serve, daemon=True).start()
        yield server.getsockname()[1], replied


async def busy_past_the_deadline(replied: threading.Event, timeout: float) -> None:
    """Let a query be sent, then hold the loop until its reply is in the socket
    and its deadline has passed: the loop reads the reply and fires the timeout
    in one turn."""
    start = time.monotonic()
    await asyncio.sleep(0)  # the query is sent and waits for its reply
    assert replied.wait(5)  # the loop, busy, does not read it yet
    while time.monotonic() < start + 1.2 * timeout:
        pass


async def test_a_reply_that_came_as_the_deadline_passed_is_taken():
    # the reply is complete: it is the answer, not "garbled or incomplete"
    # (the 1830-C's b'3\n' to F? failed a scan in CI so)
    with prompt_instrument(b"3\r\n") as (port, replied):
        link = TcpLink("127.0.0.1", port, LineSettings(timeout=TIMEOUT), "meter")
        await link.open()
        try:
            query = asyncio.create_task(link.query("F?"))
            await busy_past_the_deadline(replied, TIMEOUT)
            assert await query == "3"
        finally:
            await link.close()


async def test_a_mount_s_reply_that_came_as_the_deadline_passed_is_taken():
    # the same on the Elliptec bus, whose replies go through a queue per mount
    with prompt_instrument(b"2PO00001000\r\n") as (port, replied):
        bus = ElliptecBus(f"socket://127.0.0.1:{port}", timeout=TIMEOUT)
        await bus.open()
        try:
            query = asyncio.create_task(
                bus.transaction("rotator", "2", "gp", expect=("PO",))
            )
            await busy_past_the_deadline(replied, TIMEOUT)
            assert await query == ("PO", "00001000")
        finally:
            await bus.disconnect()
