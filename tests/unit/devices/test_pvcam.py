"""The PVCAM detector with the simulated camera: triggers, files, drops, errors."""

import re
import threading
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import h5py
import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop as call
from bluesky.utils import FailedStatus
from ophyd_async.core import (
    DetectorTrigger,
    StaticPathProvider,
    TriggerInfo,
    UUIDFilenameProvider,
)

from labsky.devices.pulse_generator import SimPulseGenerator
from labsky.devices.pvcam import (
    CameraParameterError,
    CameraUnavailableError,
    PvcamDetector,
    PyVcamBackend,
    TriggerMode,
)
from labsky.devices.pvcam._frames import FrameWriter
from labsky.plans import fly_frames
from labsky.sim.camera import SimCamera
from labsky.sim.world import World, WorldParams


def cause(exc):
    while isinstance(exc, FailedStatus) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@pytest.fixture
def world():
    return World(WorldParams(laser={"emission": True, "shutter_open": True}))


@pytest.fixture
def camera(world, tmp_path, run_engine, connect_devices):
    def make(**options):
        backend = SimCamera(options.pop("model", "prime_bsi"), world=world)
        detector = PvcamDetector(
            backend,
            StaticPathProvider(UUIDFilenameProvider(), tmp_path),
            name="cam",
            **options,
        )
        connect_devices(detector)
        return detector

    return make


def frame_file(documents):
    resource = next(
        d for d in documents.of("stream_resource") if d["data_key"] == "cam"
    )
    return resource["uri"].removeprefix("file://localhost")


def test_frames_on_disk_are_the_frames_the_camera_made(
    camera, run_engine, collect_documents, monkeypatch
):
    cam = camera()
    run_engine(
        bps.mv(cam.roi_width, 512, cam.roi_height, 256, cam.roi_x, 768, cam.roi_y, 896)
    )
    made = []
    render = SimCamera.render

    def keep(self, slot, index, exposure, when):
        render(self, slot, index, exposure, when)
        made.append(slot.copy())

    monkeypatch.setattr(SimCamera, "render", keep)
    result = run_engine(bp.count([cam], num=4), collect_documents)
    assert result.exit_status == "success"
    assert collect_documents.names().count("event") == 4
    (descriptor,) = collect_documents.of("descriptor")
    assert descriptor["data_keys"]["cam"]["shape"] == [1, 256, 512]
    assert descriptor["data_keys"]["cam"]["dtype_numpy"] == "<u2"
    config = descriptor["configuration"]["cam"]["data"]
    assert config["cam-model"] == "Prime BSI" and config["cam-roi_width"] == 512
    assert {"cam-temperature", "cam-frames_dropped", "cam-readout_port"} <= set(config)
    with h5py.File(frame_file(collect_documents), "r") as f:
        frames = f["/entry/data/data"][:]
        numbers = f["/entry/frame_number"][:]
        totals = f["/entry/stats/total"][:]
    np.testing.assert_array_equal(frames, np.stack(made))
    assert numbers.tolist() == sorted(numbers.tolist()) and len(set(numbers)) == 4
    assert (totals > 1e5).all()  # the laser spot is on the sensor


def test_settings_the_camera_cannot_take_are_refused_by_name(camera, run_engine):
    cam = camera()
    for signal, value, message in [
        (cam.exposure, 20.0, "cam.exposure: 20 s is outside 1e-06-10 s on a Prime BSI"),
        (cam.readout_port, "Turbo", "cam.readout_port: 'Turbo' is not a port"),
        (cam.gain, 7, "cam.gain: 7 is not a gain of port 'Sensitivity'"),
    ]:
        with pytest.raises(FailedStatus) as info:
            run_engine(bps.mv(signal, value))
        error = cause(info.value)
        assert isinstance(error, CameraParameterError) and message in str(error), error
    # ROI and binning parts are checked together when an acquisition is prepared
    for signal, value, message in [
        (cam.roi_width, 4096, "cam.roi: (x=0, y=0, width=4096"),
        (cam.binning_x, 3, "cam.binning: (3, 1) is not one of"),
    ]:
        run_engine(bps.mv(signal, value))
        with pytest.raises(Exception, match=re.escape(message)):
            run_engine(bp.count([cam]))
        run_engine(bps.mv(cam.roi_width, 2048, cam.binning_x, 1))
    run_engine(bps.mv(cam.readout_port, "Dynamic Range"))
    assert call(cam.bit_depth.get_value()) == 16


