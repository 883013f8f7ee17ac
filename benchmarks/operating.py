"""Operating curves: every score rule at matched false-alarm rates, with the oracle as reference.

Runs :func:`alliance_ts.benchmark.run_operating` (every scenario in
``alliance_ts.benchmark.SCENARIOS`` but ``no_ruptures`` x every registered
rule that reads scores, its strictness swept over a grid, and the oracle:
``changepoint`` told each client's true noise SD) and writes, under
``benchmarks/results/``:

- ``operating.csv``: one row per scenario x seed x rule x grid point (tidy);
- ``operating.md``: F1 and recall at 1%, 5% and 10% false alarms, F1 at
  each rule's default setting, and F1 relative to the oracle's at 5%;
- ``operating.png``: the curves, one panel per scenario.

Usage::

    python benchmarks/operating.py                 # 2 seeds x 400 clients, under 10 minutes on 2 cores
    python benchmarks/operating.py --seeds 1 2 3 --clients 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alliance_ts.benchmark import SCENARIOS, matched, run_operating, write_operating

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=400)
    parser.add_argument("--scenarios", nargs="+", default=None, choices=[s for s in SCENARIOS if s != "no_ruptures"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    df = run_operating(args.scenarios, seeds=args.seeds, n_clients=args.clients)
    seconds = time.perf_counter() - t0
    write_operating(df, args.out, args.seeds, args.clients, seconds)
    at5 = matched(df, [0.05])
    summary = at5.groupby("rule", sort=False)["f1"].agg(["mean", "count"]).rename(
        columns={"mean": "mean F1 at 5% FA", "count": "scenarios reached"})
    print(summary.round(3).to_string())
    print(f"wrote {args.out}/operating.csv, operating.md and operating.png in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
