"""Monitoring benchmark: alerts, delay and false alerts of every monitoring rule; update speed.

Accuracy. For each scenario (simulated with :func:`alliance_ts.simulate`) and
seed, every monitoring rule labels the trial session by session
(:func:`alliance_ts.monitor`) and its alerts are scored against the planted
ruptures:

- ``recall``: share of planted ruptures alerted, i.e. an alert *opened* at a
  session from the rupture's first session up to the session before its repair
  (to the end of the course when unresolved);
- ``covered``: share of planted ruptures with an alert open at some session
  of that window, including alerts opened before the rupture began;
- ``delay_mean`` / ``delay_median``: sessions from the rupture's first session
  to that alert;
- ``false_per_100``: alerts opened at sessions outside every planted rupture,
  per 100 such (rupture-free) observed sessions;
- ``false_per_course``: alerts opened per rupture-free client course (clients
  without a planted rupture), and ``false_any``: the share of those courses
  with at least one alert.

``drop`` runs with k from 4 down to 0.5 (``k_repair = min(1, k)``), the
cut-off rule on SRS totals with cut-offs 30 to 38 (36 is ``srs36``). The
``drop`` rule's prior is fitted on a separate reference trial of the same
scenario (another seed), never on the trial it monitors. The look-back rules
are run in monitoring mode (on each prefix) and, as the target, on the full
course (``at.detect``; their recall as :func:`alliance_ts.evaluate` counts it,
starts within one session).

Speed. A :class:`alliance_ts.Monitor` holding N clients x 10 sessions gets one
new session per client (``update``), best of 5; compared with a pandas
``groupby(client).mean()`` of the same batch; the state's memory per client
after 10 and 20 sessions; save and load times.

Writes ``benchmarks/results/monitor.csv`` (accuracy, one row per scenario x
seed x rule x setting), ``monitor.speed.csv``, ``monitor.md`` and
``monitor.png``.

Usage::

    python benchmarks/monitor.py                  # 2 seeds x 400 clients, 100,000 clients for speed
    python benchmarks/monitor.py --clients 200 --seeds 1 --speed-clients 10000
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from speed import timed  # the same timing loop as the speed benchmark (this folder is on sys.path)

import alliance_ts as at

RESULTS = Path(__file__).parent / "results"

_MIXED = {"v": 1.0, "multi": 1.0, "gradual": 1.0, "sustained": 1.0, "several": 1.0}
SCENARIOS = {
    "wai_sr": ("WAI-SR totals, every kind of rupture, 3-6 noise SD", dict(kinds=_MIXED, depth=(3, 6))),
    "wai_sr_long": ("WAI-SR totals, 30-40 sessions, every kind, 3-6 SD",
                    dict(kinds=_MIXED, depth=(3, 6), n_sessions=(30, 40))),
    "srs_092": ("SRS totals, baseline 0.92 of the range (ceiling), every kind, 3-6 SD",
                dict(scale="srs", baseline=0.92, kinds=_MIXED, depth=(3, 6))),
    "srs_095": ("SRS totals, baseline 0.95, baseline SD 0.04 (most sessions 36-40), every kind, 3-6 SD",
                dict(scale="srs", baseline=0.95, baseline_sd=0.04, kinds=_MIXED, depth=(3, 6))),
    "srs_092_missing": ("as srs_092 with 15% missed sessions and 15% dropout",
                        dict(scale="srs", baseline=0.92, kinds=_MIXED, depth=(3, 6), p_missing=0.15,
                             p_dropout=0.15)),
}
DROP_K = [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
CUTOFFS = [30, 32, 34, 35, 36, 37, 38]
LOOKBACK = ["recommended", "stiles2004"]


def score_alerts(alerts: at.Alerts, sim: at.Simulation) -> dict[str, float]:
    """Recall, delay and false alerts of one run against the planted truth."""
    s = alerts.sessions
    truth = sim.truth
    opened = s.loc[s["new"], ["client", "session"]]
    # planted windows: [start, end - 1] when repaired, [start, inf) when unresolved
    start = truth["start"].to_numpy(dtype=float)
    stop = np.where(truth["end"].isna(), np.inf, truth["end"].to_numpy(dtype=float, na_value=np.nan) - 1)
    on = s.loc[s["alert"], ["client", "session"]]
    delays, covered = [], []
    for c, a, b in zip(truth["client"].to_numpy(), start, stop):
        sess = opened.loc[opened["client"] == c, "session"].to_numpy()
        hit = sess[(sess >= a) & (sess <= b)]
        delays.append(hit.min() - a if hit.size else np.nan)
        open_sess = on.loc[on["client"] == c, "session"].to_numpy()
        covered.append(bool(((open_sess >= a) & (open_sess <= b)).any()))
    delays_arr = np.array(delays, dtype=float)
    # rupture-free sessions: observed rows outside every window
    inside = np.zeros(len(s), dtype=bool)
    by_client = truth.groupby("client")
    obs = s["score"].notna().to_numpy()
    s_client = s["client"].to_numpy()
    s_session = s["session"].to_numpy()
    for c, rows in by_client:
        mine = s_client == c
        for a, b in zip(rows["start"].to_numpy(dtype=float),
                        np.where(rows["end"].isna(), np.inf, rows["end"].to_numpy(dtype=float, na_value=np.nan) - 1)):
            inside |= mine & (s_session >= a) & (s_session <= b)
    new = s["new"].to_numpy(dtype=bool)
    free = obs & ~inside
    ruptured = set(truth["client"])
    clean = ~np.isin(s_client, list(ruptured))
    n_clean = len(set(s_client[clean]))
    per_course = new[clean].sum() / n_clean if n_clean else np.nan
    any_alert = (pd.Series(new[clean]).groupby(s_client[clean]).any().mean() if n_clean else np.nan)
    return {
        "n_ruptures": len(truth),
        "recall": float(np.isfinite(delays_arr).mean()) if len(truth) else np.nan,
        "covered": float(np.mean(covered)) if len(truth) else np.nan,
        "delay_mean": float(np.nanmean(delays_arr)) if np.isfinite(delays_arr).any() else np.nan,
        "delay_median": float(np.nanmedian(delays_arr)) if np.isfinite(delays_arr).any() else np.nan,
        "false_per_100": 100.0 * new[free].sum() / max(free.sum(), 1),
        "false_per_course": float(per_course),
        "false_any": float(any_alert),
        "n_free_sessions": int(free.sum()),
        "n_free_courses": n_clean,
    }


def run_accuracy(seeds: list[int], n_clients: int, scenarios: list[str]) -> pd.DataFrame:
    rows = []
    for name in scenarios:
        _, params = SCENARIOS[name]
        scale = params.get("scale", "wai-sr")
        for seed in seeds:
            sim = at.simulate(n_clients, rng=seed, **params)
            reference = at.simulate(n_clients, rng=10_000 + seed, **params).scores
            prior = at.fit_prior(reference, scale=scale)
            runs: list[tuple[str, str, float, at.Alerts]] = []
            for k in DROP_K:
                runs.append(("drop", "k", k, at.monitor(sim.scores, rule="drop", scale=scale, prior=prior, k=k,
                                                     k_repair=min(1.0, k))))
            if scale == "srs":
                for cut in CUTOFFS:
                    rule = "srs36" if cut == 36 else "cutoff"
                    extra = {} if cut == 36 else {"cutoff": float(cut)}
                    runs.append((rule, "cutoff", float(cut), at.monitor(sim.scores, rule=rule, scale=scale, **extra)))
            for rule in LOOKBACK:
                runs.append((f"{rule} (prefix)", "", np.nan, at.monitor(sim.scores, rule=rule, scale=scale)))
            for rule, setting, value, alerts in runs:
                rows.append({"scenario": name, "seed": seed, "rule": rule, "setting": setting, "value": value,
                             **score_alerts(alerts, sim)})
            for rule in LOOKBACK:
                ev = at.evaluate(at.detect(sim.scores, rule=rule, scale=scale), sim)
                rows.append({"scenario": name, "seed": seed, "rule": f"{rule} (full course)", "setting": "",
                             "value": np.nan, "n_ruptures": ev.n_true, "recall": ev.recall,
                             "false_any": ev.false_alarm_rate})
            print(f"{name} seed {seed}: {len(runs)} monitoring runs", flush=True)
    return pd.DataFrame(rows)


def _batch(n: int, session: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"client": np.arange(n, dtype=np.int64), "session": np.full(n, session, dtype=np.int64),
                         "score": np.clip(np.round(rng.normal(37.0, 2.5, n)), 0, 40)})


def _state_bytes(mon: at.Monitor) -> int:
    arrays = sum(v.nbytes for v in mon._arrays.values())
    return int(arrays + mon.clients.memory_usage(deep=True))


def run_speed(n: int, repeat: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for rule, params in (("drop", {"s0": 2.0, "d0": 4.0}), ("srs36", {})):
        mon = at.Monitor(rule, scale="srs", **params)
        for s in range(1, 11):
            mon.update(_batch(n, s, rng))
        bytes10 = _state_bytes(mon)
        batches = [_batch(n, 11 + i, rng) for i in range(repeat + 1)]
        it = iter(batches)
        baseline = timed(lambda b=batches[0]: b.groupby("client")["score"].mean(), repeat)
        t_update = timed(lambda m=mon, i=it: m.update(next(i)), repeat)
        for s in range(11 + repeat + 1, 21):
            mon.update(_batch(n, s, rng))
        bytes20 = _state_bytes(mon)
        with tempfile.TemporaryDirectory() as tmp:
            times = {}
            for ext in ("json", "parquet"):
                path = Path(tmp) / f"state.{ext}"
                times[f"save_{ext}"] = timed(lambda p=path, m=mon: m.save(p), 2)
                times[f"load_{ext}"] = timed(lambda p=path: at.Monitor.load(p), 2)
        whole = pd.concat([_batch(n, s, rng) for s in range(1, 21)], ignore_index=True)
        t_batch = timed(lambda w=whole, r=rule, kw=params: at.monitor(w, rule=r, scale="srs", **kw), 1)
        rows.append({"rule": rule, "clients": n, "update_seconds": t_update, "groupby_seconds": baseline,
                     "update_x_groupby": t_update / baseline, "state_bytes_per_client_10": bytes10 / n,
                     "state_bytes_per_client_20": bytes20 / n, **times, "batch_20_sessions_seconds": t_batch})
        print(f"{rule}: update {t_update:.3f} s for {n:,} clients ({t_update / baseline:.1f}x groupby mean); "
              f"state {bytes10 / n:.0f} -> {bytes20 / n:.0f} bytes/client", flush=True)
    return pd.DataFrame(rows)


def figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(dict.fromkeys(df["scenario"]))
    fig, axes = plt.subplots(2, len(scen), figsize=(3.4 * len(scen), 6.4), squeeze=False)
    mean = df.groupby(["scenario", "rule", "value"], dropna=False, sort=False).mean(numeric_only=True).reset_index()
    styles = {"drop": ("#0072B2", "o-"), "cutoff": ("#D55E00", "s-"), "recommended (prefix)": ("#009E73", "D"),
              "stiles2004 (prefix)": ("#CC79A7", "^")}
    for j, name in enumerate(scen):
        m = mean[mean["scenario"] == name]
        for row_i, metric, label in ((0, "recall", "ruptures alerted (share)"),
                                     (1, "delay_mean", "mean delay (sessions)")):
            ax = axes[row_i, j]
            drop = m[m["rule"] == "drop"].sort_values("value")
            ax.plot(drop["false_per_100"], drop[metric], styles["drop"][1], color=styles["drop"][0], ms=4,
                    label="drop (k = 4 ... 0.5)")
            cut = m[m["rule"].isin(["cutoff", "srs36"])].sort_values("value")
            if len(cut):
                ax.plot(cut["false_per_100"], cut[metric], styles["cutoff"][1], color=styles["cutoff"][0], ms=4,
                        label="cut-off (30 ... 38)")
                srs = cut[cut["rule"] == "srs36"]
                ax.plot(srs["false_per_100"], srs[metric], "s", color="black", ms=7, mfc="none", label="srs36")
            for rule in ("recommended (prefix)", "stiles2004 (prefix)"):
                r = m[m["rule"] == rule]
                ax.plot(r["false_per_100"], r[metric], styles[rule][1], color=styles[rule][0], ms=7, label=rule)
            if metric == "recall":
                for rule, colour in (("recommended (full course)", "#009E73"), ("stiles2004 (full course)", "#CC79A7")):
                    r = m[m["rule"] == rule]
                    if len(r):
                        ax.axhline(float(r["recall"].iloc[0]), color=colour, ls=":", lw=1,
                                   label=f"{rule.split()[0]} on the full course")
                ax.set_title(name, fontsize=10)
                ax.set_ylim(0, 1.02)
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("false alerts per 100 rupture-free sessions", fontsize=8)
            if j == 0:
                ax.set_ylabel(label)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    seen: dict[str, object] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=len(seen), fontsize=8, frameon=False)
    fig.suptitle("Monitoring rules: ruptures alerted and delay against false alerts (mean of seeds)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(df: pd.DataFrame, speed: pd.DataFrame | None, seeds: list[int], n_clients: int,
             seconds: float) -> str:
    mean = df.groupby(["scenario", "rule", "value"], dropna=False, sort=False).mean(numeric_only=True).reset_index()
    lines = [
        "# Monitoring rules on the simulated benchmark",
        "",
        f"{len(seeds)} seeds x {n_clients} clients per scenario (means over seeds); alliance_ts {at.__version__}; "
        f"{seconds:.0f} s. Written by `python benchmarks/monitor.py`. An alert counts for a planted rupture when "
        "it opens at a session from the rupture's first session to the session before its repair (`covered`: an "
        "alert is open at one of those sessions, also one opened before the rupture); delay is in "
        "sessions from the rupture's first session. False alerts: alerts opened outside every planted rupture, "
        "per 100 rupture-free sessions and per rupture-free course. `drop` uses a prior fitted on a separate "
        "reference trial of the same scenario.",
        "",
        "## Default settings",
        "",
        "| scenario | rule | recall | covered | mean delay | median delay | false / 100 sessions | false / course | "
        "courses with a false alert |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    default = mean[((mean["rule"] == "drop") & (mean["value"] == 2.5)) | mean["rule"].isin(
        ["srs36", "recommended (prefix)", "stiles2004 (prefix)", "recommended (full course)",
         "stiles2004 (full course)"])]

    def f(v, fmt="{:.2f}"):
        return "" if pd.isna(v) else fmt.format(v)

    for r in default.itertuples(index=False):
        rule = "drop (k = 2.5)" if r.rule == "drop" else r.rule
        lines.append(f"| {r.scenario} | {rule} | {f(r.recall)} | {f(r.covered)} | {f(r.delay_mean)} | "
                     f"{f(r.delay_median, '{:.0f}')} | "
                     f"{f(r.false_per_100)} | {f(r.false_per_course)} | {f(r.false_any)} |")
    lines += ["", "Full-course rows are `at.detect` on the whole course (look-back; its false-alarm column is the "
              "share of rupture-free clients with an episode, as `at.evaluate` reports it).", "",
              "## Against the SRS cut-off at the same false-alert rate", "",
              "`drop`'s recall interpolated (over k) at the false-alert rate of `srs36` and of each cut-off:", "",
              "| scenario | cut-off | its false / 100 sessions | its recall | drop's recall at that rate | "
              "drop's mean delay there |", "|---|---:|---:|---:|---:|---:|"]
    for name in dict.fromkeys(mean["scenario"]):
        m = mean[mean["scenario"] == name]
        drop = m[m["rule"] == "drop"].sort_values("false_per_100")
        for r in m[m["rule"].isin(["cutoff", "srs36"])].sort_values("value").itertuples(index=False):
            x = drop["false_per_100"].to_numpy()
            inside = x.min() <= r.false_per_100 <= x.max()
            rec = np.interp(r.false_per_100, x, drop["recall"].to_numpy()) if inside else np.nan
            dl = np.interp(r.false_per_100, x, drop["delay_mean"].to_numpy()) if inside else np.nan
            shown = f(rec) if inside else "beyond drop's range"
            lines.append(f"| {name} | {r.value:g} | {r.false_per_100:.2f} | {r.recall:.2f} | {shown} | {f(dl)} |")
    lines += ["", "## drop, every k", "", "| scenario | k | recall | mean delay | false / 100 sessions | "
              "false / course |", "|---|---:|---:|---:|---:|---:|"]
    for r in mean[mean["rule"] == "drop"].itertuples(index=False):
        lines.append(f"| {r.scenario} | {r.value:g} | {f(r.recall)} | {f(r.delay_mean)} | {f(r.false_per_100)} | "
                     f"{f(r.false_per_course)} |")
    if speed is not None:
        lines += ["", "## Update speed and state size", "",
                  f"Machine: {platform.machine()}, Python {sys.version.split()[0]}, numpy {np.__version__}, "
                  f"pandas {pd.__version__}. One new session for each of N clients after 10 sessions, "
                  "best of 5 (validation and the alert table included); the baseline is "
                  "`batch.groupby('client')['score'].mean()` on the same batch. Shared virtual machine: compare "
                  "the ratios.", "",
                  "| rule | clients | update (s) | x groupby mean | bytes per client after 10 / 20 sessions | "
                  "save JSON / Parquet (s) | load JSON / Parquet (s) | at.monitor, 20 sessions (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in speed.itertuples(index=False):
            lines.append(f"| {r.rule} | {r.clients:,} | {r.update_seconds:.3f} | {r.update_x_groupby:.1f} | "
                         f"{r.state_bytes_per_client_10:.0f} / {r.state_bytes_per_client_20:.0f} | "
                         f"{r.save_json:.2f} / {r.save_parquet:.2f} | {r.load_json:.2f} / {r.load_parquet:.2f} | "
                         f"{r.batch_20_sessions_seconds:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=400)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--speed-clients", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--speed-only", action="store_true",
                        help="rerun the speed part only (the accuracy table is read from --out)")
    args = parser.parse_args(argv)
    if args.speed_only:
        df = pd.read_csv(args.out / "monitor.csv")
        speed = run_speed(args.speed_clients)
        speed.to_csv(args.out / "monitor.speed.csv", index=False)
        old = (args.out / "monitor.md").read_text()
        found = re.search(r"seeds x (\d+) clients .*?; (\d+) s\.", old)
        n, seconds = (int(found.group(1)), float(found.group(2))) if found else (0, 0.0)
        seeds = sorted(df["seed"].unique().tolist())
        (args.out / "monitor.md").write_text(markdown(df, speed, seeds, n, seconds))
        figure(df, args.out / "monitor.png")
        return 0
    t0 = time.perf_counter()
    df = run_accuracy(args.seeds, args.clients, args.scenarios)
    seconds = time.perf_counter() - t0
    speed = run_speed(args.speed_clients) if args.speed_clients else None
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "monitor.csv", index=False)
    if speed is not None:
        speed.to_csv(args.out / "monitor.speed.csv", index=False)
    (args.out / "monitor.md").write_text(markdown(df, speed, args.seeds, args.clients, seconds))
    figure(df, args.out / "monitor.png")
    print(f"wrote monitor.csv, monitor.speed.csv, monitor.md and monitor.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
