"""A client process of `labsky ioc redpitaya` (run by test_redpitaya_ioc.py).

`python redpitaya_ioc_client.py PREFIX scope|analyzer` prints `connected` once
connected and then waits for a line on its standard input: the test says `go`
once both clients are connected, so their work overlaps. Then it prints one
JSON line.
"""

import json
import sys

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from labsky.devices.redpitaya import RedPitayaParams, redpitaya
from labsky.devices.redpitaya.plans import network_analyzer


def rendezvous() -> None:
    """Say we are connected; wait for the test's go (both are connected)."""
    print("connected", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("the test did not say go")


def main(prefix: str, role: str) -> None:
    engine = RunEngine({}, call_returns_result=True)
    rp = redpitaya(RedPitayaParams(ioc_prefix=prefix))
    rp.set_name("rp")
    call_in_bluesky_event_loop(rp.connect(timeout=10))
    rendezvous()
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
    main(*sys.argv[1:3])
