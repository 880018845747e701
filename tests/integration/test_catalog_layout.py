"""labsky's catalog is the stock layout: the same runs read the same through stock clients.

One RunEngine, two catalogs: the session's pipeline writes labsky's (ring ->
storage worker -> Tiled), and bluesky-tiled-plugins' own `TiledWriter`,
subscribed to the same RunEngine, writes a second Tiled server exactly as a
plain bluesky setup does. Both get the same documents, so every stock
client call must return the same keys, specs, dtypes, shapes and values.
The one intended difference: labsky's rows are readable while a run goes on.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
import pandas as pd
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import RunEngineInterrupted
from bluesky_tiled_plugins import TiledWriter
from ophyd_async.core import Array1D, StandardReadable, StrictEnum, soft_signal_rw

from labsky.pipeline.server import LocalTiled, runs_container

from ..conftest import REPO

pytestmark = pytest.mark.slow


class Mode(StrictEnum):
    FAST = "fast"
    SLOW = "slow"


class Labels(StandardReadable):
    """Readings of every kind a lab signal has: text, enum, flags, small and big arrays."""

    def __init__(self, name: str = ""):
        with self.add_children_as_readables():
            self.note = soft_signal_rw(str, "hello")
            self.mode = soft_signal_rw(Mode, Mode.FAST)
            self.ok = soft_signal_rw(bool, True)
            self.count = soft_signal_rw(int, 3)
            self.spot = soft_signal_rw(Array1D[np.float64], np.array([1.0, 2.0, 3.0]))
            self.trace = soft_signal_rw(Array1D[np.float32], np.zeros(100, np.float32))
        super().__init__(name=name)


class BoomError(Exception):
    pass


def failing(det):
    @bpp.run_decorator(md={"purpose": "fail"})
    def inner():
        yield from bps.trigger_and_read([det])
        yield from bps.trigger_and_read([det])
        raise BoomError("the sample fell off")

    yield from inner()


def pausing(det):
    @bpp.run_decorator(md={"purpose": "abort"})
    def inner():
        yield from bps.trigger_and_read([det])
        yield from bps.checkpoint()
        yield from bps.pause()
        yield from bps.trigger_and_read([det])

    yield from inner()


def labelled(labels, det, points):
    @bpp.run_decorator(md={"purpose": "labels"})
    def inner():
        for i in range(points):
            yield from bps.mv(labels.note, f"point {i}", labels.count, i)
            yield from bps.mv(labels.mode, Mode.SLOW if i % 2 else Mode.FAST)
            yield from bps.mv(labels.ok, i % 3 != 0)
            yield from bps.mv(labels.spot, np.arange(3.0) + i)
            yield from bps.mv(labels.trace, np.full(100, i, np.float32))
            yield from bps.trigger_and_read([labels, det])

    yield from inner()


def slow_scan(det, motor, gate, seen):
    @bpp.run_decorator(md={"purpose": "live"})
    def inner():
        for i in range(4):
            yield from bps.mv(motor, i)
            yield from bps.trigger_and_read([det, motor])
        # Wait here, inside the run, until the test has looked at it.
        yield from bps.wait_for([lambda: asyncio.to_thread(gate.wait, 120)])
        seen.append("resumed")

    yield from inner()


@pytest.fixture(scope="module")
def two_catalogs(tmp_path_factory):
    """The same runs in labsky's catalog and in a stock TiledWriter's."""
    from labsky.session import start

    tmp = tmp_path_factory.mktemp("layout")
    profile = tmp / "layoutlab"
    profile.mkdir()
    (profile / "profile.yaml").write_text(
        textwrap.dedent(
            f"""
            devices: [{REPO / "devices" / "sim.yaml"}]
            data_dir: {tmp / "data"}
            mock: false
            tiled: {{uri: embedded, container: raw}}
            """
        )
    )
    session = start(profile, progress=False)
    stock_server = LocalTiled(tmp / "stock", readable=(tmp / "data" / "detectors",))
    try:
        session.catalogued()
        stock = runs_container(stock_server.client(), "raw")
        session.subscribe(TiledWriter(stock))
        labels = Labels(name="labels")
        call_in_bluesky_event_loop(labels.connect())
        engine, devices = session.run_engine, session.devices
        pdet, stage, cam = devices["pdet"], devices["stage"], devices["cam"]
        uids = {}
        uids["count"] = engine(
            bp.count([pdet], num=5, md={"sample": "Si"})
        ).run_start_uids[0]
        uids["scan"] = engine(bp.scan([pdet], stage.x, -1, 1, 7)).run_start_uids[0]
        uids["camera"] = engine(bp.count([cam], num=3)).run_start_uids[0]
        uids["labels"] = engine(labelled(labels, pdet, 4)).run_start_uids[0]
        with pytest.raises(BoomError):
            engine(failing(pdet))
        uids["fail"] = _last_uid(stock)
        with pytest.raises(RunEngineInterrupted):
            engine(pausing(pdet))
        engine.abort("the test aborts it")
        uids["abort"] = _last_uid(stock)

        # A run read while it goes: labsky's rows appear, stock's do not yet.
        gate, seen, during = threading.Event(), [], {}
        mine = session.runs

        def look():
            from tiled.queries import Key

            for _ in range(600):
                found = mine.search(Key("start.purpose") == "live")
                if found:
                    run = found.values().first()
                    if "primary" in run and rows(run["primary"]) == 4:
                        during["labsky"] = run["primary"]["stage-x"].read().tolist()
                        stock_run = stock[run.start["uid"]]
                        during["stock"] = (
                            rows(stock_run["primary"]) if "primary" in stock_run else 0
                        )
                        break
                gate.wait(0.1)
            gate.set()

        watcher = threading.Thread(target=look)
        watcher.start()
        uids["live"] = engine(slow_scan(pdet, stage.x, gate, seen)).run_start_uids[0]
        watcher.join()
        assert seen == ["resumed"]
        session.catalogued()
        yield {
            "labsky": session.runs,
            "stock": stock,
            "uids": uids,
            "during": during,
            "session": session,
        }
    finally:
        session.close()
        stock_server.close()


def rows(stream):
    """Rows of a stream's internal table so far (0 before its first write)."""
    return len(stream.base["internal"].read()) if "internal" in stream.base else 0


