"""The accuracy benchmark and the operating curves: every rule on a grid of simulated scenarios.

:data:`SCENARIOS` names the simulated conditions; :func:`run_accuracy`
labels each scenario's trials with every registered rule (and the
:func:`oracle_detect` reference) and scores the labels against the planted
truth with :func:`~alliance_ts.evaluate`. :func:`run_operating` sweeps each
score rule's strictness so that the rules can be compared at the same
false-alarm rate (:func:`matched`). The commands
``python benchmarks/accuracy.py`` and ``python benchmarks/operating.py`` run
them and write the committed results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .detect import detect
from .evaluate import evaluate
from .result import Detection
from .rules import get_rule, list_rules
from .simulate import Simulation, simulate

__all__ = [
    "ORACLE",
    "SCENARIOS",
    "SWEEPS",
    "TARGETS",
    "Scenario",
    "Sweep",
    "at_default",
    "default_sweep",
    "markdown",
    "matched",
    "operating_markdown",
    "operating_plot",
    "operating_rules",
    "oracle_detect",
    "plots",
    "rule_settings",
    "run_accuracy",
    "run_operating",
    "write_operating",
    "write_report",
]

PUBLISHED = ["stiles2004", "strauss2006", "gumz2012"]


@dataclass(frozen=True)
class Scenario:
    """A named simulated condition: a description and :func:`simulate` arguments.

    Attributes
    ----------
    name, description : str
        How the reports name and describe it.
    params : dict
        Keyword arguments of :func:`~alliance_ts.simulate`.
    n_clients : int or None
        At most this many clients per trial, whatever the benchmark's
        ``n_clients`` (for courses so long that the exact change-point
        segmentation, quadratic in the course length, would dominate the run
        time); None: the benchmark's number.
    """

    name: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    n_clients: int | None = None

    def clients(self, n_clients: int) -> int:
        """Clients per trial when the benchmark asks for ``n_clients``."""
        return n_clients if self.n_clients is None else min(int(n_clients), self.n_clients)


_MIXED = {"v": 1.0, "multi": 1.0, "gradual": 1.0, "sustained": 1.0, "several": 1.0}
# courses that never fall: a U-shaped course would pull scores off the ceiling
_NOT_U = {"flat": 1.0, "linear": 1.0, "log": 1.0}

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
        Scenario("ceiling_dip",
                 "SRS totals at the 40-point ceiling: every baseline exactly 40 and session noise of 0.1-0.4 "
                 "points before rounding, so about 90% of rupture-free courses are 40 at every session; "
                 "one-session V, 50-100 noise SD deep (7-33 points, median 14)",
                 dict(scale="srs", baseline=1.0, baseline_sd=0.0, noise_sd=0.005, courses=_NOT_U, kinds={"v": 1},
                      depth=(50, 100))),
        Scenario("long_dip", "2,000-3,000 sessions, one-session V, 5.5-6.5 noise SD deep",
                 dict(kinds={"v": 1}, depth=(5.5, 6.5), n_sessions=(2000, 3000)), n_clients=40),
        Scenario("no_ruptures", "no planted episode at all (false alarms only)", dict(p_episode=0.0)),
    ]
}

#: The name of the oracle's benchmark entry (see :func:`oracle_detect`).
ORACLE = "oracle"
#: The oracle's entry in :func:`rule_settings`.
_ORACLE_SETTINGS: dict[str, Any] = {"rule": "changepoint", "true_noise": True}
#: Weight of the given noise SD in the oracle's moderated noise SD, in degrees of freedom: so large that every
#: client's noise SD is the given one (to about 1e-8, relative) whatever its own scores.
ORACLE_PRIOR_DF = 1e12
#: What the entries read (the ``input`` column): the scores, the answers, the codes, or the scores and the truth.
_INPUT = {"scores": "scores", "psq": "psq", "observer": "observer", "oracle": "scores+noise_sd"}
#: Inputs compared in the score tables and figures.
_SCORE_INPUTS = ("scores", "scores+noise_sd")


def oracle_detect(sim: Simulation, **params: Any) -> Detection:
    r"""``changepoint`` told each client's true noise SD: the reference for what is achievable.

    Each client's scores are divided by the SD of its simulated session noise
    (``sim.clients["noise_sd"]``, the marginal SD of the AR(1) noise, in
    score units), and the ``changepoint`` rule runs on the result with
    ``noise`` = :math:`\sqrt{1 - ar}` (what its noise estimate, the SD of
    lag-1 differences over :math:`\sqrt 2`, is for AR(1) noise of SD 1 and
    autocorrelation ``ar``) and ``prior_df`` = :data:`ORACLE_PRIOR_DF`, so
    that every client's noise SD is that value, whatever its own scores. No
    real rule knows the noise SD; the oracle shows what exact penalised
    segmentation achieves when the noise is known.

    Parameters
    ----------
    sim : Simulation
        A :func:`~alliance_ts.simulate` result.
    **params
        Other ``changepoint`` parameters (``penalty_scale``, ``min_drop``,
        ...); ``noise`` and ``prior_df`` are the oracle's.

    Returns
    -------
    Detection
        Episodes and sessions in the user's session numbers (what
        :func:`~alliance_ts.evaluate` compares); scores, ``pre`` levels and
        the ``noise`` and ``threshold`` columns are in units of each client's
        noise SD.

    Raises
    ------
    ValueError
        If ``noise`` or ``prior_df`` is given.

    Examples
    --------
    >>> import alliance_ts as at
    >>> from alliance_ts.benchmark import oracle_detect
    >>> sim = at.simulate(20, rng=1)
    >>> res = oracle_detect(sim)
    >>> bool(np.allclose(res.clients["noise"], np.sqrt(1 - 0.3)))
    True
    """
    fixed = {"noise", "prior_df"} & set(params)
    if fixed:
        raise ValueError(f"the oracle sets {', '.join(sorted(fixed))} itself; give other changepoint parameters")
    ar = float(sim.params.get("ar", 0.3))
    sd = sim.clients.set_index("client")["noise_sd"]
    scores = sim.scores.assign(score=sim.scores["score"].to_numpy() / sim.scores["client"].map(sd).to_numpy())
    return detect(scores, rule="changepoint", scale=None, check_codes=False, noise=math.sqrt(1.0 - ar),
                  prior_df=ORACLE_PRIOR_DF, **params)


def rule_settings(rules: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Parameters the benchmark passes to each rule (all registered by default).

    ``sudden_loss`` has no default cut-off; the benchmark uses the reliable
    change index with reliability 0.9 (a typical alliance-scale alpha) and
    the SD of the first scores. The name ``"oracle"`` is the
    :func:`oracle_detect` reference. With ``rules=None`` the list also holds
    ``changepoint_calibrated`` (``changepoint`` with ``penalty="calibrated"``),
    the oracle, and the rules that read other data than scores, each on what
    the simulator draws for it: ``psq`` on the patient's and the therapist's
    simulated answers (``psq_patient``, ``psq_therapist``), ``observer`` and
    ``observer_significant`` on coder A's simulated codes.
    """
    table = list_rules()
    names = list(table.loc[table["input"] == "scores", "name"]) if rules is None else list(rules)
    settings: dict[str, dict[str, Any]] = {
        name: (dict(_ORACLE_SETTINGS) if name == ORACLE else {"reliability": 0.9} if name == "sudden_loss" else {})
        for name in names}
    if rules is None:
        # the calibrated change-point penalty is an option worth measuring too
        settings["changepoint_calibrated"] = {"rule": "changepoint", "penalty": "calibrated"}
        settings[ORACLE] = dict(_ORACLE_SETTINGS)
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
    """What a benchmark entry reads: ``"scores"``, ``"psq"``, ``"observer"`` or ``"oracle"`` (scores and truth)."""
    if settings.get("true_noise"):
        return "oracle"
    if "coder" in settings:
        return "observer"
    return "psq" if "rater" in settings else "scores"