def test_edge_triggered_fly_scan_takes_one_frame_per_pulse(
    camera, world, run_engine, collect_documents
):
    cam = camera()
    pulser = SimPulseGenerator(world, "camera", name="pulser")
    call(pulser.connect())
    run_engine(
        fly_frames(cam, 20, 0.002, trigger_source=pulser, period=0.025, trigger="edge"),
        collect_documents,
    )
    names = collect_documents.names()
    assert "event" not in names and names.count("stream_resource") == 4
    assert max(d["indices"]["stop"] for d in collect_documents.of("stream_datum")) == 20
    with h5py.File(frame_file(collect_documents), "r") as f:
        stamps = f["/entry/timestamp"][:]
        exposures = f["/entry/exposure"][:]
    assert np.median(np.diff(stamps)) == pytest.approx(
        0.025, abs=0.003
    )  # the pulse period
    assert exposures == pytest.approx([0.002] * 20)


def test_level_trigger_exposes_for_the_pulse_width(
    camera, world, run_engine, collect_documents
):
    cam = camera()
    pulser = SimPulseGenerator(world, "camera", name="pulser")
    call(pulser.connect())
    run_engine(
        fly_frames(cam, 5, 0.007, trigger_source=pulser, period=0.03, trigger="level"),
        collect_documents,
    )
    with h5py.File(frame_file(collect_documents), "r") as f:
        assert f["/entry/exposure"][:] == pytest.approx([0.007] * 5)
        totals = f["/entry/stats/total"][:]
    assert np.std(totals) < 0.05 * np.mean(totals)


def test_trigger_first_waits_for_one_edge_then_runs_on_its_own(
    camera, world, run_engine
):
    cam = camera()
    run_engine(bps.mv(cam.start_on_trigger, True))
    threading.Timer(
        0.5, world.trigger_line("camera").schedule, (time.monotonic() + 0.6, 1, 1e-4, 1)
    ).start()
    start = time.monotonic()
    run_engine(fly_frames(cam, 10, 0.001))
    assert time.monotonic() - start >= 0.6
    assert call(cam.trigger_mode.get_value()) == TriggerMode.TRIGGER_FIRST


def test_software_trigger_takes_a_frame_per_call(tmp_path):
    from labsky.devices.pvcam import FrameRing, Settings

    camera = SimCamera("kinetix")
    camera.open()
    camera.apply(
        Settings(
            **{
                **camera.settings.__dict__,
                "trigger_mode": TriggerMode.SOFTWARE_EDGE,
                "readout_port": "Speed",
                "speed": "100 MHz",
            }
        )
    )
    ring = FrameRing(8, camera.frame_shape(), camera.dtype())
    finished = threading.Event()
    camera.arm(3, ring, lambda error: finished.set())
    for taken in range(1, 4):
        camera.software_trigger()
        with ring._cond:  # each frame lands before the next trigger
            assert ring._cond.wait_for(lambda taken=taken: ring.produced == taken, 5)
    assert finished.wait(5) and ring.produced == 3
    assert ring.frames.dtype == np.uint8 and ring.frames.shape[1:] == (3200, 3200)


def test_a_trigger_that_never_comes_fails_at_once_with_the_cameras_reason(
    camera, run_engine
):
    cam = camera()
    cam.driver.backend.frame_timeout = 0.3

    @bpp.run_decorator()
    def armed_but_never_triggered():
        yield from bps.stage(cam, wait=True)
        yield from bps.prepare(
            cam,
            TriggerInfo(
                number_of_events=3,
                trigger=DetectorTrigger.EXTERNAL_EDGE,
                livetime=0.001,
            ),
            wait=True,
        )
        yield from bps.declare_stream(cam, name="primary", collect=True)
        yield from bps.kickoff(cam, wait=True)
        yield from bps.complete(cam, wait=True)
        yield from bps.unstage(cam, wait=True)

    # the camera's own reason, from its 0.3 s frame timeout: not the run's
    # generic 10 s exposure timeout, which would name no trigger
    with pytest.raises(Exception, match="cam: no trigger within 0.3 s in Edge mode"):
        run_engine(armed_but_never_triggered())


def test_a_starved_writer_drops_frames_and_says_so(camera, run_engine, monkeypatch):
    write = FrameWriter._write

    def slow(self, index):
        time.sleep(0.05)
        write(self, index)

    monkeypatch.setattr(FrameWriter, "_write", slow)
    cam = camera(ring_mb=24)  # three full frames
    with pytest.raises(
        Exception, match=r"cam: \d+ frames dropped .* could not keep up"
    ):
        run_engine(fly_frames(cam, 40, 0.001))
    assert call(cam.frames_dropped.get_value()) > 0


