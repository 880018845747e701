"""The PVCAM camera models labsky knows: their sensors and readout ports.

Figures from the Prime BSI and Kinetix datasheets (readout ports with their
bit depth, line time, gains in electrons per ADU and read noise). The `model`
parameter of a `pvcam` declaration names one of them; the simulated camera
(`labsky.sim.camera`) behaves as the model it is given, with the serial
number shown here.
"""

from labsky.devices.pvcam._backend import CameraInfo, ReadoutPort

MODELS = {
    "prime_bsi": CameraInfo(
        model="Prime BSI",
        serial="A19D203001",
        sensor=(2048, 2048),
        pixel_size=6.5,
        ports={
            "Sensitivity": ReadoutPort(
                "Sensitivity", 12, 5.1e-6, {1: 11.0, 2: 2.4}, 1.1
            ),
            "Dynamic Range": ReadoutPort("Dynamic Range", 16, 11.3e-6, {1: 0.7}, 1.6),
        },
        exposure_range=(1e-6, 10.0),
    ),
    "kinetix": CameraInfo(
        model="Kinetix",
        serial="A22K104008",
        sensor=(3200, 3200),
        pixel_size=6.5,
        ports={
            "Speed": ReadoutPort("Speed", 8, 0.625e-6, {1: 45.0}, 2.0),
            "Sensitivity": ReadoutPort("Sensitivity", 12, 3.5e-6, {1: 2.5}, 1.2),
            "Dynamic Range": ReadoutPort("Dynamic Range", 16, 3.5e-6, {1: 0.25}, 1.6),
            "Sub-Electron": ReadoutPort("Sub-Electron", 16, 7.0e-6, {1: 0.25}, 0.7),
        },
        exposure_range=(2e-6, 10.0),
    ),
}
