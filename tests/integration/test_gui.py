"""The cockpit in a real browser: Debian's Chromium driven by Playwright.

One daemon of the sim profile, one cockpit server and two browsers (separate
profiles, as two people at two desks) for the whole module. Each view's
screenshot goes to tmp_path, or into the docs with LABSKY_SCREENSHOTS=docs.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from labsky.plans.signature import PlanArgumentError, plan_signature
from tests.conftest import REPO

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "docs" / "how-to" / "images"

pytestmark = [
    pytest.mark.slow,
    # bluesky-queueserver-api's REManagerAPI.close (used by the Daemon) closes
    # its sockets but leaves their 0MQ contexts to the garbage collector
    pytest.mark.filterwarnings("ignore:Unclosed context:ResourceWarning"),
    pytest.mark.skipif(
        shutil.which("redis-server") is None or not CHROMIUM.exists(),
        reason="needs redis-server and chromium: run .ci/install-system-packages",
    ),
]

ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The sim profile's daemon and a cockpit attached to it."""
    from labsky.daemon import Daemon
    from labsky.gui.server import CockpitServer

    data = tmp_path_factory.mktemp("gui-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABSKY_DATA_DIR", str(data))
        daemon = Daemon(REPO / "profiles" / "sim", control_port=0, info_port=0)
        daemon.start()
        try:
            server = CockpitServer(daemon.profile_dir, daemon.addresses).start()
            try:
                yield daemon, server
            finally:
                server.close()
        finally:
            daemon.close()


@pytest.fixture(scope="module")
def browsers(lab, tmp_path_factory):
    """Two browsers on the cockpit page."""
    _, server = lab
    args = ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with playwright.sync_playwright() as driver:
        contexts = [
            driver.chromium.launch_persistent_context(
                tmp_path_factory.mktemp("chromium"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=args,
                viewport={"width": 1400, "height": 900},
            )
            for _ in range(2)
        ]
        pages = []
        for context in contexts:
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url)
            pages.append(page)
        try:
            yield pages
        finally:
            for context in contexts:
                context.close()


@pytest.fixture
def page(browsers):
    return browsers[0]


@pytest.fixture
def other(browsers):
    return browsers[1]


def shot(page, name, tmp_path):
    folder = SHOTS if os.environ.get("LABSKY_SCREENSHOTS") == "docs" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"cockpit-{name}.png"))


def view(page, name):
    page.click(f'nav button[data-view="{name}"]')


def text(page, testid):
    return page.inner_text(f'[data-testid="{testid}"]')


def wait_text(page, testid, predicate_js, timeout=30_000):
    """Wait until the element's text satisfies a JS predicate on `t`."""
    page.wait_for_function(
        f"""() => {{ const e = document.querySelector('[data-testid="{testid}"]');
        if (!e) return false; const t = e.textContent; return {predicate_js}; }}""",
        timeout=timeout,
    )


def test_the_page_shows_the_sim_devices_grouped_and_the_plans(page, tmp_path):
    view(page, "devices")
    for name in ("stage", "sample", "meter", "camera", "laser", "polarizer"):
        page.wait_for_selector(f'[data-testid="device-{name}"]')
    motors = page.locator('[data-testid="group-motors"]')
    assert motors.locator('[data-testid="device-stage"]').count() == 1
    assert (
        page.locator(
            '[data-testid="group-detectors"] [data-testid="device-meter"]'
        ).count()
        == 1
    )
    # units and soft limits from the instrument (ESP300 SL?/SR?)
    sample_x = page.locator('[data-testid="movable-sample.x"]')
    assert "mm" in sample_x.inner_text()
    assert "limits -25 … 25 mm" in sample_x.inner_text()
    # live values arrive from the device API
    wait_text(page, "value-laser", "t.startsWith('800')")
    plans = page.locator('[data-testid="plan-select"] option').all_inner_texts()
    assert {"count", "scan", "raster", "camera_raster", "angle_scan"} <= set(plans)
    shot(page, "devices", tmp_path)


