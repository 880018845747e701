"""Device classes and the closed registry of device kinds."""

from labsky.devices.registry import DeviceKind, NoParams, device_kinds

__all__ = ["DeviceKind", "NoParams", "device_kinds"]
