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
from typing import Any

import pandas as pd

from .detect import detect
from .evaluate import evaluate
from .rules import list_rules
from .simulate import simulate

__all__ = ["SCENARIOS", "Scenario", "rule_settings", "run_accuracy"]


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
        Scenario("multi_decline", "decline over 2-4 sessions, sudden repair, 4-7 SD", dict(kinds={"multi": 1}, depth=(4, 7))),
        Scenario("gradual_repair", "one-session drop, repair over 2-4 sessions, 4-7 SD", dict(kinds={"gradual": 1}, depth=(4, 7))),
        Scenario("sustained", "drop that never recovers (unresolved), 4-7 SD", dict(kinds={"sustained": 1}, depth=(4, 7))),
        Scenario("several", "2-3 episodes in one course, 4-7 SD", dict(kinds={"several": 1}, depth=(4, 7), n_sessions=(14, 30))),
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
    ``changepoint_calibrated`` (``changepoint`` with ``penalty="calibrated"``).
    """
    names = list(list_rules()["name"]) if rules is None else list(rules)
    settings = {name: ({"reliability": 0.9} if name == "sudden_loss" else {}) for name in names}
    if rules is None:
        # the calibrated change-point penalty is an option worth measuring too
        settings["changepoint_calibrated"] = {"rule": "changepoint", "penalty": "calibrated"}
    return settings


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
        ``seconds`` spent in :func:`~alliance_ts.detect`.
    """
    names = list(SCENARIOS) if scenarios is None else list(scenarios)
    if rules is None:
        settings = rule_settings()
    elif isinstance(rules, Mapping):
        settings = {k: dict(v) for k, v in rules.items()}
    else:
        settings = rule_settings(rules)
    rows = []
    for name in names:
        scenario = SCENARIOS[name]
        scale = scenario.params.get("scale", "wai-sr")
        for seed in seeds:
            sim = simulate(n_clients, rng=seed, **scenario.params)
            for rule, params in settings.items():
                rule_name = params.get("rule", rule)
                kwargs = {k: v for k, v in params.items() if k != "rule"}
                t0 = time.perf_counter()
                res = detect(sim.scores, rule=rule_name, scale=scale, **kwargs)
                seconds = time.perf_counter() - t0
                m = evaluate(res, sim, margin=margin)
                row = {"scenario": name, "seed": seed, "rule": rule,
                       "params": ", ".join(f"{k}={v!r}" for k, v in kwargs.items())}
                row.update(m.to_series().to_dict())
                row["seconds"] = seconds
                rows.append(row)
    return pd.DataFrame(rows)
