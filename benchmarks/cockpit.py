"""The cockpit's cost and speed, with a real browser (Chromium via Playwright).

- scan ratio: events/s of the same scan run by the daemon's queue with a
  cockpit page attached (live plots open) over without one (goal >= 0.95);
  runs alternate, median of each;
- camera frames per second drawn in the page, focus mode (goal >= 10);
- a detector that only writes files (the sim profile's `cam`, ophyd-async's
  SimBlobDetector): frames per second in the page while `fly_frames` takes
  its frames (10 ms each), and that plan's frames/s with the page watching
  over without;
- device update latency: a sim motor set through the device API from here,
  until the page shows the new value (goal <= 200 ms).

    python benchmarks/cockpit.py [--points 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scan_rate(lab, points: int) -> float:
    item = lab.run("scan", ["pdet"], "stage.x", -1, 1, points)
    (uid,) = item["result"]["run_uids"]
    run = lab.runs()[uid]
    start, stop = run.metadata["start"]["time"], run.metadata["stop"]["time"]
    return points / (stop - start)


def fly_rate(lab, frames: int) -> tuple[float, float]:
    """`fly_frames` of the file-writing camera `cam`: frames/s and seconds."""
    item = lab.run("fly_frames", "cam", frames=frames, livetime=0.01)
    (uid,) = item["result"]["run_uids"]
    run = lab.runs()[uid]
    start, stop = run.metadata["start"]["time"], run.metadata["stop"]["time"]
    return frames / (stop - start), stop - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=500)
    options = parser.parse_args()
    os.environ.setdefault("LABSKY_DATA_DIR", tempfile.mkdtemp(prefix="cockpit-bench-"))

    from playwright.sync_api import sync_playwright

    from labsky.client import LabClient
    from labsky.daemon import Daemon
    from labsky.gui.server import CockpitServer

    daemon = Daemon(REPO / "profiles" / "sim", control_port=0, info_port=0)
    addresses = daemon.start()
    server = CockpitServer(daemon.profile_dir, addresses).start()
    lab = LabClient(addresses.control, addresses.info, addresses)
    args = ["--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    try:
        scan_rate(lab, 20)  # warm up: first run's imports and files
        without, with_page = [], []
        with sync_playwright() as driver:
            context = driver.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="cockpit-bench-chromium-"),
                executable_path="/usr/bin/chromium",
                headless=True,
                args=args,
                viewport={"width": 1400, "height": 900},
            )
            page = None
            for _ in range(options.repeats):
                if page is not None:
                    page.close()
                    page = None
                without.append(scan_rate(lab, options.points))
                page = context.new_page()
                page.goto(server.url)
                page.wait_for_selector('[data-testid="device-stage"]')
                page.click('nav button[data-view="plots"]')
                with_page.append(scan_rate(lab, options.points))
                page.wait_for_function(
                    f"document.querySelector('[data-testid=\"scan-points\"]')"
                    f".textContent === '{options.points} points'"
                )
            assert page is not None

            # device update latency: set here, seen there
            page.click('nav button[data-view="devices"]')
            page.evaluate(
                """() => { window.seen = {}; const cell = document.querySelector(
                '[data-testid="value-stage.y"]'); new MutationObserver(() => {
                window.seen[cell.textContent] = Date.now(); }).observe(cell,
                {childList: true, characterData: true, subtree: true}); }"""
            )
            latencies = _latencies(addresses.devices, page)

            # camera frames per second in the page
            page.click('nav button[data-view="camera"]')
            page.select_option('[data-testid="camera-select"]', "camera")
            page.click('[data-testid="focus-toggle"]')
            page.wait_for_function("window.cockpit.frames >= 5")
            start_frames = page.evaluate("window.cockpit.frames")
            t0 = time.monotonic()
            page.wait_for_timeout(6000)
            fps = (page.evaluate("window.cockpit.frames") - start_frames) / (
                time.monotonic() - t0
            )
            page.click('[data-testid="focus-toggle"]')

            # a detector that only writes files: frames while a plan acquires
            page.select_option('[data-testid="camera-select"]', "cam")
            fly_without = [fly_rate(lab, options.frames)[0]]
            before = page.evaluate("window.cockpit.frames")
            fly_with, seconds = fly_rate(lab, options.frames)
            file_fps = (page.evaluate("window.cockpit.frames") - before) / seconds
            fly_without.append(fly_rate(lab, options.frames)[0])
            context.close()
    finally:
        lab.close()
        server.close()
        daemon.close()

    base, attached = statistics.median(without), statistics.median(with_page)
    print(f"scan of {options.points} points, {options.repeats} runs each (events/s):")
    print(f"  without a page  {', '.join(f'{r:.1f}' for r in without)}")
    print(f"  page attached   {', '.join(f'{r:.1f}' for r in with_page)}")
    print(f"  ratio (medians) {attached / base:.3f}   goal >= 0.95")
    print(f"camera in the page: {fps:.1f} frames/s   goal >= 10")
    fly_base = statistics.mean(fly_without)
    print(
        f"file-writing camera (cam), fly_frames of {options.frames}: "
        f"{file_fps:.1f} frames/s in the page   goal >= 10; the plan "
        f"{fly_with:.1f} frames/s watched, {fly_base:.1f} not "
        f"(ratio {fly_with / fly_base:.3f})"
    )
    latencies.sort()
    print(
        f"device update latency over {len(latencies)} moves: median "
        f"{1000 * statistics.median(latencies):.0f} ms, max "
        f"{1000 * latencies[-1]:.0f} ms   goal <= 200 ms"
    )
    sys.stdout.flush()


def _latencies(address: str, page, moves: int = 20) -> list[float]:
    from concurrent.futures import ThreadPoolExecutor

    from labsky.daemon.device_client import DeviceClient

    async def move(target: float) -> float:
        client = DeviceClient(address)
        try:
            await client.request("set", name="stage.y", value=target)
            return time.time()
        finally:
            client.close()

    found = []
    with ThreadPoolExecutor(1) as other:  # Playwright's sync API owns this thread
        for i in range(moves):
            target = round(0.1 * (i + 1), 1)
            done = other.submit(asyncio.run, move(target)).result()
            shown = f"{target:.4f}"
            page.wait_for_function(f"window.seen['{shown}'] !== undefined")
            seen = page.evaluate(f"window.seen['{shown}']")
            found.append(max(0.0, seen / 1000 - done))
    return found


if __name__ == "__main__":
    main()
