"""Every error class labsky defines derives from `LabskyError`."""

import importlib
import pkgutil

import labsky
from labsky.errors import LabskyError


def labsky_modules():
    for info in pkgutil.walk_packages(labsky.__path__, "labsky."):
        if info.name in ("labsky.__main__", "labsky.daemon.startup"):
            continue  # scripts: the CLI, the queue server's session start-up
        yield importlib.import_module(info.name)


def test_every_labsky_error_is_a_labsky_error():
    errors = {
        f"{module.__name__}.{name}": value
        for module in labsky_modules()
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    }
    assert len(errors) > 30  # the walk found them (config, transports, pipeline...)
    outside = sorted(
        name for name, cls in errors.items() if not issubclass(cls, LabskyError)
    )
    assert outside == []


def test_a_labsky_error_is_still_the_builtin_error_it_refines():
    from labsky.config import ConfigError
    from labsky.transports.errors import InstrumentTimeoutError

    error = InstrumentTimeoutError("meter: no reply within 1 s")
    assert isinstance(error, LabskyError) and isinstance(error, TimeoutError)
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, LabskyError)
