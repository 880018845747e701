"""Reply parsers with malformed input: a value or a ReplyError, nothing else."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labsky.devices.declarative import SignalTable, parse_reply
from labsky.devices.elliptec import parse_info
from labsky.devices.elliptec._bus import decode_pulses, encode_pulses
from labsky.devices.newport import MeterState, parse_reading
from labsky.devices.newport._esp300 import parse_error, parse_motion_done, parse_number
from labsky.devices.spectra_physics import parse_quantity, parse_status
from labsky.transports import InstrumentRefusedError, ReplyError

ANY_TEXT = st.text(max_size=60) | st.binary(max_size=60).map(
    lambda b: b.decode("latin-1")
)
SPECS = [
    SignalTable(type="float", query="X?"),
    SignalTable(type="int", query="X?", parse={"scale": 2}),
    SignalTable(type="bool", query="X?"),
    SignalTable(type="enum", query="X?", choices={"slow": "1", "fast": "3"}),
    SignalTable(
        type="float",
        query="X?",
        parse={"regex": r"^V=(?P<value>\S+)$", "states": {"OVER": None}},
    ),
]


def only_reply_errors(function, *args):
    try:
        return function(*args)
    except ReplyError:
        return None


@given(ANY_TEXT)
def test_instrument_parsers_never_fail_otherwise(text):
    only_reply_errors(parse_info, text)
    only_reply_errors(decode_pulses, text)
    only_reply_errors(parse_number, text, "x")
    only_reply_errors(parse_motion_done, text, "x")
    only_reply_errors(parse_error, text)
    only_reply_errors(parse_quantity, text, "nm")
    only_reply_errors(parse_quantity, text, "W")
    only_reply_errors(parse_status, text)
    try:
        parse_reading(text)
    except (ReplyError, InstrumentRefusedError):
        pass


@given(ANY_TEXT, st.sampled_from(SPECS))
def test_declarative_parsing_never_fails_otherwise(text, spec):
    value = only_reply_errors(parse_reply, text, spec)
    if value is not None and spec.type == "float":
        assert isinstance(value, float)


@given(st.integers(-(2**31), 2**31 - 1))
def test_positions_round_trip_through_twos_complement_hex(pulses):
    assert decode_pulses(encode_pulses(pulses)) == pulses


@given(st.floats(1e-12, 10, allow_nan=False))
def test_meter_readings_in_the_formats_the_meter_sends(value):
    from labsky.sim.newport1830c import format_reading

    reading, state = parse_reading(format_reading(value))
    assert state is MeterState.OK
    assert reading == pytest.approx(value, rel=1e-3)


def test_known_replies():
    info = parse_info("0E1140050020231701016800023000")
    assert (info.model, info.serial, info.travel, info.pulses) == (
        "0E",
        "11400500",
        360,
        143360,
    )
    assert parse_reading("+.75E-9") == (pytest.approx(0.75e-9), MeterState.OK)
    assert (
        math.isnan(parse_reading("SAT")[0])
        and parse_reading("SAT")[1] is MeterState.SATURATED
    )
    assert parse_quantity("250mW", "W") == pytest.approx(0.25)
    assert parse_quantity("820nm", "nm") == 820
    assert parse_error("0, 12, NO ERROR DETECTED") == (0, "NO ERROR DETECTED")
    assert parse_motion_done("1", "x") is True
    assert parse_reply("V=1.5", SPECS[4]) == 1.5 and math.isnan(
        parse_reply("OVER", SPECS[4])
    )
    assert parse_reply("3", SPECS[3]) == "fast" and parse_reply("ON", SPECS[2]) is True
    with pytest.raises(ReplyError):
        parse_quantity("820W", "nm")
