"""Change-point engines: the batch engine against a loop of ruptures' Pelt.

In one process and on the same series:

1. exact penalised least squares for many clients (``segment_block``, the
   batch engine) against ``ruptures.Pelt(model="l2", jump=1, min_size=1)``
   run client by client, for 20-, 40- and 100-session courses, with the share
   of clients whose breakpoints agree;
2. ``detect(rule="changepoint")`` on 1,000,000 clients x 20 sessions, with
   peak traced memory (separate, untimed run).

Writes ``benchmarks/results/changepoint_speed.csv`` and ``.md``.

Usage::

    python benchmarks/changepoint_speed.py
    python benchmarks/changepoint_speed.py --pelt-clients 2000 --detect-clients 100000
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_ts as at
from alliance_ts.segment import segment_block

RESULTS = Path(__file__).parent / "results"


def series(n_clients: int, n_sessions: int, seed: int) -> np.ndarray:
    """WAI-SR-like totals: AR(1) noise, a dip or a shift in half of the clients."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 3, (n_clients, n_sessions))
    for j in range(1, n_sessions):
        e[:, j] = 0.3 * e[:, j - 1] + math.sqrt(1 - 0.09) * e[:, j]
    x = rng.normal(45, 5, (n_clients, 1)) + e
    at_ = rng.integers(2, n_sessions - 2, n_clients)
    kind = rng.integers(0, 4, n_clients)
    for i in np.flatnonzero(kind == 1):
        x[i, at_[i]] -= 12
    for i in np.flatnonzero(kind == 2):
        x[i, at_[i]:] -= 10
    return np.clip(np.round(x), 12, 60)


def compare(n_clients: int, n_sessions: int, seed: int = 1) -> dict:
    import ruptures as rpt

    x = series(n_clients, n_sessions, seed)
    pen = 2.0 * 3.0**2 * math.log(n_sessions)  # BIC for noise SD 3
    n = np.full(n_clients, n_sessions)
    t0 = time.perf_counter()
    row, lo, hi = segment_block(x, n, np.full(n_clients, pen), 1)
    t_batch = time.perf_counter() - t0
    order = np.lexsort((hi, row))
    batch = [[] for _ in range(n_clients)]
    for r, h in zip(row[order], hi[order]):
        batch[r].append(int(h))
    t0 = time.perf_counter()
    pelt = [rpt.Pelt(model="l2", jump=1, min_size=1).fit(x[i].reshape(-1,
                                                                      1)).predict(pen=pen) for i in range(n_clients)]
    t_pelt = time.perf_counter() - t0
    agree = float(np.mean([a == b for a, b in zip(batch, pelt)]))
    return dict(
        task=f"segment {n_clients:,} clients x {n_sessions} sessions",
        clients=n_clients, sessions=n_sessions, batch_s=t_batch, pelt_s=t_pelt,
        speedup=t_pelt / t_batch, pelt_ms_per_client=1000 * t_pelt / n_clients, agreement=agree,
    )


def detect_run(n_clients: int) -> dict:
    x = series(n_clients, 20, 7)
    df = pd.DataFrame({
        "client": np.repeat(np.arange(n_clients), 20),
        "session": np.tile(np.arange(1, 21), n_clients),
        "score": x.reshape(-1),
    })
    del x
    at.detect(df.iloc[: 20 * 1000], rule="changepoint")  # warm-up
    t0 = time.perf_counter()
    res = at.detect(df, rule="changepoint")
    seconds = time.perf_counter() - t0
    n_ep = len(res.episodes)
    del res
    tracemalloc.start()
    at.detect(df, rule="changepoint")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(task=f"detect(rule='changepoint'), {n_clients:,} clients x 20 sessions",
                clients=n_clients, sessions=20, detect_s=seconds, peak_mb=peak / 2**20, episodes=n_ep)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pelt-clients", type=int, default=20_000)
    parser.add_argument("--detect-clients", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for n_sessions, clients in ((20, args.pelt_clients), (40, max(args.pelt_clients // 4, 100)),
                                (100, max(args.pelt_clients // 20, 50))):
        r = compare(clients, n_sessions)
        rows.append(r)
        print(f"{r['task']}: batch {r['batch_s']:.3f} s, Pelt loop {r['pelt_s']:.1f} s "
              f"({r['pelt_ms_per_client']:.2f} ms/client): {r['speedup']:.0f}x, same breakpoints {r['agreement']:.2%}")
    d = detect_run(args.detect_clients)
    rows.append(d)
    print(f"{d['task']}: {d['detect_s']:.1f} s, peak {d['peak_mb']:.0f} MB, {d['episodes']:,} episodes")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        pd.DataFrame(rows).to_csv(RESULTS / "changepoint_speed.csv", index=False)
        lines = [
            "# Change-point engines: batch against ruptures' Pelt",
            "",
            f"alliance_ts {at.__version__}, ruptures {__import__('ruptures').__version__}, numpy {np.__version__}, "
            f"Python {sys.version.split()[0]}, {platform.machine()}; one process, same series; "
            "penalty 2 x 3^2 x ln(n) (BIC for noise SD 3), min_size 1, jump 1.",
            "",
            "| task | batch engine (s) | Pelt loop (s) | Pelt ms/client | speed-up | same breakpoints |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows[:-1]:
            lines.append(f"| {r['task']} | {r['batch_s']:.3f} | {r['pelt_s']:.1f} | {r['pelt_ms_per_client']:.2f} | "
                         f"{r['speedup']:.0f}x | {r['agreement']:.2%} |")
        lines += [
            "",
            f"`detect(rule='changepoint')` (penalty 'bic', noise estimated) on {d['clients']:,} clients x 20 "
            f"sessions: {d['detect_s']:.1f} s, peak traced memory {d['peak_mb']:.0f} MB (input excluded), "
            f"{d['episodes']:,} episodes.",
            "",
            "Targets (change-point issue): batch >= 300x faster than the Pelt loop on 20-session "
            "series, at least 100x.",
        ]
        (RESULTS / "changepoint_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
