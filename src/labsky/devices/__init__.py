"""Device classes: ophyd-async devices, their drivers, and the kinds that build them.

What a kind is lives in `labsky.kinds`; the packages that ship kinds are
listed in `labsky.devices.registry`.
"""
