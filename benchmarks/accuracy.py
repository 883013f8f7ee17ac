"""Accuracy of every registered rule on the simulated scenario grid.

Runs :func:`alliance_ts.benchmark.run_accuracy` (every scenario in
``alliance_ts.benchmark.SCENARIOS`` x every registered rule and preset x
several seeds) and writes, under ``benchmarks/results/``:

- ``accuracy.csv``: one row per scenario x seed x rule (tidy; a ``rule`` column);
- ``accuracy.md``: mean F1 and false-alarm rate per scenario and rule;
- ``accuracy_f1.png`` and ``accuracy_false_alarms.png``.

The seeds used for the committed results (1, 2, 3) are not the ones the
``recommended`` rule was tuned on (101, 102).

Usage::

    python benchmarks/accuracy.py                 # 3 seeds x 400 clients, about 1 minute
    python benchmarks/accuracy.py --seeds 1 2 3 4 5 --clients 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_ts as at
from alliance_ts.benchmark import SCENARIOS, run_accuracy

RESULTS = Path(__file__).parent / "results"
PUBLISHED = ["stiles2004", "strauss2006", "gumz2012"]


def markdown(df: pd.DataFrame, seeds, n_clients: int, seconds: float) -> str:
    mean = df.groupby(["scenario", "rule"]).mean(numeric_only=True)
    order = [s for s in SCENARIOS if s in set(df["scenario"])]
    rules = list(dict.fromkeys(df["rule"]))
    f1 = mean["f1"].unstack().reindex(order)[rules]
    fa = mean["false_alarm_rate"].unstack().reindex(order)[rules]
    status = mean["status_accuracy"].unstack().reindex(order)[rules]
    prec = mean["precision"].unstack().reindex(order)[rules]
    rec = mean["recall"].unstack().reindex(order)[rules]

    def table(frame, fmt, skip_no_ruptures=False, best="max"):
        head = "| scenario | " + " | ".join(f"`{r}`" for r in frame.columns) + " |"
        lines = [head, "|---|" + "---:|" * len(frame.columns)]
        for scen, row in frame.iterrows():
            if skip_no_ruptures and scen == "no_ruptures":
                continue
            cells = []
            top = row.max() if best == "max" else row.min()
            for r, v in row.items():
                text = "-" if pd.isna(v) else fmt.format(v)
                if not pd.isna(v) and np.isclose(v, top):
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {scen} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    scen_lines = "\n".join(f"- `{s.name}`: {s.description}" for s in SCENARIOS.values() if s.name in order)
    best_pub = f1[PUBLISHED].max(axis=1)
    gap = (f1["recommended"] - best_pub).drop("no_ruptures", errors="ignore") if "recommended" in f1 else None
    parts = [
        "# Accuracy of the detection rules on simulated trials",
        "",
        f"alliance_ts {at.__version__}; {len(seeds)} seeds ({', '.join(map(str, seeds))}) x "
        f"{n_clients} clients per scenario; episodes match when their starts differ by at most "
        f"1 session; mean over seeds. Run time {seconds:.0f} s. Produced by "
        "`python benchmarks/accuracy.py`; every number is in `accuracy.csv`.",
        "",
        "Scenarios (WAI-SR totals unless stated):",
        "",
        scen_lines,
        "",
        "## F1 (episode level; best per scenario in bold)",
        "",
        table(f1, "{:.2f}", skip_no_ruptures=True),
        "",
        "## False-alarm rate (share of clients without a planted episode that get one; lowest in bold)",
        "",
        table(fa, "{:.1%}", best="min"),
        "",
        "## Precision",
        "",
        table(prec, "{:.2f}", skip_no_ruptures=True),
        "",
        "## Recall",
        "",
        table(rec, "{:.2f}", skip_no_ruptures=True),
        "",
        "## Status accuracy (matched episodes with the right repaired / unresolved status)",
        "",
        table(status, "{:.2f}", skip_no_ruptures=True),
    ]
    if gap is not None:
        parts += [
            "",
            "## `recommended` against the best published preset",
            "",
            "| scenario | best published preset | its F1 | `recommended` F1 | difference |",
            "|---|---|---:|---:|---:|",
        ]
        for scen in gap.index:
            name = f1.loc[scen, PUBLISHED].idxmax()
            parts.append(
                f"| {scen} | `{name}` | {best_pub[scen]:.2f} | {f1.loc[scen, 'recommended']:.2f} | {gap[scen]:+.2f} |"
            )
    return "\n".join(parts) + "\n"


def plots(df: pd.DataFrame, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the bench extra installs it
        print("matplotlib not installed: pip install 'alliance_ts[bench]'; skipping plots")
        return
    mean = df.groupby(["scenario", "rule"]).mean(numeric_only=True)
    order = [s for s in SCENARIOS if s in set(df["scenario"]) and s != "no_ruptures"]
    rules = list(dict.fromkeys(df["rule"]))
    f1 = mean["f1"].unstack().reindex(order)[rules]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / len(rules)
    xs = np.arange(len(order))
    for k, rule in enumerate(rules):
        ax.bar(xs + k * width - 0.4 + width / 2, f1[rule], width, label=rule)
    ax.set_xticks(xs, order, rotation=30, ha="right")
    ax.set_ylabel("F1 (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.set_title("Episode-level F1 by scenario and rule")
    ax.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    fig.tight_layout()
    fig.savefig(out / "accuracy_f1.png", dpi=110)
    plt.close(fig)

    fa = mean["false_alarm_rate"].unstack()
    scen = ["no_ruptures", "mixed", "long_courses", "ceiling_srs", "short_courses"]
    scen = [s for s in scen if s in fa.index]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = np.arange(len(rules))
    width = 0.8 / len(scen)
    for k, s in enumerate(scen):
        ax.bar(xs + k * width - 0.4 + width / 2, fa.loc[s, rules], width, label=s)
    ax.axhline(0.05, color="black", lw=1, ls="--")
    ax.text(len(rules) - 0.5, 0.06, "5%", ha="right", fontsize=8)
    ax.set_xticks(xs, rules, rotation=20, ha="right")
    ax.set_ylabel("share of rupture-free clients flagged")
    ax.set_ylim(0, 1)
    ax.set_title("False alarms among clients without a planted episode")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_false_alarms.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--clients", type=int, default=400)
    parser.add_argument("--scenarios", nargs="+", default=None, choices=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    df = run_accuracy(args.scenarios, seeds=args.seeds, n_clients=args.clients)
    seconds = time.perf_counter() - t0
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "accuracy.csv", index=False, float_format="%.6g")
    (out / "accuracy.md").write_text(markdown(df, args.seeds, args.clients, seconds))
    plots(df, out)
    summary = df.groupby("rule")[["f1", "false_alarm_rate"]].mean().sort_values("f1", ascending=False)
    print(summary.round(3).to_string())
    print(f"wrote {out}/accuracy.csv, accuracy.md and plots in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