def test_moving_the_stage_changes_its_readback_and_bad_targets_are_refused(page, other):
    view(page, "devices")
    page.fill('[data-testid="target-sample.x"]', "1.25")
    page.click('[data-testid="move-sample.x"]')
    wait_text(page, "value-sample.x", "t.startsWith('1.25')")
    # the other browser sees the same readback, pushed to it
    wait_text(other, "value-sample.x", "t.startsWith('1.25')")
    # outside the ESP300's soft limits: refused in the page, nothing sent
    page.fill('[data-testid="target-sample.x"]', "1000")
    page.click('[data-testid="move-sample.x"]')
    message = text(page, "message-sample")
    assert "1000 mm is outside the soft limits [-25, 25] mm" in message
    page.fill('[data-testid="target-stage.x"]', "abc")
    page.click('[data-testid="move-stage.x"]')
    assert 'stage.x: "abc" is not a number' in text(page, "message-stage")
    assert text(page, "value-sample.x").startswith("1.25")


def test_the_server_refuses_what_the_page_would_have_refused(page):
    """The device API checks again: a client that skips the page's checks."""
    reply = page.evaluate(
        """async () => { const r = await fetch('/api/devices/set', {method: 'POST',
        headers: {'Content-Type': 'application/json', 'X-Labsky-Action': '1'},
        body: JSON.stringify({name: 'sample.x', value: 1000})});
        return [r.status, (await r.json()).detail]; }"""
    )
    assert reply == [400, "sample.x: 1000 mm is outside the soft limits [-25, 25] mm"]
    # without the action header (a form posted by another site) nothing happens
    status = page.evaluate(
        """async () => (await fetch('/api/devices/set', {method: 'POST',
        body: JSON.stringify({name: 'sample.x', value: 2})})).status"""
    )
    assert status == 403


def _queue(page, plan, detectors=(), **fields):
    view(page, "queue")
    page.select_option('[data-testid="plan-select"]', plan)
    for name in detectors:
        page.check(f'[data-testid="field-detectors-{name}"]')
    for name, value in fields.items():
        page.fill(f'[data-testid="field-{name}"]', value)


def test_a_bad_plan_value_is_refused_with_the_cli_message(page):
    from labsky.plan_loader import load_plans

    _queue(page, "count", ["pdet"], num="five")
    page.click('[data-testid="queue-add"]')
    wait_text(page, "plan-message", "t.length > 0")
    plans, _ = load_plans([])
    with pytest.raises(PlanArgumentError) as cli:
        plan_signature(plans["count"]).bind(
            [["pdet"]], {"num": "five"}, names={"pdet"}, plan_name="count"
        )
    assert text(page, "plan-message") == str(cli.value)
    assert page.locator('[data-testid="queue-item"]').count() == 0


def test_a_queued_scan_plots_as_it_runs(page, other, tmp_path):
    _queue(page, "count", ["pdet"], num="40", delay="0.1", md="{sample: Si}")
    page.click('[data-testid="queue-add-start"]')
    view(page, "plots")
    wait_text(page, "scan-title", "t.includes('count') && t.includes('Si')")
    wait_text(page, "scan-points", "parseInt(t) >= 5 && parseInt(t) < 40")
    first = int(text(page, "scan-points").split()[0])
    wait_text(page, "scan-points", f"parseInt(t) > {first}")
    shot(page, "plots", tmp_path)
    wait_text(page, "scan-title", "t.endsWith('success')")
    assert text(page, "scan-points") == "40 points"
    # the plot holds the points (uPlot's data, the first series is x)
    assert page.locator('[data-testid="live-plot"]').count() >= 1
    # a second browser opened before the scan got the same rows
    view(other, "plots")
    wait_text(other, "scan-points", "t === '40 points'")
    view(page, "queue")
    wait_text(page, "history", "t.includes('completed')")
    shot(page, "queue", tmp_path)


def test_a_grid_scan_is_drawn_as_a_raster(page):
    _queue(page, "raster", ["pdet"], num_x="5", num_y="4")
    page.select_option('[data-testid="field-x"]', "stage.x")
    page.select_option('[data-testid="field-y"]', "stage.y")
    page.click('[data-testid="queue-add-start"]')
    view(page, "plots")
    wait_text(page, "scan-title", "t.includes('raster') && t.endsWith('success')")
    assert text(page, "scan-points") == "20 points"
    assert page.is_visible('[data-testid="raster"]')
    painted = page.evaluate(
        """() => { const c = document.querySelector('[data-testid="raster"]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = new Set(); for (let i = 0; i < d.length; i += 4)
        if (d[i + 3]) colours.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
        return colours.size; }"""
    )
    assert painted >= 2  # cells of more than one value


