"""The live view of 2-D detectors that only write files (ophyd-async's SimBlobDetector).

Their newest frame is read from the HDF5 file the run is writing, found
through the run's own stream_resource and stream_datum documents; through
the daemon's device API it reaches a client as PVCAM frames do.
"""

import asyncio
import textwrap
import threading

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider, init_devices
from ophyd_async.sim import PatternGenerator, SimBlobDetector, SimStage

from labsky.daemon.device_api import DeviceService
from labsky.daemon.device_client import DeviceClient
from labsky.daemon.file_frames import FileFrames, file_path, is_image


def test_image_keys_and_file_uris():
    assert is_image([240, 320]) and is_image([1, 240, 320])
    assert is_image([4, 240, 320])  # four frames per event
    assert not is_image([16384])  # a trace
    assert not is_image([2, 16384])  # two traces
    assert not is_image([])
    assert file_path("file://localhost/data/run%201/cam.h5") == "/data/run 1/cam.h5"
    assert file_path("s3://bucket/cam.h5") == ""


def test_the_newest_frame_is_read_from_the_file_while_the_run_writes(tmp_path):
    engine = RunEngine(call_returns_result=True)
    path_provider = StaticPathProvider(UUIDFilenameProvider(), tmp_path)
    world = PatternGenerator()
    with init_devices():
        cam = SimBlobDetector(path_provider, world)
        stage = SimStage(world)
    frames = FileFrames()
    engine.subscribe(frames.document)
    seen: list[tuple[int, int]] = []  # (frame number, pixel sum) as announced

    resources = []

    def look(name, doc):
        if name == "stream_resource":
            resources.append(doc)
        if name == "stream_datum" and doc["stream_resource"] == resources[0]["uid"]:
            latest = frames.latest("cam")
            assert latest is not None
            seen.append((latest[1], int(latest[0].sum(dtype=np.int64))))

    engine.subscribe(look)
    # the blob moves with the stage: every frame differs
    engine(bp.scan([cam], stage.x, -3, 3, 4))

    assert frames.has_frames("cam") and not frames.has_frames("other")
    resource = resources[0]
    assert frames.file_of("cam") == file_path(resource["uri"])
    assert resource["data_key"] == "cam"
    with h5py.File(file_path(resource["uri"]), "r") as handle:
        written = handle[resource["parameters"]["dataset"]][()]
    assert written.shape == (4, 240, 320)
    assert len({int(f.sum(dtype=np.int64)) for f in written}) == 4
    # each announced frame was read while the file was open for writing
    assert seen == [(i + 1, int(written[i].sum(dtype=np.int64))) for i in range(4)]
    frame, number = frames.latest("cam")
    assert number == 4 and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, written[3])


def test_a_fly_scan_previews_from_the_file_not_from_its_batches(tmp_path):
    """fly_frames announces frames every 0.2 s; a reader sees them as written."""
    from labsky.plans.camera import fly_frames

    engine = RunEngine(call_returns_result=True)
    with init_devices():
        cam = SimBlobDetector(
            StaticPathProvider(UUIDFilenameProvider(), tmp_path), PatternGenerator()
        )
    frames = FileFrames()
    engine.subscribe(frames.document)
    batches: set[int] = set()  # frames announced by each stream_datum
    engine.subscribe(
        lambda n, d: batches.add(d["indices"]["stop"]) if n == "stream_datum" else 0
    )
    seen: set[int] = set()  # frame numbers the reader found, from another thread
    done = threading.Event()

    def reader():
        while not done.is_set():
            latest = frames.latest("cam")
            if latest is not None:
                seen.add(latest[1])
            done.wait(0.005)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        engine(fly_frames(cam, frames=100, livetime=0.01))
    finally:
        done.set()
        thread.join()
    assert max(batches) == 100 and frames.latest("cam")[1] == 100
    assert len(seen - batches) > 0, (sorted(seen), sorted(batches))


