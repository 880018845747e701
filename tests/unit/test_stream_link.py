"""A late reply is never taken for the next query's (instruments that always answer)."""

import asyncio
import contextlib

import pytest

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