def _last_uid(runs):
    return runs.values().last().start["uid"]


def _equal(a, b, what):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


FILE_BACKED = {"labels-trace"}


def compare_runs(mine, theirs):
    """Everything stock client code reads of a run is the same."""
    _equal(mine.metadata["start"], theirs.metadata["start"], "start")
    _equal(mine.metadata["stop"], theirs.metadata["stop"], "stop")
    _equal([s.name for s in mine.specs], [s.name for s in theirs.specs], "run specs")
    _equal(sorted(mine), sorted(theirs), "streams")
    for stream in theirs:
        a, b = mine[stream], theirs[stream]
        where = f"{stream}"
        _equal([s.name for s in a.specs], [s.name for s in b.specs], f"{where} specs")
        _equal(dict(a.metadata), dict(b.metadata), f"{where} descriptor metadata")
        _equal(sorted(a), sorted(b), f"{where} keys")
        for key in b:
            _equal(a[key].read(), b[key].read(), f"{where}/{key}")
        _equal(sorted(a.base), sorted(b.base), f"{where}.base nodes")
        if "internal" in b.base:
            pd.testing.assert_frame_equal(
                a.base["internal"].read(),
                b.base["internal"].read(),
                obj=f"{where} internal",
            )
        mine_ds, theirs_ds = a.read(), b.read()
        _equal(list(mine_ds.data_vars), list(theirs_ds.data_vars), f"{where} read()")
        for name in theirs_ds.data_vars:
            _equal(
                mine_ds[name].values, theirs_ds[name].values, f"{where} read()[{name}]"
            )
            if name not in FILE_BACKED:
                # Stock copies big arrays into Tiled, naming their axes by size
                # (dim_int_1); labsky serves them from the run file, whose axes
                # take Tiled's default names (<key>_dim1).
                _equal(
                    mine_ds[name].dims,
                    theirs_ds[name].dims,
                    f"{where} read()[{name}].dims",
                )