def test_rows_of_one_frame_are_shown_as_that_frame(tmp_path):
    path = tmp_path / "ad.h5"
    with h5py.File(path, "w") as handle:
        handle["/entry/data/data"] = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(
            3, 1, 16, 16
        )
    frames = FileFrames()
    frames.document(
        "descriptor",
        {
            "object_keys": {"ad": ["ad-image"]},
            "data_keys": {"ad-image": {"shape": [1, 16, 16], "external": "STREAM:"}},
        },
    )
    frames.document(
        "stream_resource",
        {
            "uid": "r1",
            "data_key": "ad-image",
            "uri": f"file://localhost{path}",
            "parameters": {"dataset": "/entry/data/data"},
        },
    )
    frame, number = frames.latest("ad")
    assert number == 3 and frame.shape == (16, 16) and frame[0, 0] == 2 * 256
    assert frames.latest("ad", shown=3) is None  # nothing newer: no pixels read
    assert frames.latest("ad", shown=2)[1] == 3


def test_a_file_that_is_gone_gives_no_frame_not_an_error(tmp_path):
    frames = FileFrames()
    frames.document(
        "descriptor",
        {
            "object_keys": {"cam": ["cam"]},
            "data_keys": {"cam": {"shape": [240, 320], "external": "STREAM:"}},
        },
    )
    missing = tmp_path / "gone.h5"
    frames.document(
        "stream_resource",
        {
            "uid": "r1",
            "data_key": "cam",
            "uri": f"file://localhost{missing}",
            "parameters": {"dataset": "/entry/data/data"},
        },
    )
    frames.document(
        "stream_datum", {"stream_resource": "r1", "indices": {"start": 0, "stop": 1}}
    )
    assert frames.has_frames("cam")
    assert frames.latest("cam") is None


@pytest.fixture
def blob_lab(tmp_path, labsky_session):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "devices.yaml").write_text(
        textwrap.dedent(
            """\
            devices:
              world: {kind: sim_pattern}
              stage:
                kind: sim_stage
                requires: {pattern_generator: world}
                groups: [motors]
              cam:
                kind: sim_blob_detector
                requires: {pattern_generator: world}
                groups: [detectors]
            """
        )
    )
    (profile / "profile.yaml").write_text(
        "devices: [devices.yaml]\ntiled: {uri: null}\n"
    )
    session = labsky_session(profile)
    service = DeviceService(session).start()
    try:
        yield session, service
    finally:
        service.close()


def test_the_device_api_sends_the_frames_a_plan_writes(blob_lab):
    session, service = blob_lab
    received: list[tuple[dict, bytes]] = []
    described: dict = {}
    watching = threading.Event()

    async def watch():
        client = DeviceClient(service.address, timeout=30)
        try:
            reply = await client.request("describe")
            described.update({d["name"]: d for d in reply["devices"]})
            await client.request("watch", seconds=30, cameras={"cam": 30})
            watching.set()
            async for topic, header, pixels in client.updates():
                if topic == "frame" and header["name"] == "cam":
                    received.append((header, pixels))
                    if len(received) >= 3:
                        return
        finally:
            client.close()

    thread = threading.Thread(target=asyncio.run, args=(watch(),))
    thread.start()
    assert watching.wait(60)
    resources = []
    token = session.run_engine.subscribe(
        lambda n, d: resources.append(d) if n == "stream_resource" else 0
    )
    # frames stop coming when the run ends: run until three have arrived
    for _ in range(20):
        session.run_engine(bp.count([session.devices["cam"]], num=10, delay=0.1))
        if len(received) >= 3:
            break
    session.run_engine.unsubscribe(token)
    thread.join(30)

    cam = described["cam"]
    assert cam["camera"] is True and cam["frames"] == "plans" and not cam["focus"]
    assert not described["stage"]["camera"]
    assert len(received) >= 3
    header, pixels = received[-1]
    assert header["shape"] == [240, 320] and header["dtype"] == "uint8"
    # the pixels are the frame of that number in one of the runs' files
    frame = np.frombuffer(pixels, np.uint8).reshape(240, 320)
    files = [r for r in resources if r["data_key"] == "cam"]
    matches = []
    for resource in files:
        with h5py.File(file_path(resource["uri"]), "r") as handle:
            data = handle[resource["parameters"]["dataset"]]
            if len(data) >= header["number"]:
                matches.append(np.array_equal(data[header["number"] - 1], frame))
    assert any(matches)
