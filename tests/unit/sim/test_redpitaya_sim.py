"""The Red Pitaya simulator at the wire, against the stock SCPI server's table.

Raw sockets, as a client of the real board would use them (reference
redpitaya.md §3): CRLF framing, `;` chains, silent sets, the error queue,
number formats, global units and per-connection formats, acquisition timing.
"""

import socket
import threading
import time

import numpy as np
import pytest

from labsky.sim.redpitaya.board import IDN


class Client:
    """A raw SCPI socket: what a real client of port 5000 does."""

    def __init__(self, endpoint: str):
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=2.0)
        self.buffer = b""

    def send(self, text: str, end: str = "\r\n") -> None:
        self.sock.sendall((text + end).encode())

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

    def query(self, text: str) -> str | None:
        self.send(text)
        return self.line()

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self.sock.recv(1 << 20)
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def block(self, text: str) -> bytes:
        self.send(text)
        head = self.exactly(2)
        assert head[:1] == b"#"
        length = int(self.exactly(int(head[1:2])))
        data = self.exactly(length)
        assert self.exactly(2) == b"\r\n"
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def board(simulated_lab):
    host = simulated_lab({"rp": {"kind": "redpitaya"}})
    clients: list[Client] = []

    def connect() -> Client:
        client = Client(host.endpoints["rp"])
        clients.append(client)
        return client

    connect.host = host  # type: ignore[attr-defined]
    yield connect
    for client in clients:
        client.close()


def test_identity_silent_sets_chains_and_crlf_framing(board):
    rp = board()
    assert rp.query("*IDN?") == IDN
    rp.send("SOUR1:FREQ:FIX 1250000")  # a set: no reply
    assert rp.line(timeout=0.3) is None
    assert rp.query("sour1:freq:fix?;:SOUR1:FREQ:FIX?") == "1.25e+06;1.25e+06"
    rp.send("*IDN?", end="\n")  # LF alone never executes
    assert rp.line(timeout=0.3) is None
    rp.send("")  # the CRLF completes it (with the stray LF in the header)
    rp.line(timeout=0.5)
    assert rp.query("ACQ:DEC 64;:ACQ:SRATe?") == "  1953125 Hz"


def test_a_header_after_a_semicolon_is_relative_to_the_previous_path(board):
    rp = board()
    # SCPI compound headers, as the vendor's parser composes them
    assert rp.query("SOUR1:FREQ:FIX 2000;FIX?") == "2000"  # SOUR1:FREQ:FIX?
    rp.send("SOUR1:FREQ:FIX 1000;VOLT 0.5")  # SOUR1:FREQ:VOLT: no such header
    assert rp.query("SYST:ERR?") == '-113,"Undefined header"'
    rp.send("ACQ:DEC 8;ACQ:AVG OFF")  # ACQ:ACQ:AVG: absolute needs a colon
    assert rp.query("SYST:ERR?") == '-113,"Undefined header"'
    assert rp.query(
        "ACQ:DEC 16;:ACQ:AVG OFF;*OPC?;AVG?;:SOUR1:VOLT 0.2;VOLT:OFFS?"
    ) == ("1;OFF;0")  # a common command leaves the path where it was


def test_errors_queue_with_codes_and_failing_queries_stay_silent(board):
    rp = board()
    assert rp.query("*STB?") == "0"
    rp.send("ACQ:BOGUS?")  # unknown header: a failing query sends nothing
    assert rp.line(timeout=0.3) is None
    rp.send("SOUR1:VOLT 2")  # out of range for the DAC
    assert int(rp.query("*STB?") or 0) & 4
    # Red Pitaya errors come first, then the parser's
    assert rp.query("SYST:ERR?") == (
        '9506,"*SOUR1:VOLT Failed to set amplitude: Value out of range."'
    )
    assert rp.query("SYST:ERR?") == '-113,"Undefined header"'
    assert rp.query("SYST:ERR?") == '0,"No error"'
    rp.send("ACQ:DEC 3")  # not a power of two
    rp.send("SOUR1:VOLT 0.6;:SOUR1:VOLT:OFFS 0.6")  # |amp| + |offs| > 1 V
    assert rp.query("SYST:ERR:COUN?") == "2"
    rp.send("*CLS")
    assert rp.query("SYST:ERR?") == '0,"No error"'
    rp.send("RP:RET_ON_ERROR ON")  # came with OS 2.07-43: unknown on 2.05
    assert rp.query("SYST:ERR?") == '-113,"Undefined header"'
    rp.send("SOUR1:VOLT")  # a missing value: the server's entry and the parser's
    assert rp.query("SYST:ERR?") == '8891,"*SOUR1:VOLT Missing first parameter."'
    assert rp.query("SYST:ERR?") == '-109,"Missing parameter"'


def test_units_are_global_but_the_format_per_connection(board):
    a, b = board(), board()
    a.send("ACQ:DATA:FORMAT BIN")
    assert b.query("ACQ:DATA:FORMAT?") == "ASCII"
    a.send("ACQ:DATA:Units RAW")
    assert b.query("ACQ:DATA:Units?") == "RAW"  # one variable for everyone
    a.send("ACQ:START;:ACQ:TRig NOW")
    assert a.query("ACQ:TRig:STAT?") == "TD"
    raw = np.frombuffer(a.block("ACQ:SOUR1:DATA?"), ">i2")
    text = b.query("ACQ:SOUR1:DATA?")
    assert raw.shape == (16384,)
    assert text is not None and text.startswith("{") and text.endswith("}")
    assert all(v.lstrip("-").isdigit() for v in text[1:-1].split(",")[:100])
    b.send("ACQ:DATA:Units VOLTS")
    volts = b.query("ACQ:SOUR1:DATA?")
    assert volts is not None and volts.startswith("{") and volts.endswith("}")
    ascii_values = np.array(volts[1:-1].split(","), float)  # %g, as the parser
    binary = np.frombuffer(a.block("ACQ:SOUR1:DATA?"), ">f4")  # big-endian only
    np.testing.assert_allclose(ascii_values, binary, rtol=1e-5, atol=1e-9)
    a.send("ACQ:DATA:BYTE:ORDER LEND")  # came with OS 2.07-43
    assert a.query("SYST:ERR?") == '-113,"Undefined header"'


