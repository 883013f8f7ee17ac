"""The accuracy benchmark: every rule on a grid of simulated scenarios.

:data:`SCENARIOS` names the simulated conditions; :func:`run_accuracy`
labels each scenario's trials with every registered rule and scores the
labels against the planted truth with :func:`~alliance_ts.evaluate`. The
command ``python benchmarks/accuracy.py`` runs it and writes the committed
results.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .detect import detect
from .evaluate import evaluate
from .rules import list_rules
from .simulate import simulate

__all__ = ["SCENARIOS", "Scenario", "markdown", "plots", "rule_settings", "run_accuracy", "write_report"]

PUBLISHED = ["stiles2004", "strauss2006", "gumz2012"]


@dataclass(frozen=True)
class Scenario:
    """A named simulated condition: a description and :func:`simulate` arguments."""

    name: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)


_MIXED = {"v": 1.0, "multi": 1.0, "gradual": 1.0, "sustained": 1.0, "several": 1.0}

#: The scenario grid (every one uses WAI-SR totals unless it says otherwise).
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("clear_v", "one-session V, 5-8 noise SD deep", dict(kinds={"v": 1}, depth=(5, 8))),
        Scenario("subtle_v", "one-session V, 2-3 noise SD deep", dict(kinds={"v": 1}, depth=(2, 3))),
        Scenario("multi_decline", "decline over 2-4 sessions, sudden repair, 4-7 SD",
                 dict(kinds={"multi": 1}, depth=(4, 7))),
        Scenario("gradual_repair", "one-session drop, repair over 2-4 sessions, 4-7 SD",
                 dict(kinds={"gradual": 1}, depth=(4, 7))),
        Scenario("sustained", "drop that never recovers (unresolved), 4-7 SD",
                 dict(kinds={"sustained": 1}, depth=(4, 7))),
        Scenario("several", "2-3 episodes in one course, 4-7 SD", dict(kinds={"several": 1}, depth=(4, 7),
                                                                       n_sessions=(14, 30))),
        Scenario("mixed", "every kind, 3-6 SD (the default simulation)", dict(kinds=_MIXED, depth=(3, 6))),
        Scenario("ceiling_srs", "SRS totals near the 40-point ceiling, every kind, 3-6 SD",
                 dict(scale="srs", baseline=0.9, baseline_sd=0.05, kinds=_MIXED, depth=(3, 6))),
        Scenario("missing_15", "15% missed sessions and 15% dropout, every kind, 3-6 SD",
                 dict(kinds=_MIXED, depth=(3, 6), p_missing=0.15, p_dropout=0.15)),
        Scenario("short_courses", "3-8 sessions, every kind that fits, 4-7 SD",
                 dict(kinds=_MIXED, depth=(4, 7), n_sessions=(3, 8))),
        Scenario("long_courses", "40-100 sessions, every kind, 3-6 SD",
                 dict(kinds=_MIXED, depth=(3, 6), n_sessions=(40, 100))),
        Scenario("no_ruptures", "no planted episode at all (false alarms only)", dict(p_episode=0.0)),
    ]
}


def rule_settings(rules: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Parameters the benchmark passes to each rule (all registered by default).

    ``sudden_loss`` has no default cut-off; the benchmark uses the reliable
    change index with reliability 0.9 (a typical alliance-scale alpha) and
    the SD of the first scores. With ``rules=None`` the list also holds
    ``changepoint_calibrated`` (``changepoint`` with ``penalty="calibrated"``)
    and the rules that read other data than scores, each on what the
    simulator draws for it: ``psq`` on the patient's and the therapist's
    simulated answers (``psq_patient``, ``psq_therapist``), ``observer`` and
    ``observer_significant`` on coder A's simulated codes.
    """
    table = list_rules()
    names = list(table.loc[table["input"] == "scores", "name"]) if rules is None else list(rules)
    settings: dict[str, dict[str, Any]] = {
        name: ({"reliability": 0.9} if name == "sudden_loss" else {}) for name in names}
    if rules is None:
        # the calibrated change-point penalty is an option worth measuring too
        settings["changepoint_calibrated"] = {"rule": "changepoint", "penalty": "calibrated"}
        for rater in ("patient", "therapist"):
            settings[f"psq_{rater}"] = {"rule": "psq", **OTHER_INPUTS["psq"], "pick": rater}
        for name in ("observer", "observer_significant"):
            settings[name] = {"rule": name, **OTHER_INPUTS["observer"], "pick": "A"}
    return settings


