"""A simulated Red Pitaya STEMlab 125-14 speaking the stock SCPI protocol.

`RedPitayaSim` serves the board's SCPI command set over TCP (`server`), on
top of its state and commands (`board`), the acquisition buffer and trigger
(`acquisition`), its two generators (`waveforms`) and what is cabled to it
(`bench`): a resonator between OUT1 and IN1, an optical cavity driven from
OUT2 whose transmission reaches IN2 and AIN0.
"""

from labsky.sim.redpitaya.bench import (
    BenchParams,
    CavityParams,
    InputParams,
    ResonatorParams,
)
from labsky.sim.redpitaya.board import Board, Session, fill_seconds
from labsky.sim.redpitaya.server import RedPitayaSim, RedPitayaSimParams

__all__ = [
    "BenchParams",
    "Board",
    "CavityParams",
    "InputParams",
    "RedPitayaSim",
    "RedPitayaSimParams",
    "ResonatorParams",
    "Session",
    "fill_seconds",
]
