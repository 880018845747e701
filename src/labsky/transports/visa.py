"""A link through pyvisa: GPIB, USB-TMC, VXI-11, raw sockets and pyvisa-sim.

pyvisa is blocking, so every call runs on one thread of the link's own
(VISA sessions are not meant to be shared between threads); the RunEngine
loop only awaits.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labsky.transports.errors import (
    InstrumentTimeoutError,
    LinkClosedError,
    ReplyError,
    reconnect_advice,
)
from labsky.transports.stream import LineSettings


class VisaLink:
    """A VISA resource (`TCPIP::host::5000::SOCKET`, `GPIB0::12::INSTR`, ...).

    Args:
        resource: The VISA resource name.
        line: Terminators, encoding and default timeout.
        library: pyvisa backend: `@py` (pyvisa-py, the default), `@ivi`, or
            `path/to/instrument.yaml@sim` for pyvisa-sim.
        label: Name used in messages.
    """

    def __init__(
        self,
        resource: str,
        line: LineSettings | None = None,
        library: str = "@py",
        label: str = "",
    ):
        self.address = resource
        self.line = line or LineSettings()
        self.library = library
        self.label = label or resource
        self.lock = asyncio.Lock()
        self.hint = (
            f"check the VISA resource {resource!r} (`pyvisa-info`, "
            "`python -m pyvisa list`) and that the instrument is on"
        )
        self._executor: ThreadPoolExecutor | None = None
        self._resource: Any = None

    async def _call(self, function: Any, *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, function, *args
        )

    async def open(self) -> None:
        """Open the resource (on the link's thread)."""
        await self.close()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"visa-{self.label}")
        try:
            self._resource = await self._call(self._open_blocking)
        except Exception as exc:  # pyvisa raises many kinds
            await self.close()
            raise LinkClosedError(
                f"{self.label}: cannot open {self.address} with pyvisa "
                f"({self.library}): {exc}; {self.hint}"
            ) from exc

    def _open_blocking(self) -> Any:
        import pyvisa

        manager = pyvisa.ResourceManager(self.library)
        resource: Any = manager.open_resource(self.address)
        resource.read_termination = self.line.read_termination
        resource.write_termination = self.line.write_termination
        resource.encoding = self.line.encoding
        resource.timeout = self.line.timeout * 1000
        return resource

    @property
    def is_open(self) -> bool:
        """Whether the resource is open."""
        return self._resource is not None

    async def close(self) -> None:
        """Close the resource and its thread."""
        resource, self._resource = self._resource, None
        executor, self._executor = self._executor, None
        if resource is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, resource.close)
        if executor is not None:
            executor.shutdown(wait=False)

    def _blocking(self, command: str, query: bool, timeout: float | None) -> str:
        import pyvisa
        from pyvisa import constants

        resource = self._resource
        if resource is None:
            raise LinkClosedError(f"{self.label}: {command!r} sent while not connected")
        resource.timeout = (self.line.timeout if timeout is None else timeout) * 1000
        try:
            if query:
                return str(resource.query(command))
            resource.write(command)
            return ""
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == constants.StatusCode.error_timeout:
                raise InstrumentTimeoutError(
                    f"{self.label}: no reply to {command!r} from {self.address} "
                    f"within {resource.timeout / 1000:g} s; {self.hint}"
                ) from None
            raise LinkClosedError(
                f"{self.label}: {command!r} failed: {exc}; check the instrument, "
                f"{reconnect_advice(self.label)}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ReplyError(
                f"{self.label}: the reply to {command!r} is not "
                f"{self.line.encoding} text ({exc})"
            ) from None

    def _block(self, command: str, timeout: float | None) -> bytes:
        import pyvisa

        resource = self._resource
        if resource is None:
            raise LinkClosedError(f"{self.label}: {command!r} sent while not connected")
        resource.timeout = (self.line.timeout if timeout is None else timeout) * 1000
        try:
            values = resource.query_binary_values(
                command, datatype="B", container=bytes, expect_termination=True
            )
        except pyvisa.errors.VisaIOError as exc:
            raise InstrumentTimeoutError(
                f"{self.label}: no block in reply to {command!r} from "
                f"{self.address} within {resource.timeout / 1000:g} s; {self.hint}"
            ) from exc
        except ValueError as exc:  # pyvisa: not a block
            raise ReplyError(
                f"{self.label}: expected a binary block in reply to {command!r}: "
                f"{exc}; is the data format binary?"
            ) from None
        return bytes(values)

    async def query_block(self, command: str, timeout: float | None = None) -> bytes:
        """Send a query answered by an IEEE 488.2 block; return its bytes."""
        async with self.lock:
            return await self._call(self._block, command, timeout)

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send a command and return its reply."""
        async with self.lock:
            return await self._call(self._blocking, command, True, timeout)

    async def send(self, command: str) -> None:
        """Send a command that has no reply."""
        async with self.lock:
            await self._call(self._blocking, command, False, None)