def _run_entry(sim: Simulation, scale: Any, name: str, params: Mapping[str, Any]) -> tuple[Detection, str, float]:
    """One benchmark entry on one trial: the detection, the ``params`` text and the seconds it took."""
    kind = _input(params)
    rule_name = params.get("rule", name)
    kwargs = {k: v for k, v in params.items() if k not in ("rule", "pick", "true_noise")}
    t0 = time.perf_counter()
    if kind == "scores":
        res = detect(sim.scores, rule=rule_name, scale=scale, **kwargs)
    elif kind == "oracle":
        res = oracle_detect(sim, **kwargs)
    else:
        res = detect(sim.psq if kind == "psq" else sim.observer, rule=rule_name, **kwargs)
        res = res.for_rater(params["pick"])
    seconds = time.perf_counter() - t0
    shown = {k: v for k, v in kwargs.items() if kind in ("scores", "oracle") or k not in OTHER_INPUTS[kind]}
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    if kind == "oracle":
        text = ", ".join(t for t in ("true noise SD", text) if t)
    return res, text, seconds


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
        Default: every registered rule with :func:`rule_settings`, and the
        ``"oracle"`` (:func:`oracle_detect`).
    seeds : iterable of int
        One simulated trial per seed and scenario.
    n_clients : int
        Clients per trial (at most the scenario's ``n_clients`` where it
        sets one).
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
        the rule read: ``scores``, ``psq`` answers, ``observer`` codes, or
        for the oracle ``scores+noise_sd``: the scores and each client's true
        noise SD).
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
            sim = simulate(scenario.clients(n_clients), rng=seed, psq="psq" in kinds.values(),
                           observer="observer" in kinds.values(), **scenario.params)
            for rule, params in settings.items():
                res, shown, seconds = _run_entry(sim, scale, rule, params)
                m = evaluate(res, sim, margin=margin)
                row = {"scenario": name, "seed": seed, "rule": rule, "input": _INPUT[kinds[rule]], "params": shown}
                row.update({str(k): v for k, v in m.to_series().to_dict().items()})
                row["seconds"] = seconds
                rows.append(row)
    return pd.DataFrame(rows)


