"""The cockpit's hub: documents reduced to plot rows, the disk watched."""

import json
import shutil
from collections import namedtuple

import numpy as np
from event_model import compose_run

from labsky.daemon.service import DaemonAddresses
from labsky.gui.hub import Browser, Cockpit


class Forms:
    def forms(self):
        return []


def cockpit(data_dir=None):
    addresses = DaemonAddresses(
        profile="sim", control="tcp://127.0.0.1:1", info="", redis=""
    )
    hub = Cockpit(addresses, Forms(), data_dir)
    sent = []

    async def send(text):
        sent.append(text)

    page = Browser(send_text=send, send_bytes=send)
    hub.browsers.add(page)
    return hub, page


def messages(page):
    out = []
    while not page.queue.empty():
        out.append(json.loads(page.queue.get_nowait()))
    return out


def test_a_run_becomes_scan_rows_with_its_scalar_columns_only():
    hub, page = cockpit()
    run = compose_run(
        metadata={"plan_name": "scan", "scan_id": 7, "sample": "Si", "motors": ["x"]}
    )
    hub.document("start", run.start_doc)
    stream = run.compose_descriptor(
        name="primary",
        data_keys={
            "x": {"dtype": "number", "shape": [], "source": "sim", "units": "mm"},
            "trace": {"dtype": "array", "shape": [16384], "source": "sim"},
        },
    )
    hub.document("descriptor", stream.descriptor_doc)
    for i in range(3):
        event = stream.compose_event(
            data={"x": float(i), "trace": np.zeros(16384)},
            timestamps={"x": 0.0, "trace": 0.0},
            seq_num=i + 1,
        )
        hub.document("event", event)
    hub._flush_rows()
    hub.document("stop", run.compose_stop(exit_status="abort", reason="asked"))
    sent = messages(page)
    kinds = [m["type"] for m in sent]
    assert kinds[:3] == ["scan_start", "log", "descriptor"]
    assert sent[0]["start"]["sample"] == "Si" and sent[0]["start"]["motors"] == ["x"]
    assert list(sent[2]["descriptor"]["keys"]) == ["x"]  # the trace is not plotted
    (rows,) = [m["rows"] for m in sent if m["type"] == "rows"]
    assert [r["x"] for r in rows] == [0.0, 1.0, 2.0]
    assert [r["seq_num"] for r in rows] == [1, 2, 3] and rows[0]["trace"] is None
    assert kinds[-2:] == ["scan_stop", "log"]
    assert sent[-1]["entry"]["text"] == "scan 7 ended: abort: asked"
    # a page that connects now gets the whole scan in its snapshot
    snapshot = hub.snapshot()["scan"]
    assert len(snapshot["rows"]) == 3 and snapshot["stop"]["exit_status"] == "abort"


def test_event_pages_are_rows_too_and_documents_without_a_start_are_ignored():
    hub, page = cockpit()
    run = compose_run()
    hub.document("descriptor", {"uid": "d", "data_keys": {}})  # no start yet
    hub.document("start", run.start_doc)
    stream = run.compose_descriptor(
        name="primary", data_keys={"y": {"dtype": "number", "shape": [], "source": "s"}}
    )
    hub.document("descriptor", stream.descriptor_doc)
    page_doc = stream.compose_event_page(
        data={"y": [1.5, float("nan")]},
        timestamps={"y": [0.0, 0.0]},
        seq_num=[1, 2],
        time=[10.0, 11.0],
    )
    hub.document("event_page", page_doc)
    hub._flush_rows()
    (rows,) = [m["rows"] for m in messages(page) if m["type"] == "rows"]
    assert [(r["seq_num"], r["time"], r["y"]) for r in rows] == [
        (1, 10.0, 1.5),
        (2, 11.0, None),  # NaN is not JSON
    ]