def test_lost_frames_keep_their_place_in_the_file(
    camera, run_engine, monkeypatch, collect_documents
):
    write = FrameWriter._write
    monkeypatch.setattr(
        FrameWriter, "_write", lambda self, i: (time.sleep(0.05), write(self, i))
    )
    cam = camera(ring_mb=24, on_dropped="warn")
    result = run_engine(fly_frames(cam, 30, 0.001), collect_documents)
    assert result.exit_status == "success"
    with h5py.File(frame_file(collect_documents), "r") as f:
        numbers = f["/entry/frame_number"][:]
        frames = f["/entry/data/data"]
        lost = np.flatnonzero(numbers == -1)
        assert len(numbers) == 30 and 0 < len(lost) < 30
        assert (
            not frames[int(lost[0])].any()
            and frames[int(np.flatnonzero(numbers > 0)[0])].any()
        )
    taken = numbers[numbers > 0]
    assert (np.diff(taken) > 0).all()


def test_the_preview_reads_the_newest_frame(camera, run_engine):
    cam = camera()
    assert cam.preview() is None
    run_engine(bp.count([cam], num=2))
    frame, number = cam.preview()
    assert frame.shape == (2048, 2048) and number >= 2


def test_without_pvcam_the_pyvcam_backend_says_what_to_install(
    tmp_path, run_engine, connect_devices
):
    cam = PvcamDetector(
        PyVcamBackend(),
        StaticPathProvider(UUIDFilenameProvider(), tmp_path),
        name="cam",
    )
    with pytest.raises(
        CameraUnavailableError,
        match="cam: backend pyvcam needs .* PVCAM runtime.*backend: sim",
    ):
        connect_devices(cam)


def test_the_kinds_get_the_simulated_camera_and_trigger_line_from_sim_world(
    world, tmp_path, run_engine, connect_devices, collect_documents
):
    from labsky.devices.pulse_generator import PulseGeneratorParams, sim_pulse_generator
    from labsky.devices.pvcam import PvcamParams, pvcam
    from labsky.sim import SimulatedTable

    table = SimulatedTable(world)
    paths = StaticPathProvider(UUIDFilenameProvider(), tmp_path)
    cam = pvcam(PvcamParams(backend="sim", model="kinetix"), paths, table)
    pulser = sim_pulse_generator(PulseGeneratorParams(line="camera"), table)
    cam.set_name("cam")
    pulser.set_name("pulser")
    connect_devices(cam, pulser)
    assert (
        isinstance(cam.driver.backend, SimCamera) and cam.driver.backend.world is world
    )
    assert call(cam.model.get_value()) == "Kinetix"
    run_engine(
        fly_frames(cam, 5, 0.002, trigger_source=pulser, period=0.02, trigger="edge"),
        collect_documents,
    )  # the pulser's pulses reached the camera: one frame each
    with h5py.File(frame_file(collect_documents), "r") as f:
        assert len(f["/entry/frame_number"]) == 5


def test_without_sim_world_the_simulated_kinds_say_what_they_need(tmp_path):
    from labsky.devices.pulse_generator import PulseGeneratorParams, sim_pulse_generator
    from labsky.devices.pvcam import PvcamParams, pvcam
    from labsky.sim import SimulatedTable

    paths = StaticPathProvider(UUIDFilenameProvider(), tmp_path)
    with pytest.raises(ValueError, match="backend sim: no simulation to put the"):
        pvcam(PvcamParams(backend="sim"), paths, None)
    with pytest.raises(ValueError, match="give the profile a `simulation:` section"):
        sim_pulse_generator(PulseGeneratorParams(), None)
    # A session without simulators: cameras see a fixed spot, no trigger lines.
    no_world = SimulatedTable(None)
    camera = no_world.camera_backend("prime_bsi", trigger_line="c", pixels_per_mm=1)
    assert camera.world is None and camera.info.model == "Prime BSI"
    with pytest.raises(ValueError, match="trigger line 'camera' is on the simulated"):
        sim_pulse_generator(PulseGeneratorParams(), no_world)


def test_the_model_table_has_every_model_a_declaration_can_name():
    import typing

    from labsky.devices.pvcam import MODELS, PvcamParams

    annotation = PvcamParams.model_fields["model"].annotation
    assert set(typing.get_args(annotation)) == set(MODELS)