def test_a_peak_scan_shows_its_fitted_peak_on_the_plot(page, tmp_path):
    _queue(page, "peak_scan", ["pdet"], start="-1.5", stop="1.5", num="31")
    page.select_option('[data-testid="field-motor"]', "stage.x")
    page.click('[data-testid="queue-add-start"]')
    view(page, "plots")
    wait_text(  # 31 points and the move to the peak: slow on a loaded machine
        page,
        "scan-title",
        "t.includes('peak_scan') && t.endsWith('success')",
        timeout=90_000,
    )
    wait_text(page, "scan-peak", "t.startsWith('peak of pdet-channel-1-value')")
    centre = float(text(page, "scan-peak").split("stage-x = ")[1].split(",")[0])
    assert -1.5 < centre < 1.5
    shot(page, "peak", tmp_path)
    # the centre is drawn: the fit's orange dashed line (a colour no series has)
    red = page.evaluate(
        """() => { const c = document.querySelector('[data-testid="live-plot"] canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4)
        if (d[i] === 188 && d[i + 1] === 76 && d[i + 2] === 0) n++;
        return n; }"""
    )
    assert red > 20


def test_the_camera_image_follows_the_stage(page, other, tmp_path):
    view(page, "camera")
    page.select_option('[data-testid="camera-select"]', "camera")
    page.click('[data-testid="focus-toggle"]')
    page.wait_for_function("window.cockpit.frames >= 5")
    before = page.evaluate("window.cockpit.lastFrame")
    assert before["shape"] == [512, 512] and before["centroid"]
    # the other browser moves the sample stage: the spot moves on the camera
    view(other, "devices")
    target = -2.0 if before["centroid"][0] > 1024 else 2.0
    current = float(text(other, "value-sample.x").split()[0])
    other.fill('[data-testid="target-sample.x"]', str(current + target))
    other.click('[data-testid="move-sample.x"]')
    page.wait_for_function(
        f"""() => {{ const f = window.cockpit.lastFrame;
        return f && Math.abs(f.centroid[0] - {before["centroid"][0]}) > 150; }}""",
        timeout=20_000,
    )
    after = page.evaluate("window.cockpit.lastFrame")
    assert after["number"] > before["number"]
    frames = page.evaluate("window.cockpit.frames")
    page.wait_for_function(f"window.cockpit.frames >= {frames + 10}")
    assert page.evaluate("window.cockpit.cameraFps") > 3
    # a click sets the line profiles' crosshair, a drag draws an ROI
    box = page.locator("#camera-overlay").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.up()
    wait_text(page, "camera-stats", "t.includes('ROI')")
    shot(page, "camera", tmp_path)
    page.click('[data-testid="focus-toggle"]')
    page.wait_for_function("!document.querySelector('#focus-toggle').dataset.on")


def test_a_detector_that_only_writes_files_shows_the_frames_a_plan_acquires(page):
    view(page, "camera")
    page.select_option('[data-testid="camera-select"]', "cam")  # SimBlobDetector
    assert page.locator('[data-testid="focus-toggle"]').is_disabled()
    wait_text(page, "camera-fps", "t.includes('frames appear while a plan acquires')")
    _queue(page, "count", ["cam"], num="30", delay="0.1")
    page.click('[data-testid="queue-add-start"]')
    view(page, "camera")
    # (the blob may be dark: earlier tests leave the stage off its centre)
    page.wait_for_function(
        """() => { const f = window.cockpit.lastFrame;
        return f && f.shape[0] === 240 && f.shape[1] === 320 && f.number >= 2; }""",
        timeout=60_000,
    )
    wait_text(page, "camera-fps", "t.includes('fps')")
    wait_text(page, "re-state", "t === 'RE: idle'", timeout=60_000)