def test_acq_rst_restores_the_defaults_the_reference_lists(board):
    rp = board()
    rp.send("ACQ:DEC 8;:ACQ:TRig:LEV 0.3;:ACQ:TRig:DLY 100;:ACQ:AVG OFF")
    rp.send("ACQ:DATA:Units RAW;:ACQ:DATA:FORMAT BIN;:ACQ:SOUR1:GAIN HV")
    rp.send("ACQ:RST")
    assert (
        rp.query(
            "ACQ:DEC?;:ACQ:AVG?;:ACQ:TRig:LEV?;:ACQ:TRig:DLY?;:ACQ:TRig:HYST?;"
            ":ACQ:SOUR1:GAIN?;:ACQ:DATA:Units?;:ACQ:DATA:FORMAT?;:ACQ:TRig:STAT?"
        )
        == "1;ON;0;0;0.005;LV;VOLTS;ASCII;TD"
    )


def test_trigger_state_and_buffer_fill_take_simulated_real_time(board):
    rp = board()
    rp.send("ACQ:DEC 1024;:ACQ:START")
    rp.send("ACQ:TRig CH1_PE")  # nothing on IN1: it waits
    assert rp.query("ACQ:TRig:STAT?") == "WAIT"
    rp.send("ACQ:TRig NOW")
    start = time.monotonic()
    assert rp.query("ACQ:TRig:STAT?") == "TD"
    # the post-trigger half: 8192 samples x 1024 x 8 ns = 67 ms. Bounded from
    # both sides whatever the load: the last query answered "0" was sent
    # before the buffer filled, the first answered "1" came back after
    last_empty = start
    while True:
        asked = time.monotonic()
        if rp.query("ACQ:TRig:FILL?") == "1":
            full = time.monotonic()
            break
        last_empty = asked
        assert asked - start < 2
    assert last_empty - start < 0.067 + 0.01
    assert full - start > 0.067 - 0.01


def test_generator_starts_on_its_trigger_and_the_edge_sits_at_8192(board):
    rp = board()
    rp.send("ACQ:DATA:FORMAT BIN")
    rp.send("SOUR1:FUNC SINE;:SOUR1:FREQ:FIX 1500000;:SOUR1:VOLT 0.5;:OUTPUT1:STATE ON")

    def trace(trigger: str) -> np.ndarray:
        rp.send(f"ACQ:START;:ACQ:TRig {trigger}")
        for _ in range(200):
            if rp.query("ACQ:TRig:STAT?") == "TD" and rp.query("ACQ:TRig:FILL?") == "1":
                break
            time.sleep(0.005)
        return np.frombuffer(rp.block("ACQ:SOUR1:DATA?"), ">f4")

    idle = trace("NOW")
    assert np.std(idle) < 0.01  # enabled, not started: no signal yet
    rp.send("SOUR1:TRig:INT")
    time.sleep(0.01)
    rp.send("ACQ:TRig:LEV 0")
    running = trace("CH1_PE")
    # on resonance: the full 0.5 V through the 1.5 MHz resonator
    assert np.std(running) * np.sqrt(2) == pytest.approx(0.5, rel=0.05)
    assert running[8191] < running[8193]  # rising through the level...
    assert abs(running[8192]) < 0.12  # ...at the trigger sample


def test_slow_io_loops_aout0_to_ain1_and_refuses_writing_an_input_pin(board):
    rp = board()
    rp.send("ANALOG:PIN AOUT0,1.2")
    assert float(rp.query("ANALOG:PIN? AIN1") or "nan") == pytest.approx(1.2, abs=0.02)
    rp.send("DIG:PIN DIO1_P,1")  # an input: refused
    assert rp.query(
        "SYST:ERR?",
    ).startswith("9511,")  # type: ignore[union-attr]
    rp.send("DIG:PIN:DIR OUT,DIO1_P;:DIG:PIN DIO1_P,1")
    assert rp.query("DIG:PIN? DIO1_P;:DIG:PIN:DIR? DIO1_P") == "1;OUT"
    assert rp.query("LED:MMC?") == "ON"


def test_several_clients_at_once_each_get_their_own_replies(board):
    clients = [board() for _ in range(4)]
    wrong: list[str] = []

    def talk(k: int, rp: Client) -> None:
        rp.send(f"SOUR{k % 2 + 1}:PHAS {k}")
        for _ in range(50):
            if rp.query("*IDN?") != IDN or rp.query("ACQ:BUF:SIZE?") != "16384":
                wrong.append(f"client {k}")

    threads = [
        threading.Thread(target=talk, args=(k, c)) for k, c in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_a_disconnect_fault_drops_clients_and_listens_again(board):
    rp = board()
    assert rp.query("*IDN?") == IDN
    board.host.set_fault("rp", "disconnect")
    assert rp.sock.recv(10) == b""  # closed by the board (recv waits for it)
    board.host.set_fault("rp", "none")  # returns once it listens again
    assert board().query("*IDN?") == IDN
