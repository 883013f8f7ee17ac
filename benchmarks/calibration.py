"""False alarms of ``scan`` by course length: is its stated level kept from 3 to 300 sessions?

Simulates rupture-free courses (stationary AR(1) noise with autocorrelation
0.3 around a level, scores rounded to whole points) of 3 to 300 observed
sessions, with every client's noise SD the same or spread (log-normal, SD of
the logarithm 0.25, as in ``alliance_ts.simulate``), labels each set of
courses with ``scan`` (everything estimated from the data) at several
``alpha``, and reports the share of clients flagged next to ``alpha``.
``recommended`` is run at its own setting for comparison.

Writes ``benchmarks/results/calibration.csv`` and ``calibration.md``.

Usage::

    python benchmarks/calibration.py                  # 2,000 clients per length, about 2 minutes
    python benchmarks/calibration.py --clients 500
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_ts as at

RESULTS = Path(__file__).parent / "results"
LENGTHS = (3, 5, 8, 12, 20, 30, 50, 100, 300)
ALPHAS = (0.01, 0.05, 0.1)
PHI = 0.3


def courses(n_clients: int, k: int, spread: float, seed: int) -> pd.DataFrame:
    """``n_clients`` rupture-free AR(1) courses of ``k`` sessions (WAI-SR-like totals, whole points)."""
    g = np.random.default_rng([seed, k, int(spread * 100)])
    sd = 3.0 * np.exp(g.normal(0.0, spread, n_clients))
    e = g.standard_normal((n_clients, k))
    x = np.empty((n_clients, k))
    x[:, 0] = e[:, 0]
    for j in range(1, k):
        x[:, j] = PHI * x[:, j - 1] + math.sqrt(1 - PHI * PHI) * e[:, j]
    level = g.normal(42.0, 5.0, n_clients)
    scores = np.clip(np.round(level[:, None] + sd[:, None] * x), 12, 60)
    return pd.DataFrame({"client": np.repeat(np.arange(n_clients), k),
                         "session": np.tile(np.arange(1, k + 1), n_clients), "score": scores.ravel()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    for spread in (0.0, 0.25):
        for k in LENGTHS:
            df = courses(args.clients, k, spread, args.seed)
            for rule, alpha in [("scan", a) for a in ALPHAS] + [("recommended", None)]:
                kw = {} if alpha is None else {"alpha": alpha}
                res = at.detect(df, rule=rule, scale="wai-sr", **kw)
                flagged = float((res.clients["n_ruptures"].fillna(0) > 0).mean())
                rows.append(dict(rule=rule, alpha=alpha, sessions=k, noise_spread=spread,
                                 clients=args.clients, flagged=flagged))
                print(f"spread {spread} k {k:>3} {rule:<11} alpha {alpha}: {flagged:.3f}", flush=True)
    seconds = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "calibration.csv", index=False, float_format="%.6g")
    (args.out / "calibration.md").write_text(markdown(table, args.clients, seconds))
    print(f"wrote {args.out}/calibration.csv and calibration.md in {seconds:.0f} s")
    return 0


def markdown(table: pd.DataFrame, n_clients: int, seconds: float) -> str:
    se = math.sqrt(0.05 * 0.95 / n_clients)
    lines = [
        "# False alarms of `scan` by course length",
        "",
        f"Rupture-free courses of 3 to 300 observed sessions, {n_clients:,} clients per length: stationary AR(1) "
        f"noise (autocorrelation {PHI}) around a level, SD 3 points, scores rounded to whole points and kept within "
        "12-60; every client's noise SD the same, or spread log-normally (SD of its logarithm 0.25, as in "
        "`alliance_ts.simulate`). Each set is labelled on its own, everything estimated from the data. The table "
        "gives the share of clients flagged (at least one episode); `scan` should flag about `alpha` of them at "
        f"every length (binomial SE at 5%: {se:.1%}). Produced by `python benchmarks/calibration.py` in "
        f"{seconds:.0f} s; every number is in `calibration.csv`.",
        "",
    ]
    for spread, title in ((0.0, "Same noise SD for every client"), (0.25, "Noise SD spread between clients")):
        sub = table[table["noise_spread"] == spread]
        lines += [f"## {title}", "", "| sessions | " + " | ".join(
            [f"`scan` alpha {a:g}" for a in ALPHAS] + ["`recommended`"]) + " |",
            "|---:|" + "---:|" * (len(ALPHAS) + 1)]
        for k in LENGTHS:
            cells = []
            for a in ALPHAS:
                v = sub[(sub["rule"] == "scan") & (sub["alpha"] == a) & (sub["sessions"] == k)]["flagged"]
                cells.append(f"{float(v.iloc[0]):.1%}")
            v = sub[(sub["rule"] == "recommended") & (sub["sessions"] == k)]["flagged"]
            cells.append(f"{float(v.iloc[0]):.1%}")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
