"""A client process of `labsky ioc redpitaya` (run by test_redpitaya_ioc.py).

`python redpitaya_ioc_client.py PREFIX scope|analyzer RENDEZVOUS` prints one
JSON line; each client waits (after connecting) until both have touched a file
in the RENDEZVOUS folder, so their work overlaps.
"""

import json
import sys
import time
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from labsky.devices.redpitaya import RedPitayaParams, redpitaya
from labsky.devices.redpitaya.plans import network_analyzer


def rendezvous(folder: Path, role: str) -> None:
    (folder / role).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)


def main(prefix: str, role: str, folder: str) -> None:
    engine = RunEngine({}, call_returns_result=True)
    rp = redpitaya(RedPitayaParams(ioc_prefix=prefix))
    rp.set_name("rp")
    call_in_bluesky_event_loop(rp.connect(timeout=10))
    rendezvous(Path(folder), role)
    documents: list[tuple[str, dict]] = []
    out: dict = {"role": role}
    if role == "scope":
        amplitudes = []
        for amplitude in (0.1, 0.2, 0.3):  # move asg2 while the other sweeps asg1
            engine(bps.mv(rp.asg2.amplitude, amplitude))
            amplitudes.append(
                call_in_bluesky_event_loop(rp.asg2.amplitude.value.get_value())
            )
            engine(bp.count([rp.scope], 20), lambda n, d: documents.append((n, d)))
        events = [d for n, d in documents if n == "event"]
        out["sequences"] = [e["data"]["rp-scope-sequence"] for e in events]
        out["shapes"] = sorted({len(e["data"]["rp-scope-ch1"]) for e in events})
        out["amplitudes"] = amplitudes
    else:
        sequences = []

        def seen(name: str, doc: dict) -> None:
            if name == "event" and rp.iq.last_trace is not None:
                sequences.append(rp.iq.last_trace.sequence)

        result = engine(
            network_analyzer(rp.iq, 1.48e6, 1.52e6, 21, amplitude=0.5), seen
        )
        out["fit"] = result.plan_result
        out["sequences"] = sequences
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