def test_pause_resume_and_abort_and_the_run_browser(page, other, tmp_path):
    _queue(page, "count", ["pdet"], num="400", delay="0.05", md="{sample: GaAs}")
    page.click('[data-testid="queue-add-start"]')
    wait_text(page, "re-state", "t === 'RE: running'")
    page.click('[data-testid="pause"]')
    wait_text(page, "re-state", "t === 'RE: paused'")
    wait_text(other, "re-state", "t === 'RE: paused'")  # every page sees it
    page.click('[data-testid="resume"]')
    wait_text(page, "re-state", "t === 'RE: running'")
    view(page, "plots")
    points = int(text(page, "scan-points").split()[0])
    wait_text(page, "scan-points", f"parseInt(t) > {points}")
    page.click('[data-testid="pause"]')
    wait_text(page, "re-state", "t === 'RE: paused'")
    page.click('[data-testid="abort"]')
    wait_text(page, "scan-title", "t.endsWith('abort')")
    wait_text(other, "re-state", "t === 'RE: idle'")
    view(page, "queue")
    wait_text(page, "history", "t.includes('aborted')")
    # the run browser finds it by sample and exit status
    view(page, "runs")
    page.fill('[data-testid="run-search"] input[name="sample"]', "GaAs")
    page.select_option('[data-testid="run-search-status"]', "abort")
    # the catalog has the stop document within a second or so: search until
    # then, each time waiting for the answer to this search (not an older one)
    for _ in range(300):  # each search takes a request to the catalog
        answers = page.get_attribute('[data-testid="run-list"]', "data-answers")
        page.click('[data-testid="run-search-button"]')
        page.wait_for_function(
            """([answers]) => { const list = document.querySelector('#run-list');
            return list.dataset.query === 'sample=GaAs&exit_status=abort'
                && list.dataset.answers !== answers; }""",
            arg=[answers],
        )
        if page.locator('[data-testid="run-row"]').count():
            break
    assert page.locator('[data-testid="run-row"]').count() == 1
    assert text(page, "run-exit-status-cell") == "abort"
    page.click('[data-testid="run-row"]')

    wait_text(page, "run-exit-status", "t === 'abort'")
    page.wait_for_selector('[data-testid="run-plot"] canvas')
    href = page.get_attribute('[data-testid="run-download"]', "href")
    uid = text(page, "run-uid")
    assert href == f"/api/runs/{uid}/file"
    status, magic = page.evaluate(
        f"""async () => {{ const r = await fetch('{href}');
        const b = new Uint8Array(await r.arrayBuffer()); return [r.status, Array.from(b.slice(1, 4))]; }}"""
    )
    assert status == 200 and bytes(magic) == b"HDF"
    shot(page, "runs", tmp_path)
    view(page, "log")
    wait_text(page, "log", "t.includes('ended: abort')")
    shot(page, "log", tmp_path)


def test_the_api_needs_its_key_when_one_is_set(lab):
    """Beyond loopback the cockpit needs a key; with one, every request does."""
    import httpx

    from labsky.gui.server import CockpitError, CockpitServer, check_binding

    with pytest.raises(CockpitError, match="LABSKY_GUI_API_KEY"):
        check_binding("0.0.0.0", None)
    daemon, _ = lab
    server = CockpitServer(
        daemon.profile_dir, daemon.addresses, api_key="s3cret-key"
    ).start()
    try:
        url = server.url.rstrip("/")
        assert httpx.get(f"{url}/api/state").status_code == 401
        assert (
            httpx.get(f"{url}/api/state", headers={"X-API-Key": "wrong"}).status_code
            == 401
        )
        good = httpx.get(f"{url}/api/state", headers={"X-API-Key": "s3cret-key"})
        assert good.status_code == 200 and json.loads(good.text)["profile"] == "sim"
        login = httpx.post(
            f"{url}/api/login",
            json={"key": "s3cret-key"},
            headers={"X-Labsky-Action": "1"},
        )
        assert login.status_code == 200
        cookie = login.cookies.get("labsky_cockpit_key")
        assert cookie == "s3cret-key"
        assert "httponly" in login.headers["set-cookie"].lower()
        # a host name that is not loopback is refused (DNS rebinding)
        assert httpx.get(url, headers={"Host": "evil.example:80"}).status_code == 400
    finally:
        server.close()