#: How the benchmark reads the simulated answers and codes (``Simulation.psq``, ``Simulation.observer``).
OTHER_INPUTS: dict[str, dict[str, Any]] = {
    "psq": {"rater": "rater", "addressed": "addressed"},
    "observer": {"coder": "coder", "resolution": "resolution", "significance": "significance",
                 "resolved": "resolved", "contribution": "contribution"},
}


def _input(settings: Mapping[str, Any]) -> str:
    """What a benchmark entry reads: ``"scores"``, ``"psq"`` or ``"observer"``."""
    if "coder" in settings:
        return "observer"
    return "psq" if "rater" in settings else "scores"


def run_accuracy(
    scenarios: Iterable[str] | None = None,
    rules: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
    *,
    seeds: Iterable[int] = (1, 2, 3),
    n_clients: int = 400,
    margin: int = 1,
) -> pd.DataFrame:
    """Run every rule on every scenario and seed.

    Parameters
    ----------
    scenarios : iterable of str, optional
        Names from :data:`SCENARIOS` (default: all).
    rules : mapping of name -> parameters, or iterable of names, optional
        Default: every registered rule with :func:`rule_settings`.
    seeds : iterable of int
        One simulated trial per seed and scenario.
    n_clients : int
        Clients per trial.
    margin : int
        Start tolerance of the episode matching.

    Returns
    -------
    pandas.DataFrame
        One row per scenario x seed x rule with ``scenario``, ``seed``,
        ``rule``, ``params`` and the metrics of :class:`~alliance_ts.Evaluation`
        (``precision``, ``recall``, ``f1``, ``status_accuracy``, ``kappa``,
        ``false_alarm_rate``, ``start_error``, ``repair_error``, counts) plus
        ``seconds`` spent in :func:`~alliance_ts.detect` and ``input`` (what
        the rule read: ``scores``, ``psq`` answers or ``observer`` codes).
    """
    names = list(SCENARIOS) if scenarios is None else list(scenarios)
    if rules is None:
        settings = rule_settings()
    elif isinstance(rules, Mapping):
        settings = {k: dict(v) for k, v in rules.items()}
    else:
        settings = rule_settings(rules)
    rows = []
    kinds = {rule: _input(params) for rule, params in settings.items()}
    for name in names:
        scenario = SCENARIOS[name]
        scale = scenario.params.get("scale", "wai-sr")
        for seed in seeds:
            # the answers and codes come from streams of their own: the scores are the same either way
            sim = simulate(n_clients, rng=seed, psq="psq" in kinds.values(), observer="observer" in kinds.values(),
                           **scenario.params)
            for rule, params in settings.items():
                rule_name = params.get("rule", rule)
                kwargs = {k: v for k, v in params.items() if k not in ("rule", "pick")}
                kind = kinds[rule]
                t0 = time.perf_counter()
                if kind == "scores":
                    res = detect(sim.scores, rule=rule_name, scale=scale, **kwargs)
                else:
                    res = detect(sim.psq if kind == "psq" else sim.observer, rule=rule_name, **kwargs)
                    res = res.for_rater(params["pick"])
                seconds = time.perf_counter() - t0
                m = evaluate(res, sim, margin=margin)
                shown = {k: v for k, v in kwargs.items() if kind == "scores" or k not in OTHER_INPUTS[kind]}
                row = {"scenario": name, "seed": seed, "rule": rule, "input": kind,
                       "params": ", ".join(f"{k}={v!r}" for k, v in shown.items())}
                row.update({str(k): v for k, v in m.to_series().to_dict().items()})
                row["seconds"] = seconds
                rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, seeds, n_clients: int, seconds: float) -> str:
    """The Markdown report of a :func:`run_accuracy` table."""
    other = df[df["input"] != "scores"] if "input" in df else df.iloc[:0]
    df = df[df["input"] == "scores"] if "input" in df else df
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
            for _r, v in row.items():
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
        f"alliance_ts {__version__}; {len(seeds)} seeds ({', '.join(map(str, seeds))}) x "
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
    if len(other):
        parts += _other_inputs(other, order, table)
    return "\n".join(parts) + "\n"


