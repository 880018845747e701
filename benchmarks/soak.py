"""Kill -9 soak of the pipeline: `python benchmarks/soak.py --iterations 100`.

Alternates the two modes (the session killed alone, and session plus storage
worker killed together) and prints, per mode, events published, stored
without recovery and stored after `labsky recover`, and how many were lost
(the goal is 0).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from labsky.testing.soak import SoakResult, soak_iteration

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    totals: dict[str, list[SoakResult]] = defaultdict(list)
    for i in range(options.iterations):
        mode = ("session", "everything")[i % 2]
        with tempfile.TemporaryDirectory() as tmp:
            result = soak_iteration(Path(tmp), REPO / "devices" / "sim.yaml", mode, rng)
        totals[mode].append(result)
        print(
            f"{i + 1:4d} {mode:<10} published {result.published:6d}  stored "
            f"{result.stored_without_recover:6d}  after recover "
            f"{result.stored_after_recover:6d}  lost {result.lost}",
            flush=True,
        )
    print()
    for mode, results in totals.items():
        published = sum(r.published for r in results)
        stored = sum(r.stored_without_recover for r in results)
        recovered = sum(r.stored_after_recover for r in results)
        lost = sum(r.lost for r in results)
        print(
            f"{mode:<10} {len(results)} kills: {published} events published, "
            f"{stored} stored without recover ({stored / max(1, published):.4f}), "
            f"{recovered} after recover; lost {lost}"
        )


if __name__ == "__main__":
    main()