@pytest.mark.parametrize(
    "run", ["count", "scan", "camera", "labels", "fail", "abort", "live"]
)
def test_every_run_reads_the_same_as_stock(two_catalogs, run):
    uid = two_catalogs["uids"][run]
    compare_runs(two_catalogs["labsky"][uid], two_catalogs["stock"][uid])


def test_strings_and_enums_are_text_arrays(two_catalogs):
    run = two_catalogs["labsky"][two_catalogs["uids"]["labels"]]
    notes = run["primary"]["labels-note"].read()
    assert notes.dtype.kind == "U" and list(notes) == [f"point {i}" for i in range(4)]
    modes = run["primary"]["labels-mode"].read()
    assert modes.dtype.kind == "U" and list(modes) == ["fast", "slow", "fast", "slow"]
    assert run["primary"]["ts_labels-note"].read().shape == (4,)


def test_big_arrays_stay_in_the_run_file(two_catalogs):
    run = two_catalogs["labsky"][two_catalogs["uids"]["labels"]]
    trace = run["primary"]["labels-trace"]
    source = trace.data_sources()[0]
    assert source.mimetype == "application/x-hdf5"
    assert source.assets[0].data_uri.endswith(".h5")
    assert "/runs/" in source.assets[0].data_uri  # the run file, not a copy
    np.testing.assert_array_equal(trace.read()[:, 0], np.arange(4, dtype=np.float32))


def test_failed_and_aborted_runs_say_so(two_catalogs):
    runs, uids = two_catalogs["labsky"], two_catalogs["uids"]
    assert runs[uids["fail"]].metadata["stop"]["exit_status"] == "fail"
    assert "sample fell off" in runs[uids["fail"]].metadata["stop"]["reason"]
    assert runs[uids["abort"]].metadata["stop"]["exit_status"] == "abort"


def test_rows_are_readable_while_the_run_goes_on(two_catalogs):
    during = two_catalogs["during"]
    assert during["labsky"] == [0.0, 1.0, 2.0, 3.0]
    assert during["stock"] == 0  # stock writes nothing before 10,000 events or the stop


def test_databroker_v1_tables_are_the_same(two_catalogs):
    mine, theirs = two_catalogs["labsky"].v1, two_catalogs["stock"].v1
    for run in ("count", "scan", "labels"):
        uid = two_catalogs["uids"][run]
        for stream in ("primary", "baseline"):
            a = mine[uid].table(stream)
            b = theirs[uid].table(stream)
            assert len(a) > 0 and "time" in a.columns and len(a.columns) > 1
            pd.testing.assert_frame_equal(a, b, obj=f"{run} {stream} v1 table")


def test_a_v1_or_v2_view_leaves_every_other_run_as_it_was(two_catalogs):
    """bluesky-tiled-plugins switches views on a copy of the structure clients
    that shares Tiled's process-wide map: after one `catalog.v1` every run read
    later was a v2 run (`run["primary"]["stage-x"]` a KeyError). labsky's
    clients carry a map of their own whose copies are copies."""
    from bluesky_tiled_plugins.clients.bluesky_run import BlueskyRun
    from tiled.client.container import DEFAULT_STRUCTURE_CLIENT_DISPATCH

    runs, uid = two_catalogs["labsky"], two_catalogs["uids"]["scan"]
    assert len(runs.v1[uid].table()) == 7  # databroker's Broker takes runs.v2
    assert set(runs[uid].v2["primary"]) >= {"data", "timestamps"}
    np.testing.assert_allclose(
        runs[uid]["primary"]["stage-x"].read(), np.linspace(-1, 1, 7)
    )
    # the process-wide default still picks each run's version from its specs
    assert DEFAULT_STRUCTURE_CLIENT_DISPATCH["numpy"]["BlueskyRun"] is BlueskyRun


def test_searches_and_recent_runs_are_the_same(two_catalogs):
    from tiled.queries import Key

    mine, theirs = two_catalogs["labsky"], two_catalogs["stock"]
    assert list(mine.search(Key("start.sample") == "Si")) == list(
        theirs.search(Key("start.sample") == "Si")
    )
    assert mine[-1].start["uid"] == theirs[-1].start["uid"]