def _other_inputs(other: pd.DataFrame, order: list[str], table: Any) -> list[str]:
    """The section on the rules that read simulated questionnaire answers and observer codes."""
    mean = other.groupby(["scenario", "rule"]).mean(numeric_only=True)
    rules = list(dict.fromkeys(other["rule"]))
    out = [
        "",
        "## Self-report and observer rules on simulated answers and codes",
        "",
        "These rules do not read the scores: `psq` reads the simulated Post-Session Questionnaire answers of the "
        "patient (`psq_patient`) or the therapist (`psq_therapist`), `observer` and `observer_significant` the "
        "simulated 3RS-style codes of coder A (`alliance_ts.simulate(psq=True, observer=True)`). How often those "
        "answers and codes report a planted rupture, or one that is not there, is set by the simulator (its "
        "docstring gives the numbers, all the library's choices), so these rows measure the rules' episode "
        "construction on data of a known quality, not how well patients, therapists or observers see ruptures. "
        "Every planted rupture, whatever its depth in scores, is equally visible to them, which is why they do "
        "not depend on the scenario's depth. `observer` counts every coded marker (background markers of low "
        "significance, at .01 per segment and type, make most clients 'ruptured'); `observer_significant` only "
        "sessions rated 3+ of 5 in significance.",
        "",
        "### F1",
        "",
        table(mean["f1"].unstack().reindex(order)[rules], "{:.2f}", skip_no_ruptures=True),
        "",
        "### False-alarm rate",
        "",
        table(mean["false_alarm_rate"].unstack().reindex(order)[rules], "{:.1%}", best="min"),
        "",
        "### Recall",
        "",
        table(mean["recall"].unstack().reindex(order)[rules], "{:.2f}", skip_no_ruptures=True),
    ]
    return out


def plots(df: pd.DataFrame, out: Path) -> None:
    """Bar charts of F1 and false alarms (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the bench extra installs it
        print("matplotlib not installed: pip install 'alliance_ts[bench]'; skipping plots")
        return
    df = df[df["input"] == "scores"] if "input" in df else df  # the figures compare the score rules
    mean = df.groupby(["scenario", "rule"]).mean(numeric_only=True)
    order = [s for s in SCENARIOS if s in set(df["scenario"]) and s != "no_ruptures"]
    rules = list(dict.fromkeys(df["rule"]))
    if order:
        _plot_f1(plt, mean["f1"].unstack().reindex(order)[rules], order, rules, out)
    fa = mean["false_alarm_rate"].unstack()
    scen = ["no_ruptures", "mixed", "long_courses", "ceiling_srs", "short_courses"]
    scen = [s for s in scen if s in fa.index] or list(fa.index)  # a small grid: what was run
    _plot_false_alarms(plt, fa, scen, rules, out)


def _plot_f1(plt, f1: pd.DataFrame, order: list[str], rules: list[str], out: Path) -> None:
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


def _plot_false_alarms(plt, fa: pd.DataFrame, scen: list[str], rules: list[str], out: Path) -> None:
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


def write_report(df: pd.DataFrame, out: str | Path, seeds, n_clients: int, seconds: float) -> None:
    """Write ``accuracy.csv``, ``accuracy.md`` and the PNG plots into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "accuracy.csv", index=False, float_format="%.6g")
    (out / "accuracy.md").write_text(markdown(df, seeds, n_clients, seconds))
    plots(df, out)
