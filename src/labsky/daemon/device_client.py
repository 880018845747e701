"""A client of the daemon's device API (`labsky.daemon.device_api`), for asyncio.

client = DeviceClient(addresses.devices)
described = await client.request("describe")
await client.request("set", name="stage.x", value=1.5)
async for topic, message, payload in client.updates():
    ...  # "values" / "state" / "frame"
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio

from labsky.errors import LabskyError


class DeviceRequestError(LabskyError, RuntimeError):
    """The device API refused a request; the message is its reason."""


class DeviceClient:
    """Requests to, and updates from, the worker's device API.

    Args:
        address: The request address (`DaemonAddresses.devices`).
        timeout: Seconds to wait for an answer (moves may take longer: give
            `timeout` per request).
    """

    def __init__(self, address: str, timeout: float = 30.0):
        self.address = address
        self.timeout = timeout
        self.context = zmq.asyncio.Context()
        self._publish: str | None = None

    async def request(
        self, op: str, *, timeout: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send one request; return its answer.

        A fresh socket per request, so a request that timed out leaves nothing
        behind and requests from several tasks never wait on each other.

        Raises:
            DeviceRequestError: With the device API's reason.
            TimeoutError: If it does not answer in time.
        """
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.address)
        try:
            await socket.send_multipart(
                [b"", json.dumps({"op": op, **fields}).encode()]
            )
            wait = self.timeout if timeout is None else timeout
            frames = await asyncio.wait_for(socket.recv_multipart(), wait)
        finally:
            socket.close()
        reply = json.loads(frames[-1])
        if not reply.pop("ok"):
            raise DeviceRequestError(reply["error"])
        if op == "describe":
            self._publish = reply.get("publish")
        return reply

    async def updates(self) -> AsyncIterator[tuple[str, dict[str, Any], bytes]]:
        """Values, state changes and frames as they are published.

        Yields:
            `(topic, message, payload)`; payload holds a frame's pixels.
        """
        if self._publish is None:
            await self.request("describe")
        socket = self.context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, 50)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        assert self._publish is not None
        socket.connect(self._publish)
        try:
            while True:
                topic, message, *rest = await socket.recv_multipart()
                yield topic.decode(), json.loads(message), rest[0] if rest else b""
        finally:
            socket.close()

    def close(self) -> None:
        """Close the sockets."""
        self.context.destroy(linger=0)
