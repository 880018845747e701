"""A raw SCPI client of port 5000, and the vendor's command list.

Written from the vendor's documentation of the protocol, not from the
simulator: CR LF framing, `;` chains, silent sets, the error queue read
with `SYST:ERR?` until `0,`, `#<d><len>` binary blocks.
"""

from __future__ import annotations

import itertools
import re
import socket
from pathlib import Path

COMMAND_LIST = (
    Path(__file__).parents[2] / "data" / "redpitaya" / "scpi-commands-2024.3.txt"
)
PERIPHERALS = ("UART", "SPI", "I2C", "CAN", "LCR")


def vendor_patterns() -> list[str]:
    """The header patterns of the vendor's 2024.3 server, in its order."""
    lines = COMMAND_LIST.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and line[0] != "#"]


def is_core(pattern: str) -> bool:
    """Not one of the peripheral-bus or LCR families."""
    return not pattern.startswith(PERIPHERALS)


def headers(pattern: str) -> list[str]:
    """Every way a client may write `pattern`'s header.

    Long and short form (upper-case letters) of each node, numeric suffixes
    omitted, 1 and 2, optional nodes present and absent.
    """
    query = pattern.endswith("?")
    body = pattern.removesuffix("?")
    nodes = [
        (match.group(1) or match.group(2), match.group(1) is not None)
        for match in re.finditer(r"\[:?([^\]]+)\]|([^:\[\]]+)", body)
    ]
    found = set()
    for form, suffix, optional in itertools.product(
        ("long", "short"), ("", "1", "2"), (True, False)
    ):
        words = []
        for word, is_optional in nodes:
            if is_optional and not optional:
                continue
            bare = word.removesuffix("#")
            if form == "long":
                text = bare.upper()
            else:
                text = "".join(c for c in bare if not c.islower())
                text = text or bare.upper()
            words.append(text + (suffix if word.endswith("#") else ""))
        found.add(":".join(words) + ("?" if query else ""))
    return sorted(found)


class ScpiClient:
    """A raw SCPI socket: what a client of a real board's port 5000 does."""

    def __init__(self, endpoint: str, timeout: float = 2.0):
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""

    def send(self, text: str) -> None:
        """Send one message (CR LF added)."""
        self.sock.sendall((text + "\r\n").encode())

    def line(self, timeout: float = 2.0) -> str | None:
        """One reply line, or None when nothing comes within `timeout`."""
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buffer:
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line.decode()

    def query(self, text: str, timeout: float = 2.0) -> str | None:
        """Send and read one line."""
        self.send(text)
        return self.line(timeout)

    def _exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the board closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def block(self, text: str, timeout: float = 30.0) -> bytes:
        """Send a query answered by a binary block; return its bytes.

        The board prepares the whole block before its first byte (a deep
        trace of 1 Mi samples takes a while on a loaded host): `timeout`
        bounds each wait for data.
        """
        self.sock.settimeout(timeout)
        self.send(text)
        head = self._exactly(2)
        assert head[:1] == b"#", head
        length = int(self._exactly(int(head[1:2])))
        data = self._exactly(length)
        assert self._exactly(2) == b"\r\n"
        return data

    def errors(self) -> list[str]:
        """Empty the error queue (`SYST:ERR?` until `0,...`)."""
        found = []
        for _ in range(64):
            reply = self.query("SYST:ERR?")
            assert reply is not None, "SYST:ERR? went unanswered"
            if reply.startswith("0,"):
                return found
            found.append(reply)
        raise AssertionError(f"the error queue does not empty: {found[-3:]}")

    def codes(self) -> list[int]:
        """The codes of the queued errors (the queue is emptied)."""
        return [int(error.split(",", 1)[0]) for error in self.errors()]

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
