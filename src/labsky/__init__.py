"""labsky: data acquisition and experiment orchestration for optics labs."""

__version__ = "0.1.0"
