"""The split-trigger and deep-memory acquisition sequences of a board.

Both follow the vendor's own examples (`acqRF-5-split_trig`, `deepMemoryAcq`):

- SPLIT: `ACQ:SPLIT:TRig ON`; each input gets its decimation, trigger delay
  and level (`ACQ:DEC:Factor:CH<n>`, `ACQ:TRig:DLY:CH<n>`,
  `ACQ:TRig:LEV:CH<n>`), is started (`ACQ:START:CH<n>`) and armed
  (`ACQ:TRig:CH<n>`) on its own; then both are polled (`ACQ:TRig:STAT:CH<n>?`,
  `ACQ:TRig:FILL:CH<n>?`) and read (`ACQ:SOUR<n>:DATA?`, oldest first).
- DEEP: both inputs get half the reserved RAM region (`ACQ:AXI:START?`,
  `ACQ:AXI:SIZE?`, `ACQ:AXI:SOUR<n>:SET:Buffer`) and write into it from
  `ACQ:START`; the trigger is the normal one, after which each input writes
  `ACQ:AXI:SOUR<n>:Trig:Dly` samples; the window around the trigger is read
  from `ACQ:AXI:SOUR<n>:Trig:Pos?` back by the pre-trigger samples.

The functions run under the controller's acquisition lock.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from labsky.devices.redpitaya._scpi import F_CLOCK, HALF, Trace, chain
from labsky.devices.redpitaya._settings import ScopeMode, TriggerSource
from labsky.transports import InstrumentRefusedError, InstrumentTimeoutError

if TYPE_CHECKING:
    from labsky.devices.redpitaya._controller import RedPitayaController

#: What a board answers when its FPGA cannot split the trigger.
SPLIT_HINT = (
    "this board cannot split the trigger per input (a STEMlab 125-14 can from "
    "OS 2.07-48; the 4-Input model from 2.05); use scope.mode NORMAL"
)
#: Bytes a sample takes in deep memory.
DEEP_SAMPLE_BYTES = 2


async def wait_until(
    controller: RedPitayaController,
    query: str,
    expected: str,
    deadline: float,
    poll: float,
    message: str,
) -> None:
    """Poll `query` until it answers `expected`.

    Raises:
        InstrumentTimeoutError: With `message` after `deadline`.
    """
    while await controller.scpi.query(query) != expected:
        if time.monotonic() > deadline:
            raise InstrumentTimeoutError(message)
        await asyncio.sleep(poll)


async def acquire_split(controller: RedPitayaController) -> Trace:
    """One acquisition with a trigger per input."""
    scpi = controller.scpi
    cache = controller.cache
    decimation, delay = (
        int(float(x))
        for x in (await scpi.query(chain("ACQ:DEC?", "ACQ:TRig:DLY?"))).split(";")
    )
    level = float(await scpi.query("ACQ:TRig:LEV?"))
    sources = (
        TriggerSource(cache["scope.trigger_source"]),
        TriggerSource(cache["scope.ch2_trigger_source"]),
    )
    decimations = (decimation, int(cache["scope.ch2_decimation"]))
    delays = (delay, int(cache["scope.ch2_trigger_delay"]))
    levels = (level, float(cache["scope.ch2_trigger_level"]))
    timeout = float(cache["scope.timeout"])
    try:
        await scpi.set("ACQ:SPLIT:TRig ON")
    except InstrumentRefusedError as exc:
        raise InstrumentRefusedError(f"{exc}; {SPLIT_HINT}") from None
    controller.split_active = True
    await scpi.set(
        chain(
            *(
                command
                for n in (1, 2)
                for command in (
                    f"ACQ:DEC:Factor:CH{n} {decimations[n - 1]}",
                    f"ACQ:TRig:DLY:CH{n} {delays[n - 1]}",
                    f"ACQ:TRig:LEV:CH{n} {levels[n - 1]!r}",
                )
            )
        )
    )
    await scpi.set(chain("ACQ:START:CH1", "ACQ:START:CH2"))
    waits = [
        (HALF - delays[k]) * decimations[k] / F_CLOCK
        for k in (0, 1)
        if not sources[k].startswith("AWG")
    ]
    pre = max(waits, default=0.0)
    if pre > 0:
        await asyncio.sleep(pre)  # let both pre-trigger histories fill
    await scpi.set(
        chain(f"ACQ:TRig:CH1 {sources[0].value}", f"ACQ:TRig:CH2 {sources[1].value}")
    )
    if any(s.startswith("AWG") for s in sources):
        await scpi.set(f"SOUR{cache['scope.awg_channel']}:TRig:INT")
    fills = [(HALF + max(delays[k], -HALF)) * decimations[k] / F_CLOCK for k in (0, 1)]
    deadline = time.monotonic() + timeout + max(fills)
    poll = min(max(min(fills) / 4, 5e-4), 0.02)
    try:
        for n in (1, 2):
            await wait_until(
                controller,
                f"ACQ:TRig:STAT:CH{n}?",
                "TD",
                deadline,
                poll,
                controller.no_trigger(sources[n - 1], timeout, f"IN{n}"),
            )
        for n in (1, 2):
            await wait_until(
                controller,
                f"ACQ:TRig:FILL:CH{n}?",
                "1",
                deadline,
                poll,
                f"{controller.label}: IN{n} triggered, but its buffer did not fill "
                f"within {fills[n - 1] + timeout:g} s",
            )
    except BaseException:
        await controller.disarm(chain("ACQ:STOP:CH1", "ACQ:STOP:CH2"))
        raise
    read_timeout = max(controller.link_timeout(), 2.0)
    ch1, units = await scpi.trace(1, read_timeout)
    ch2, _ = await scpi.trace(2, read_timeout)
    controller.sequence += 1
    return Trace(
        ch1,
        ch2,
        decimations[0],
        delays[0],
        units,
        sources[0],
        controller.sequence,
        mode=ScopeMode.SPLIT,
        ch2_decimation=decimations[1],
        ch2_delay=delays[1],
        ch2_trigger=sources[1],
    )


async def leave_split(controller: RedPitayaController) -> None:
    """Back to one trigger for both inputs, IN2 at the common level again."""
    scpi = controller.scpi
    await scpi.set("ACQ:SPLIT:TRig OFF")
    level = float(await scpi.query("ACQ:TRig:LEV?"))
    await scpi.set(f"ACQ:TRig:LEV {level!r}")
    controller.split_active = False


async def deep_region(controller: RedPitayaController) -> tuple[int, int]:
    """The RAM region reserved for deep memory: start address and bytes."""
    if controller.deep_region is None:
        reply = await controller.scpi.query(chain("ACQ:AXI:START?", "ACQ:AXI:SIZE?"))
        start, size = (int(x) for x in reply.split(";"))
        controller.deep_region = (start, size)
    return controller.deep_region


async def deep_limit(controller: RedPitayaController) -> int:
    """The most samples per input DEEP mode can take on this board."""
    _, size = await deep_region(controller)
    return (size // 2 // DEEP_SAMPLE_BYTES) // 8 * 8


async def acquire_deep(controller: RedPitayaController) -> Trace:
    """One deep-memory acquisition of both inputs, `scope.deep_samples` each."""
    scpi = controller.scpi
    cache = controller.cache
    samples = int(cache["scope.deep_samples"])
    start, size = await deep_region(controller)
    limit = await deep_limit(controller)
    if samples > limit:
        raise ValueError(
            f"{controller.label}: scope.deep_samples={samples}, but the board "
            f"reserves {size} bytes for deep memory (ACQ:AXI:SIZE?): at most "
            f"{limit} samples per input"
        )
    decimation, delay = (
        int(float(x))
        for x in (await scpi.query(chain("ACQ:DEC?", "ACQ:TRig:DLY?"))).split(";")
    )
    pre = samples // 2 - delay
    if not 0 <= pre <= samples:
        raise ValueError(
            f"{controller.label}: scope.trigger_delay={delay} is outside "
            f"+-{samples // 2} samples of a {samples}-sample deep trace"
        )
    post = samples - pre
    source = TriggerSource(cache["scope.trigger_source"])
    timeout = float(cache["scope.timeout"])
    dt = decimation / F_CLOCK
    half = size // 2
    buffers = ((1, start), (2, start + half))
    await scpi.set(
        chain(
            "ACQ:AXI:DATA:Units VOLTS",
            f"ACQ:AXI:DEC {decimation}",
            *(
                command
                for n, address in buffers
                for command in (
                    f"ACQ:AXI:SOUR{n}:Trig:Dly {post}",
                    f"ACQ:AXI:SOUR{n}:SET:Buffer {address},"
                    f"{samples * DEEP_SAMPLE_BYTES}",
                    f"ACQ:AXI:SOUR{n}:ENable ON",
                )
            ),
        )
    )
    try:
        await scpi.set("ACQ:START")
        if pre and not source.startswith("AWG"):
            await asyncio.sleep(pre * dt)  # the pre-trigger history
        await scpi.set(f"ACQ:TRig {source.value}")
        if source.startswith("AWG"):
            await scpi.set(f"SOUR{cache['scope.awg_channel']}:TRig:INT")
        fill = post * dt
        deadline = time.monotonic() + timeout + fill
        poll = min(max(fill / 4, 5e-4), 0.05)
        try:
            await wait_until(
                controller,
                "ACQ:TRig:STAT?",
                "TD",
                deadline,
                poll,
                controller.no_trigger(source, timeout),
            )
            if fill > 2 * poll:
                await asyncio.sleep(fill * 0.9)
            for n in (1, 2):
                await wait_until(
                    controller,
                    f"ACQ:AXI:SOUR{n}:Trig:Fill?",
                    "1",
                    deadline,
                    poll,
                    f"{controller.label}: triggered, but IN{n}'s deep-memory buffer "
                    f"did not fill within {fill + timeout:g} s",
                )
        except BaseException:
            await controller.disarm("ACQ:STOP")
            raise
        await scpi.set("ACQ:STOP")
        positions = [
            int(x)
            for x in (
                await scpi.query(
                    chain("ACQ:AXI:SOUR1:Trig:Pos?", "ACQ:AXI:SOUR2:Trig:Pos?")
                )
            ).split(";")
        ]
        # 4 bytes a sample in VOLTS. The board copies and converts the whole
        # window before the block's first byte (its header carries the
        # length), so the wait grows with the window: allow 0.5 MB/s, plus
        # 5 s for a busy board (9 s for the largest, 512 Ki samples)
        read_timeout = max(controller.link_timeout(), 5.0 + samples * 4 / 0.5e6)
        data = [
            (
                await scpi.deep_trace(
                    n, (positions[n - 1] - pre) % samples, samples, read_timeout
                )
            )[0]
            for n in (1, 2)
        ]
    finally:
        await controller.disarm(
            chain("ACQ:AXI:SOUR1:ENable OFF", "ACQ:AXI:SOUR2:ENable OFF")
        )
    controller.sequence += 1
    return Trace(
        data[0],
        data[1],
        decimation,
        delay,
        trigger=source,
        sequence=controller.sequence,
        mode=ScopeMode.DEEP,
    )
