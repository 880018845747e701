"""Instrument errors name the device and quote at most an excerpt of a reply.

The instruments here are scripted TCP servers on the RunEngine's loop, so a
reply can be anything a broken instrument might send (a 100 kB line where a
number belongs), over the same links the drivers use in the lab.
"""

import asyncio
from collections.abc import Callable

import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call

from labsky.devices.elliptec import Ell14, ElliptecBus
from labsky.devices.newport import Esp300
from labsky.devices.redpitaya import RedPitayaParams, redpitaya
from labsky.transports import ReplyError
from labsky.transports.errors import MAX_MESSAGE, InstrumentError, excerpt

HUGE = "1.0," * 25_000  # 100 kB, as an ASCII trace is


class ScriptedInstrument:
    """Answers each command line from a script; queries it does not know get "0".

    Args:
        answers: Command -> reply, or a callable returning the next reply.
        unterminated: Commands come without a terminator (Elliptec): each
            read is one command, answered by the key it starts with.
    """

    def __init__(
        self, answers: dict[str, str | Callable[[], str]], unterminated: bool = False
    ):
        self.answers = answers
        self.unterminated = unterminated
        self.heard: list[str] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def _answer(self, command: str) -> str | Callable[[], str] | None:
        if self.unterminated:
            return next((a for k, a in self.answers.items() if command.startswith(k)))
        return self.answers.get(command, "0" if "?" in command else None)

    async def _serve(self, reader, writer) -> None:
        read = (lambda: reader.read(256)) if self.unterminated else reader.readline
        while line := await read():
            command = line.decode().strip()
            self.heard.append(command)
            answer = self._answer(command)
            if callable(answer):
                answer = answer()
            if answer is not None:
                writer.write(answer.encode() + b"\r\n")
                await writer.drain()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def instrument(run_engine):
    made = []

    def make(answers, **options):
        fake = ScriptedInstrument(answers, **options)
        port = call(fake.start())
        made.append(fake)
        return fake, port

    yield make
    for fake in made:
        run_engine.loop.call_soon_threadsafe(fake.close)


async def put(signal, value) -> None:
    await signal.set(value)


def replies(*texts: str) -> Callable[[], str]:
    """The replies in turn, then the last one again."""
    queue = list(texts)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def assert_names_and_is_short(exc: BaseException, device: str) -> None:
    message = str(exc)
    assert message.startswith(f"{device}"), message[:200]
    assert len(message) <= MAX_MESSAGE, len(message)


@pytest.mark.parametrize("bad", ["what?", "X" * 100_000], ids=["short", "100 kB"])
def test_esp300_error_buffer_replies_that_do_not_parse_name_the_stage(
    instrument, connect_devices, bad
):
    fake, port = instrument(
        {
            "VE?": "ESP300 Version 3.08 09/09/02",
            "TB?": replies("0, 0, NO ERROR DETECTED", bad),
        }
    )
    stage = Esp300(f"socket://127.0.0.1:{port}", {"x": 1}, name="stage")
    connect_devices(stage)
    with pytest.raises(ReplyError, match="TB\\? answers") as info:
        call(put(stage.x.velocity, 5.0))
    assert "1VA5.000000" in fake.heard
    assert_names_and_is_short(info.value, "stage")


def test_an_ell14_move_answered_with_a_bad_position_names_the_mount(
    instrument, connect_devices
):
    info = "0E11400501202317010168" + f"{262144:08X}"  # as the mount answers `in`
    _, port = instrument(
        {"2in": f"2IN{info}", "2gp": "2PO00000000", "2ma": "2PO12"},
        unterminated=True,
    )
    rotator = Ell14(ElliptecBus(f"socket://127.0.0.1:{port}"), "2", name="rotator")
    connect_devices(rotator)
    with pytest.raises(ReplyError, match="a position is 8 hex digits") as info:
        call(rotator.rotate("ma", 10.0, timeout=2.0))
    assert_names_and_is_short(info.value, "rotator")


def red_pitaya_script(**answers: str) -> dict[str, str]:
    return {
        "*IDN?": "REDPITAYA,INSTR2020,0,01-02",
        "ACQ:DATA:FORMAT BIN;*STB?": "0",
        "ACQ:DATA:BYTE:ORDER BEND;*STB?": "0",
        **answers,
    }


def test_red_pitaya_setting_replies_that_do_not_parse_name_the_board(
    instrument, connect_devices
):
    fake, port = instrument(red_pitaya_script(**{"SOUR1:FREQ:FIX?": HUGE}))
    rp = redpitaya(RedPitayaParams(address=f"tcp://127.0.0.1:{port}"))
    rp.set_name("rp")
    connect_devices(rp)
    with pytest.raises(ReplyError, match="asg1.frequency") as info:
        call(rp.asg1.frequency.value.get_value())
    assert_names_and_is_short(info.value, "rp")
    assert "characters cut" in str(info.value) or "..." in str(info.value)


def test_red_pitaya_settings_it_cannot_write_name_the_board(
    instrument, connect_devices
):
    _, port = instrument(red_pitaya_script())
    rp = redpitaya(RedPitayaParams(address=f"tcp://127.0.0.1:{port}"))
    rp.set_name("rp")
    connect_devices(rp)
    with pytest.raises(ValueError, match="not a finite number") as info:
        call(put(rp.asg1.offset, float("nan")))
    assert str(info.value).startswith("rp")


def test_a_long_message_keeps_the_device_and_the_advice():
    exc = ReplyError("meter: D? answered " + HUGE + "; check the baud rate")
    text = str(exc)
    assert len(text) <= MAX_MESSAGE
    assert text.startswith("meter: D? answered 1.0,1.0")
    assert text.endswith("; check the baud rate")
    assert isinstance(exc, InstrumentError) and exc.args == (text,)


def test_excerpts_of_replies():
    assert excerpt("OK") == "'OK'"
    assert excerpt(b"\x00\xff") == "b'\\x00\\xff'"
    assert excerpt("x" * 1000, 10) == "'xxxxxxxxxx'... (1000 characters)"
    assert excerpt(b"y" * 1000, 4) == "b'yyyy'... (1000 bytes)"