def test_low_disk_space_is_an_alarm_once(tmp_path, monkeypatch):
    hub, page = cockpit(tmp_path)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(100 * 2**30, 0, 2**30))
    hub.check_health()
    hub.check_health()
    sent = messages(page)
    (alarm,) = [m for m in sent if m["type"] == "log"]
    assert (
        "1.0 GiB free in" in alarm["entry"]["text"]
        and alarm["entry"]["level"] == "error"
    )
    (health,) = [m["health"] for m in sent if m["type"] == "health"]
    assert health["disk_low"] is True and health["disk_free"] == 2**30
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: Usage(100 * 2**30, 0, 50 * 2**30)
    )
    hub.check_health()
    (health,) = [m["health"] for m in messages(page) if m["type"] == "health"]
    assert health["disk_low"] is False


def test_a_run_stored_but_not_catalogued_for_a_minute_is_an_alarm_once(
    tmp_path, monkeypatch
):
    from labsky.gui import hub as hub_module
    from labsky.pipeline.format import OPEN_RUNS
    from labsky.pipeline.sink import clear_catalog_pending, mark_catalog_pending

    runs = tmp_path / "runs"
    runs.mkdir()
    mark_catalog_pending(runs, "done-run", runs / "scan1.h5")  # stored, closed
    mark_catalog_pending(runs, "open-run", runs / "scan2.h5")  # still running
    (runs / OPEN_RUNS).write_text('{"open-run": "scan2.h5"}')
    clock = [1000.0]
    monkeypatch.setattr(hub_module.time, "monotonic", lambda: clock[0])
    hub, page = cockpit(tmp_path)
    hub.check_health()
    (health,) = [m["health"] for m in messages(page) if m["type"] == "health"]
    assert health["catalog_behind"] == 1 and health["catalog_late"] is False
    assert not [m for m in messages(page) if m["type"] == "log"]  # not yet
    clock[0] += hub_module.CATALOG_LAG_ALARM
    hub.check_health()
    hub.check_health()
    sent = messages(page)
    (alarm,) = [m["entry"] for m in sent if m["type"] == "log"]
    assert alarm["level"] == "error" and "the catalog is 1 runs behind" in alarm["text"]
    assert str(runs) in alarm["text"]
    assert [m["health"]["catalog_late"] for m in sent if m["type"] == "health"] == [
        True
    ]
    clear_catalog_pending(runs, "done-run")  # the server caught up
    hub.check_health()
    (health,) = [m["health"] for m in messages(page) if m["type"] == "health"]
    assert health["catalog_behind"] == 0 and health["catalog_late"] is False


def test_a_plan_that_fits_a_peak_gets_its_fit_drawn_from_the_same_documents():
    hub, page = cockpit()
    run = compose_run(metadata={"motors": ["x"], "peak_field": "y", "scan_id": 3})
    hub.document("start", run.start_doc)
    stream = run.compose_descriptor(
        name="primary",
        data_keys={
            k: {"dtype": "number", "shape": [], "source": "s"} for k in ("x", "y")
        },
    )
    hub.document("descriptor", stream.descriptor_doc)
    x = np.linspace(-2, 2, 41)
    y = 5 + 100 * np.exp(-((x - 0.4) ** 2) / (2 * 0.3**2))  # centre 0.4, FWHM 0.71
    hub.document(
        "event_page",
        stream.compose_event_page(
            data={"x": list(x), "y": list(y)},
            timestamps={"x": [0.0] * 41, "y": [0.0] * 41},
            seq_num=list(range(1, 42)),
            time=list(range(41)),
        ),
    )
    hub.document("stop", run.compose_stop())
    (peak,) = [m["peak"] for m in messages(page) if m["type"] == "peak"]
    assert (peak["x"], peak["y"]) == ("x", "y")
    assert abs(peak["cen"] - 0.4) < 0.02
    assert abs(peak["fwhm"] - 2.3548 * 0.3) < 0.05
    assert peak["max"][0] == x[np.argmax(y)]
    assert hub.snapshot()["scan"]["peak"] == peak  # for a page that comes later


def test_a_scan_that_fits_no_peak_sends_none():
    hub, page = cockpit()
    run = compose_run(metadata={"motors": ["x"]})
    hub.document("start", run.start_doc)
    hub.document("stop", run.compose_stop())
    assert not [m for m in messages(page) if m["type"] == "peak"]
