"""The peripheral-bus and LCR commands, answered as a board without them.

The stock server registers UART, SPI, I2C and CAN commands and those of the
LCR meter extension. The simulated board has nothing on those buses and no
LCR module: every such command is known (never `-113`) and fails as the API
fails for hardware that is not there, except the two status queries a
client asks first (`LCR:EXT:MODULE?` says `0`, `CAN:FPGA?` says `OFF`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labsky.sim.redpitaya.scpi import ScpiError, not_supported

Add = Callable[[str, Callable[..., Any]], None]

# fmt: off
UART_PATTERNS = (
    "UART:INIT",
    "UART:RELEASE",
    "UART:SETUP",
    "UART:BITS",
    "UART:BITS?",
    "UART:SPEED",
    "UART:SPEED?",
    "UART:STOPB",
    "UART:STOPB?",
    "UART:PARITY",
    "UART:PARITY?",
    "UART:TIMEOUT",
    "UART:TIMEOUT?",
    "UART:WRITE#",
    "UART:READ#?",
)

SPI_PATTERNS = (
    "SPI:INIT",
    "SPI:INIT:DEV",
    "SPI:RELEASE",
    "SPI:SETtings:DEFault",
    "SPI:SETtings:SET",
    "SPI:SETtings:GET",
    "SPI:SETtings:MODE",
    "SPI:SETtings:MODE?",
    "SPI:SETtings:CSMODE",
    "SPI:SETtings:CSMODE?",
    "SPI:SETtings:SPEED",
    "SPI:SETtings:SPEED?",
    "SPI:SETtings:WORD",
    "SPI:SETtings:WORD?",
    "SPI:MSG:CREATE",
    "SPI:MSG:DEL",
    "SPI:MSG:SIZE?",
    "SPI:MSG#:TX#",
    "SPI:MSG#:TX#:RX",
    "SPI:MSG#:RX#",
    "SPI:MSG#:TX#:CS",
    "SPI:MSG#:TX#:RX:CS",
    "SPI:MSG#:RX#:CS",
    "SPI:MSG#:RX?",
    "SPI:MSG#:TX?",
    "SPI:MSG#:CS?",
    "SPI:PASS",
)

I2C_PATTERNS = (
    "I2C:DEV#",
    "I2C:DEV?",
    "I2C:FMODE",
    "I2C:FMODE?",
    "I2C:Smbus:Read#?",
    "I2C:Smbus:Read#:Word?",
    "I2C:Smbus:Read#:Buffer#?",
    "I2C:IOctl:Read:Buffer#?",
    "I2C:Smbus:Write#",
    "I2C:Smbus:Write#:Word",
    "I2C:Smbus:Write#:Buffer#",
    "I2C:IOctl:Write:Buffer#",
)

CAN_PATTERNS = (
    "CAN:FPGA",
    "CAN:FPGA?",
    "CAN#:START",
    "CAN#:STOP",
    "CAN#:RESTART",
    "CAN#:STATE?",
    "CAN#:BITRate",
    "CAN#:BITRate:SP",
    "CAN#:BITRate:SP?",
    "CAN#:BITTiming",
    "CAN#:BITTiming?",
    "CAN#:BITTiming:Limits?",
    "CAN#:CLOCK?",
    "CAN#:BUS:ERROR?",
    "CAN#:Restart:Time",
    "CAN#:Restart:Time?",
    "CAN#:MODE",
    "CAN#:MODE?",
    "CAN#:OPEN",
    "CAN#:CLOSE",
    "CAN#:Send#",
    "CAN#:Send#:Timeout#",
    "CAN#:Send#:Ext",
    "CAN#:Send#:Timeout#:Ext",
    "CAN#:Send#:RTR",
    "CAN#:Send#:Timeout#:RTR",
    "CAN#:Send#:Ext:RTR",
    "CAN#:Send#:Timeout#:Ext:RTR",
    "CAN#:Read?",
    "CAN#:Read:Timeout#?",
    "CAN#:Filter:Add",
    "CAN#:Filter:Remove",
    "CAN#:Filter:Clear",
    "CAN#:Filter:Set",
    "CAN#:SHOW:ERROR",
)

LCR_PATTERNS = (
    "LCR:START",
    "LCR:START:GEN",
    "LCR:STOP",
    "LCR:RESET",
    "LCR:MEASURE?",
    "LCR:FREQ",
    "LCR:FREQ?",
    "LCR:VOLT",
    "LCR:VOLT?",
    "LCR:VOLT:OFFS",
    "LCR:VOLT:OFFS?",
    "LCR:SHUNT",
    "LCR:SHUNT?",
    "LCR:SHUNT:CUSTOM",
    "LCR:SHUNT:CUSTOM?",
    "LCR:SHUNT:MODE",
    "LCR:SHUNT:MODE?",
    "LCR:SHUNT:AUTO",
    "LCR:CIRCUIT",
    "LCR:CIRCUIT?",
    "LCR:EXT:MODULE?",
)
# fmt: on

#: RP_EMNC: what the LCR commands answer without the extension module.
LCR_MISSING = 23


def _refuse(family: str) -> Callable[..., Any]:
    def handler(s: object, n: int, params: list[str], header: str) -> None:
        if family == "LCR":
            raise ScpiError(
                9500 + LCR_MISSING,
                f"*{header} Failed to use the LCR meter: Extension module not "
                "connected",
            )
        raise not_supported(header, f"use {family} (nothing on the bus)")

    return handler


def register(add: Add, family: str) -> None:
    """Register one family's patterns (in the vendor's order)."""
    patterns = {
        "UART": UART_PATTERNS,
        "SPI": SPI_PATTERNS,
        "I2C": I2C_PATTERNS,
        "CAN": CAN_PATTERNS,
        "LCR": LCR_PATTERNS,
    }[family]
    for pattern in patterns:
        if pattern == "LCR:EXT:MODULE?":
            add(pattern, lambda *_: "0")
        elif pattern == "CAN:FPGA?":
            add(pattern, lambda *_: "OFF")
        else:
            add(pattern, _refuse(family))