def _clients_note(order: Iterable[str], n_clients: int) -> str:
    """`` (`long_dip`: 40)`` for the scenarios that cap the number of clients."""
    capped = [f"`{s}`: {SCENARIOS[s].clients(n_clients)}" for s in order
              if s in SCENARIOS and SCENARIOS[s].clients(n_clients) != n_clients]
    return f" ({'; '.join(capped)})" if capped else ""


def _table(frame: pd.DataFrame, fmt: str, skip_no_ruptures: bool = False, best: str | None = "max") -> str:
    """A Markdown table of scenarios x rules; the best rule per row in bold (never the oracle)."""
    head = "| scenario | " + " | ".join(f"`{r}`" for r in frame.columns) + " |"
    lines = [head, "|---|" + "---:|" * len(frame.columns)]
    for scen, row in frame.iterrows():
        if skip_no_ruptures and scen == "no_ruptures":
            continue
        cells = []
        rivals = row.drop(ORACLE, errors="ignore")
        top = rivals.max() if best == "max" else rivals.min() if best == "min" else np.nan
        for r, v in row.items():
            text = "-" if pd.isna(v) else fmt.format(v)
            if best is not None and r != ORACLE and not pd.isna(v) and np.isclose(v, top):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {scen} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(df: pd.DataFrame, seeds, n_clients: int, seconds: float) -> str:
    """The Markdown report of a :func:`run_accuracy` table."""
    scores = df["input"].isin(_SCORE_INPUTS) if "input" in df else pd.Series(True, index=df.index)
    other = df[~scores]
    df = df[scores]
    mean = df.groupby(["scenario", "rule"]).mean(numeric_only=True)
    order = [s for s in SCENARIOS if s in set(df["scenario"])]
    rules = list(dict.fromkeys(df["rule"]))
    f1 = mean["f1"].unstack().reindex(order)[rules]
    fa = mean["false_alarm_rate"].unstack().reindex(order)[rules]
    status = mean["status_accuracy"].unstack().reindex(order)[rules]
    prec = mean["precision"].unstack().reindex(order)[rules]
    rec = mean["recall"].unstack().reindex(order)[rules]
    table = _table

    scen_lines = "\n".join(f"- `{s.name}`: {s.description}" for s in SCENARIOS.values() if s.name in order)
    best_pub = f1[PUBLISHED].max(axis=1)
    gap = (f1["recommended"] - best_pub).drop("no_ruptures", errors="ignore") if "recommended" in f1 else None
    oracle_note = []
    if ORACLE in rules:
        oracle_note = [
            "",
            f"`{ORACLE}` is not a rule but a reference: `changepoint` told each client's true noise SD, which "
            "no real rule knows (`alliance_ts.benchmark.oracle_detect`; see `operating.md`). It is never in bold.",
        ]
    parts = [
        "# Accuracy of the detection rules on simulated trials",
        "",
        f"alliance_ts {__version__}; {len(seeds)} seeds ({', '.join(map(str, seeds))}) x "
        f"{n_clients} clients per scenario{_clients_note(order, n_clients)}; episodes match when their starts "
        f"differ by at most 1 session; mean over seeds. Run time {seconds:.0f} s. Produced by "
        "`python benchmarks/accuracy.py`; every number is in `accuracy.csv`.",
        "",
        "Scenarios (WAI-SR totals unless stated):",
        "",
        scen_lines,
        *oracle_note,
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
    df = df[df["input"].isin(_SCORE_INPUTS)] if "input" in df else df  # the figures compare the score rules
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
        style = {"color": "black"} if rule == ORACLE else {}  # the reference stands apart from the rules
        ax.bar(xs + k * width - 0.4 + width / 2, f1[rule], width, label=rule, **style)
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


# --------------------------------------------------------------------------
# operating curves: the rules at matched false-alarm rates

#: False-alarm rates at which :func:`matched` reads each curve.
TARGETS = (0.01, 0.05, 0.1)


@dataclass(frozen=True)
class Sweep:
    """How a rule's operating curve is drawn: the parameter swept, its values, and what else is set.

    Attributes
    ----------
    param : str
        The parameter swept (the ``param`` column of :func:`run_operating`).
    values : tuple of float
        Its values, one curve point each.
    fixed : dict
        Other parameters set at every point (they replace the rule's
        benchmark setting, e.g. ``sudden_loss``'s reliability).
    linked : dict of name -> (coefficient, power)
        Parameters set from the swept value as ``coefficient * value ** power``
        at every point.

    Examples
    --------
    >>> Sweep("penalty_scale", (1.0, 4.0), linked={"min_drop": (3.0, 0.5)}).settings(4.0)
    {'penalty_scale': 4.0, 'min_drop': 6.0}
    """

    param: str
    values: tuple[float, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    linked: dict[str, tuple[float, float]] = field(default_factory=dict)

    def settings(self, value: float) -> dict[str, Any]:
        """The parameters of the curve point at ``value``."""
        out = dict(self.fixed)
        out[self.param] = float(value)
        for name, (coefficient, power) in self.linked.items():
            out[name] = float(coefficient * float(value) ** power)
        return out

    def describe(self) -> str:
        """The sweep in words, for the reports."""
        values = ", ".join(f"{v:g}" for v in self.values)
        text = f"`{self.param}` in {values}"
        for name, (coefficient, power) in self.linked.items():
            text += f"; `{name}` = {coefficient:g} x {self.param}" + ("" if power == 1 else f"^{power:g}")
        for name, value in self.fixed.items():
            text += f"; `{name}={value!r}`"
        return text


def _geom(low: float, high: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced values from ``low`` to ``high``, to 3 significant digits."""
    return tuple(float(f"{v:.3g}") for v in np.geomspace(low, high, n))


# changepoint and the oracle: the BIC multiple and the least fall grow together, as if the noise SD were
# sqrt(penalty_scale) times larger (the penalty is in squared noise SDs, the fall in noise SDs)
_CHANGEPOINT = Sweep("penalty_scale", _geom(0.5, 5.0, 12), linked={"min_drop": (3.0, 0.5)})
_ALPHA = Sweep("alpha", _geom(0.001, 0.5, 13))

#: The operating curve of each rule and preset of the library, and the oracle's. A rule without an entry
#: gets one from its declared strictness (:func:`default_sweep`).
SWEEPS: dict[str, Sweep] = {
    "recommended": _ALPHA,
    "robust": _ALPHA,
    "vshape": Sweep("k", _geom(1.5, 7.0, 13)),
    "gumz2012": Sweep("k", _geom(1.5, 7.0, 13)),
    "stiles2004": Sweep("k", _geom(1.6, 5.0, 12)),
    "strauss2006": Sweep("k", _geom(1.6, 5.0, 12)),
    # criterion 2 (25% of the pre score) is off: with it on, it binds at every cut-off below about 11
    # WAI-SR points and the curve does not move
    "sudden_loss": Sweep("cutoff", _geom(2.5, 20.0, 12), fixed={"reliability": None, "pct": None}),
    "changepoint": _CHANGEPOINT,
    ORACLE: _CHANGEPOINT,
}


def default_sweep(name: str) -> Sweep:
    """The operating curve of rule ``name``: its :data:`SWEEPS` entry, else one made from its strictness.

    A registered rule without an entry sweeps the parameter its class
    declares as ``strictness``: a parameter that makes it stricter when
    smaller and defaults to a value in (0, 1) (a false-alarm ``alpha``) over
    12 log-spaced values from 0.002 to 0.3; any other positive parameter
    from a third of its default to three times it.

    Raises
    ------
    UnknownRuleError
        If no rule has that name.
    ValueError
        If the rule declares no strictness parameter with a positive default.
    """
    if name in SWEEPS:
        return SWEEPS[name]
    spec = get_rule(name)
    strictness = spec.cls.strictness
    if strictness is None:
        raise ValueError(f"rule {name!r} declares no strictness parameter; give its curve, "
                         f"e.g. grids={{{name!r}: ('param', [0.1, 0.2, 0.5])}}")
    param, direction = (strictness, "up") if isinstance(strictness, str) else strictness
    default = spec.parameters().get(param)
    if not isinstance(default, (int, float)) or isinstance(default, bool) or not default > 0:
        raise ValueError(f"rule {name!r}: its strictness parameter {param!r} has no positive default "
                         f"({default!r}); give its curve, e.g. grids={{{name!r}: ({param!r}, [...])}}")
    if direction == "down" and 0 < default < 1:
        return Sweep(param, _geom(0.002, 0.3, 12))
    return Sweep(param, _geom(default / 3, default * 3, 12))


def operating_rules() -> list[str]:
    """Every registered rule that reads scores, and the oracle: the default of :func:`run_operating`."""
    table = list_rules()
    return [*table.loc[table["input"] == "scores", "name"], ORACLE]


def _sweep_of(name: str, grids: Mapping[str, Any] | None) -> Sweep:
    given = (grids or {}).get(name)
    if given is None:
        return default_sweep(name)
    if isinstance(given, Sweep):
        return given
    param, values = given
    return Sweep(str(param), tuple(float(v) for v in values))


def run_operating(
    scenarios: Iterable[str] | None = None,
    rules: Iterable[str] | None = None,
    *,
    seeds: Iterable[int] = (1, 2),
    n_clients: int = 400,
    grids: Mapping[str, Sweep | tuple[str, Sequence[float]]] | None = None,
    margin: int = 1,
) -> pd.DataFrame:
    """Each rule's operating curve: its strictness swept over a grid, on every scenario and seed.

    Parameters
    ----------
    scenarios : iterable of str, optional
        Names from :data:`SCENARIOS` (default: all but ``no_ruptures``, which
        has no rupture to find).
    rules : iterable of str, optional
        Registered rule names and ``"oracle"`` (:func:`oracle_detect`).
        Default: :func:`operating_rules`, every registered rule that reads
        scores and the oracle.
    seeds : iterable of int
        One simulated trial per seed and scenario, shared by every rule.
    n_clients : int
        Clients per trial (at most the scenario's ``n_clients`` where it
        sets one).
    grids : mapping of name -> Sweep or (parameter, values), optional
        Curves to draw instead of :func:`default_sweep`'s (needed for a rule
        that declares no strictness).
    margin : int
        Start tolerance of the episode matching.

    Returns
    -------
    pandas.DataFrame
        Tidy: one row per scenario x seed x rule x point, with ``scenario``,
        ``seed``, ``rule``, ``param`` (the parameter swept), ``value`` (its
        value; at the default setting the value the rule used, NaN when the
        rule reports none), ``default`` (True for the rule's default, or for
        ``sudden_loss`` benchmark, setting of :func:`rule_settings`: an extra
        point, not part of the curve), ``params`` (every parameter set),
        ``fa`` (the :class:`~alliance_ts.Evaluation`'s ``false_alarm_rate``:
        the share of the trial's rupture-free clients flagged), ``f1``,
        ``recall``, ``precision``, ``n_true``, ``n_detected`` and
        ``seconds`` (in :func:`~alliance_ts.detect`).

    Raises
    ------
    UnknownRuleError
        If a rule name is not registered (nor ``"oracle"``).
    ValueError
        If a rule has no curve (see :func:`default_sweep`).
    """
    names = [s for s in SCENARIOS if s != "no_ruptures"] if scenarios is None else list(scenarios)
    for name in names:
        if name not in SCENARIOS:
            raise KeyError(f"no scenario named {name!r}; scenarios: {', '.join(SCENARIOS)}")
    rule_names = operating_rules() if rules is None else list(rules)
    sweeps = {rule: _sweep_of(rule, grids) for rule in rule_names}  # every problem before anything runs
    settings = rule_settings(rule_names)
    rows = []
    for name in names:
        scenario = SCENARIOS[name]
        scale = scenario.params.get("scale", "wai-sr")
        for seed in seeds:
            sim = simulate(scenario.clients(n_clients), rng=seed, **scenario.params)
            for rule in rule_names:
                sweep = sweeps[rule]
                points = [(True, settings[rule])] + [(False, {**settings[rule], **sweep.settings(v)})
                                                      for v in sweep.values]
                for is_default, params in points:
                    res, shown, seconds = _run_entry(sim, scale, rule, params)
                    m = evaluate(res, sim, margin=margin)
                    value = params.get(sweep.param, res.params.get(sweep.param))
                    rows.append({
                        "scenario": name, "seed": seed, "rule": rule, "param": sweep.param,
                        "value": float(value) if isinstance(value, (int, float)) else math.nan,
                        "default": is_default, "params": shown, "fa": m.false_alarm_rate, "f1": m.f1,
                        "recall": m.recall, "precision": m.precision, "n_true": m.n_true,
                        "n_detected": m.n_detected, "seconds": seconds,
                    })
    return pd.DataFrame(rows)


def _curves(df: pd.DataFrame) -> pd.DataFrame:
    """The curve points (not the default settings), mean over seeds, sorted by false-alarm rate.

    Of points with the same rate only the one with the highest F1 is kept (see :func:`matched`).
    """
    curve = df[~df["default"].astype(bool)]
    mean = (curve.groupby(["scenario", "rule", "param", "value"], sort=False)[["fa", "f1", "recall", "precision"]]
            .mean().reset_index())
    mean = mean[mean["fa"].notna()].sort_values(["fa", "f1"], ascending=[True, False], kind="stable")
    return mean.drop_duplicates(["scenario", "rule", "fa"]).reset_index(drop=True)


def _same_curves(df: pd.DataFrame) -> dict[str, str]:
    """Rules whose curve points equal an earlier rule's in every scenario: ``{later: earlier}``.

    Presets that differ from another rule only in the swept parameter draw the same curve.
    """
    curves = _curves(df)
    keys: dict[str, tuple] = {}
    same: dict[str, str] = {}
    for rule in dict.fromkeys(df["rule"]):
        g = curves[curves["rule"] == rule].sort_values(["scenario", "fa"])
        key = tuple(map(tuple, g[["scenario", "fa", "f1", "recall"]].round(12).itertuples(index=False)))
        twin = next((r for r, k in keys.items() if k == key), None)
        if twin is not None and key:
            same[rule] = twin
        else:
            keys[rule] = key
    return same


def matched(df: pd.DataFrame, targets: Iterable[float] = TARGETS) -> pd.DataFrame:
    """F1, recall and precision of each curve read at given false-alarm rates.

    Parameters
    ----------
    df : pandas.DataFrame
        A :func:`run_operating` table.
    targets : iterable of float
        False-alarm rates (shares of rupture-free clients flagged).

    Returns
    -------
    pandas.DataFrame
        One row per scenario x rule x target: ``scenario``, ``rule``,
        ``param``, ``target``, ``reached`` (whether the curve spans the
        target), and ``value`` (the parameter), ``f1``, ``recall`` and
        ``precision`` there; NaN when not reached.

    Notes
    -----
    Each point's metrics are first averaged over seeds; the points (default
    settings left out) are sorted by false-alarm rate; where several share a
    rate, the one with the highest F1 is kept (the best setting at that
    rate). At a target between two neighbouring rates every metric is
    interpolated linearly in the false-alarm rate; at a rate of a point, it
    is that point's. A target below the curve's lowest rate or above its
    highest is *not reached*: the grid never produced that rate, and a
    value would be an extrapolation.

    Examples
    --------
    >>> df = pd.DataFrame({"scenario": "s", "seed": 1, "rule": "r", "param": "k", "value": [3.0, 2.0],
    ...                    "default": False, "fa": [0.02, 0.08], "f1": [0.5, 0.8], "recall": [0.4, 0.9],
    ...                    "precision": [0.7, 0.7]})
    >>> matched(df, targets=[0.05, 0.1])[["target", "reached", "value", "f1"]]
       target  reached  value    f1
    0    0.05     True    2.5  0.65
    1    0.10    False    NaN   NaN
    """
    targets = [float(t) for t in targets]
    metrics = ["value", "f1", "recall", "precision"]
    rows = []
    curves = {key: g for key, g in _curves(df).groupby(["scenario", "rule"], sort=False)}
    params = df.groupby("rule", sort=False)["param"].first()
    for scen, rule in df[["scenario", "rule"]].drop_duplicates().itertuples(index=False):
        g = curves.get((scen, rule), _curves(df.iloc[:0]))
        fa = g["fa"].to_numpy(dtype=float)
        for t in targets:
            row: dict[str, Any] = {"scenario": scen, "rule": rule, "param": params[rule], "target": t}
            reached = bool(fa.size) and fa[0] <= t <= fa[-1]
            row["reached"] = reached
            for k in metrics:
                row[k] = float(np.interp(t, fa, g[k].to_numpy(dtype=float))) if reached else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=["scenario", "rule", "param", "target", "reached", *metrics])


def at_default(df: pd.DataFrame) -> pd.DataFrame:
    """Each rule at its default setting (the ``default`` rows of a :func:`run_operating` table), mean over seeds.

    Returns
    -------
    pandas.DataFrame
        One row per scenario x rule: ``scenario``, ``rule``, ``fa``, ``f1``,
        ``recall``, ``precision``.
    """
    rows = df[df["default"].astype(bool)]
    return (rows.groupby(["scenario", "rule"], sort=False)[["fa", "f1", "recall", "precision"]]
            .mean().reset_index())


def _wide(frame: pd.DataFrame, column: str, order: list[str], rules: list[str]) -> pd.DataFrame:
    return frame.pivot(index="scenario", columns="rule", values=column).reindex(index=order, columns=rules)


def operating_markdown(df: pd.DataFrame, seeds, n_clients: int, seconds: float,
                       targets: Sequence[float] = TARGETS) -> str:
    """The Markdown report of a :func:`run_operating` table."""
    order = [s for s in SCENARIOS if s in set(df["scenario"])]
    rules = list(dict.fromkeys(df["rule"]))
    hit = matched(df, targets)
    dflt = at_default(df)
    sweeps = df[~df["default"].astype(bool)].groupby("rule", sort=False)
    pct = {t: f"{t:.0%}" if t >= 0.01 else f"{t:.1%}" for t in targets}
    same = _same_curves(df)
    twins = "; ".join(f"`{later}` = `{earlier}`" for later, earlier in same.items())
    parts = [
        "# Operating curves: the rules at matched false-alarm rates",
        "",
        f"alliance_ts {__version__}; {len(seeds)} seeds ({', '.join(map(str, seeds))}) x {n_clients} clients per "
        f"scenario{_clients_note(order, n_clients)}; episodes match when their starts differ by at most 1 session; "
        f"each point is the mean over seeds. Run time {seconds:.0f} s. Produced by `python benchmarks/operating.py`; "
        "every point is in `operating.csv`, the curves in `operating.png`.",
        "",
        "## How to read these tables",
        "",
        "A rule's false-alarm rate (the share of a scenario's rupture-free clients it flags) and its F1 move "
        "together: a laxer setting finds more ruptures and flags more clients without one. The accuracy tables "
        "compare each rule at its own setting, so at different false-alarm rates. Here each rule's strictness is "
        "swept over a grid (below); each scenario's curve of (false-alarm rate, F1) points, each the mean over "
        "seeds, is sorted by the rate (of points with the same rate the one with the highest F1 is kept), and F1, "
        "recall and precision are read off it at the same false-alarm rates for every rule, by linear "
        "interpolation between the two neighbouring points. A rule ahead at a matched rate finds more ruptures "
        "for the same false alarms. Best rule per scenario in bold (never the oracle).",
        "",
        "'-' means *not reached*: no point of the grid lies on each side of the target, and nothing is "
        "extrapolated. Either the rule's strictest setting still flags more rupture-free clients than the target, "
        "or its laxest flags fewer -- which can mean the rule is excellent there: a rule that never flags a "
        "rupture-free client has no point at 5% (compare the table at the default setting and the figure). With "
        f"{len(seeds)} seeds of {n_clients} clients, about half of them rupture-free, the false-alarm rates move "
        f"in steps of about {1 / (len(seeds) * n_clients / 2):.2%} (coarser where a scenario has fewer clients).",
        "",
        f"`{ORACLE}` is a reference, not a rule: `changepoint` (exact penalised segmentation) told each client's "
        "true noise SD, which the simulator knows and no real rule does (`alliance_ts.benchmark.oracle_detect`: "
        "each client's scores divided by its noise SD, `noise` set to sqrt(1 - ar) and `prior_df` to 1e12). "
        "Its ratio table shows how much of what exact segmentation achieves with known noise each rule reaches.",
        *(["", f"Curves that coincide (presets that differ only in the swept parameter): {twins}."] if twins else []),
        "",
        "Scenarios (WAI-SR totals unless stated):",
        "",
        "\n".join(f"- `{s.name}`: {s.description}" for s in SCENARIOS.values() if s.name in order),
        "",
        "Curves (the default setting is an extra point, not part of the curve):",
        "",
        "| rule | swept |",
        "|---|---|",
    ]
    for rule, g in sweeps:
        grid = _sweep_text(g)
        parts.append(f"| `{rule}` | {grid} |")
    for metric, title in (("f1", "F1"), ("recall", "Recall")):
        for t in targets:
            frame = _wide(hit[hit["target"] == t], metric, order, rules)
            parts += ["", f"## {title} at {pct[t]} false alarms", "", _table(frame, "{:.2f}")]
    f1 = _wide(dflt, "f1", order, rules)
    fa = _wide(dflt, "fa", order, rules)
    cells = f1.combine(fa, lambda a, b: pd.Series(
        ["-" if pd.isna(x) else f"{x:.2f} ({y:.1%})" for x, y in zip(a, b)], index=a.index))
    parts += ["", "## At the default setting: F1 (false-alarm rate)", "",
              "The setting of the accuracy benchmark (`sudden_loss`: reliability 0.9, 25% criterion on; "
              "`changepoint` and the oracle: BIC penalty, falls of 3 noise SDs).", "",
              _table(cells, "{}", best=None)]
    if ORACLE in rules and 0.05 in targets:
        at5 = _wide(hit[hit["target"] == 0.05], "f1", order, rules)
        ratio = at5.div(at5[ORACLE], axis=0).drop(columns=ORACLE)
        parts += ["", "## F1 relative to the oracle's at 5% false alarms", "",
                  "1.00 = as good as exact segmentation with known noise; above 1 is possible (the oracle is "
                  "exact segmentation, not the best possible rule, and its noise model ignores rounding and "
                  "clipping).", "", _table(ratio, "{:.2f}")]
    return "\n".join(parts) + "\n"


def _sweep_text(points: pd.DataFrame) -> str:
    """The swept parameter and its values (and any other parameters set), from the table's points."""
    param = points["param"].iloc[0]
    values = sorted(set(points["value"].dropna()))
    text = f"`{param}`: {', '.join(f'{v:g}' for v in values)}"
    extra = {part.split("=")[0] for shown in points["params"] for part in str(shown).split(", ") if "=" in part}
    extra -= {param}
    sample = dict(p.split("=", 1) for p in str(points["params"].iloc[0]).split(", ") if "=" in p)
    notes = [f"`{k}={sample[k]}`" for k in sorted(extra) if k in sample and k != "min_drop"]
    if "min_drop" in extra:
        notes.insert(0, "`min_drop` = 3 sqrt(`penalty_scale`)")
    return text + ("; " + ", ".join(notes) if notes else "")


def operating_plot(df: pd.DataFrame, path: str | Path, targets: Sequence[float] = TARGETS) -> None:
    """One small panel per scenario: F1 against false-alarm rate (log axis), one line per rule (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the bench extra installs it
        print("matplotlib not installed: pip install 'alliance_ts[bench]'; skipping the plot")
        return
    from matplotlib.ticker import FixedLocator, NullLocator

    curves = _curves(df)
    dflt = at_default(df)
    order = [s for s in SCENARIOS if s in set(df["scenario"])]
    same = _same_curves(df)
    rules = [r for r in dict.fromkeys(df["rule"]) if r not in same]
    labels = {r: " = ".join([r, *[k for k, v in same.items() if v == r]]) for r in rules}
    floor = 0.001  # a false-alarm rate of 0 is drawn here
    ticks = [0.001, 0.01, 0.05, 0.1, 0.3, 1.0]
    ncol = 4
    nrow = -(-(len(order) + 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow), sharex=True, sharey=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    colours: dict[str, Any] = {r: cmap(i % 10) for i, r in enumerate(r for r in rules if r != ORACLE)}
    colours[ORACLE] = "black"
    for ax, scen in zip(axes.flat, order):
        for t in targets:
            ax.axvline(t, color="0.55", lw=0.8, ls=":")
        for rule in rules:
            g = curves[(curves["scenario"] == scen) & (curves["rule"] == rule)]
            oracle = rule == ORACLE
            ax.plot(np.maximum(g["fa"], floor), g["f1"], marker=".", ms=3, color=colours[rule],
                    ls="--" if oracle else "-", lw=1.6 if oracle else 1.2, label=labels[rule],
                    zorder=3 if oracle else 2)
            for name, marker in [(rule, "o"), *[(k, "s") for k, v in same.items() if v == rule]]:
                d = dflt[(dflt["scenario"] == scen) & (dflt["rule"] == name)]
                ax.plot(np.maximum(d["fa"], floor), d["f1"], marker=marker, ms=5, mfc="none", color=colours[rule],
                        ls="none")
        ax.set_xscale("log")
        ax.set_xlim(floor * 0.8, 1.0)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels(["0.1%", "1%", "5%", "10%", "30%", "100%"])
        ax.set_ylim(0, 1)
        ax.set_title(scen, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.2)
    for ax in axes.flat[len(order):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    axes.flat[len(order)].legend(handles, names, loc="center", fontsize=8, frameon=False,
                                 title="rule (o: its default setting;\nsquare: the second name's)", title_fontsize=8)
    for i, ax in enumerate(axes.flat[:len(order)]):
        if i + ncol >= len(order):  # no panel below: label the axis here
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("false-alarm rate (0 drawn at 0.1%)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("F1", fontsize=8)
    fig.suptitle("Operating curves: episode F1 against the share of rupture-free clients flagged "
                 "(mean over seeds; dotted: 1%, 5%, 10%; oracle dashed black)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_operating(df: pd.DataFrame, out: str | Path, seeds, n_clients: int, seconds: float) -> None:
    """Write ``operating.csv``, ``operating.md`` and ``operating.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "operating.csv", index=False, float_format="%.6g")
    (out / "operating.md").write_text(operating_markdown(df, seeds, n_clients, seconds))
    operating_plot(df, out / "operating.png")
