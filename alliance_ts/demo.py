"""``python -m alliance_ts.demo``: label a simulated trial and print a report.

The demo generates a trial with :func:`alliance_ts.simulate` (so the true
episodes are known), labels it with the default rule, prints a summary a
researcher can read, compares every registered rule with the planted truth,
relates the labels to the simulated outcomes in the meta-analysis' metric,
labels the simulated Post-Session Questionnaires and observer codes, reports
the coders' reliability and how the three ways of seeing a rupture agree, and
writes the output tables as CSV files (and figures when matplotlib is
installed).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .compare import agreement
from .convergence import convergence
from .detect import detect
from .effects import SmallGroupWarning, outcome_association
from .evaluate import evaluate
from .reliability import coder_agreement
from .result import Detection
from .rules import DEFAULT_RULE, list_rules
from .shape import classify_shape
from .simulate import simulate

#: The demo trial: WAI-SR totals (12-60) after each session.
DEMO_TRIAL: dict[str, Any] = dict(
    scale="wai-sr",
    n_sessions=(6, 24),
    p_episode=0.5,
    p_missing=0.08,
    p_dropout=0.1,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alliance_ts.demo",
        description="Label a simulated WAI-SR trial and write the result tables.",
    )
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--clients", type=int, default=300, help="number of clients (default: 300)")
    parser.add_argument("--seed", type=int, default=2018, help="random seed of the trial (default: 2018)")
    parser.add_argument("--rule", default=DEFAULT_RULE, help=f"rule for the main labels (default: {DEFAULT_RULE})")
    args = parser.parse_args(argv)

    sim = simulate(args.clients, rng=args.seed, psq=True, observer=True, **DEMO_TRIAL)
    scores = sim.scores
    n_sessions = scores.groupby("client").size()
    print(f"alliance_ts {__version__} demo")
    print("=" * 60)
    print(
        f"Simulated trial: {scores['client'].nunique()} clients, {len(scores)} WAI-SR totals "
        f"(12-60), {n_sessions.min()}-{n_sessions.max()} observed sessions per client,\n"
        f"about 8% missed sessions and 10% dropouts; {len(sim.truth)} planted rupture episodes "
        f"(seed {args.seed})."
    )
    print()

    res = detect(scores, rule=args.rule, scale="wai-sr")
    print(res.summary())
    print()

    shapes = classify_shape(scores, scale="wai-sr")
    counts = shapes["shape"].value_counts().reindex(shapes["shape"].cat.categories, fill_value=0)
    print("Whole-course shape (Kivlighan & Shaughnessy 2000 style):")
    for name, count in counts.items():
        print(f"  {name:<15} {int(count):>5}")
    print()

    m = evaluate(res, sim)
    print(f"Because the trial is simulated, the true episodes are known. Rule {args.rule!r}:")
    print(
        f"  precision {m.precision:.2f}, recall {m.recall:.2f}, F1 {m.f1:.2f}, "
        f"status agreement {m.status_accuracy:.2f}, pattern kappa {m.kappa:.2f},\n"
        f"  false alarms in {m.false_alarm_rate:.1%} of clients without a planted rupture"
    )
    print()

    print("Every rule on the same data (the multiverse a Methods section can report):")
    rows = []
    table = list_rules()
    for name in table.loc[table["input"] == "scores", "name"]:
        params: dict[str, Any] = {"reliability": 0.9} if name == "sudden_loss" else {}
        r = detect(scores, rule=name, scale="wai-sr", **params)
        ev = evaluate(r, sim)
        pat = r.clients["pattern"].value_counts()
        rows.append(
            {
                "rule": name,
                "episodes": len(r.episodes),
                "repaired": int(pat.get("repaired", 0)),
                "unresolved": int(pat.get("unresolved", 0)),
                "mixed": int(pat.get("mixed", 0)),
                "no_rupture": int(pat.get("no_rupture", 0)),
                "F1": round(ev.f1, 2),
                "false_alarms": f"{ev.false_alarm_rate:.0%}",
            }
        )
    with pd.option_context("display.width", 120):
        print(pd.DataFrame(rows).to_string(index=False))
    print("  (episodes: number of episodes; repaired ... no_rupture: number of clients with that pattern;")
    print("   F1 and false alarms against the simulation's planted episodes;")
    print("   sudden_loss with reliability 0.9; it targets sustained drops by design)")
    print()

    print("Outcomes (simulated, higher = better) in the meta-analysis' metric:")
    truth_res = _truth_as_detection(sim, res)
    assoc = []
    small: list[str] = []
    for label, labelled in (("planted truth", truth_res), (f"rule {args.rule!r}", res)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SmallGroupWarning)
            table = outcome_association(labelled, sim.clients, outcome="outcome", by_phase=False,
                                        contrast=["repaired_vs_unresolved", "repaired_vs_no_rupture"])
        small += [f"{label}: {w.message}" for w in caught if issubclass(w.category, SmallGroupWarning)]
        for row in table.itertuples():
            r_, d_ = row.r, row.d
            assoc.append({"labels": label, "contrast": row.contrast, "n1": row.n1, "n2": row.n2,
                          "r": round(float(r_), 2), "d": round(float(d_), 2),  # type: ignore[arg-type]
                          "95% CI of d": f"{row.d_low:.2f} to {row.d_high:.2f}"})
    print(pd.DataFrame(assoc).to_string(index=False))
    print("  (the simulation plants d = .62 and .50, the meta-analysis' values; a sample of this size")
    print("   varies widely around them, and on average misclassified clients pull the detected")
    print("   effects towards zero)")
    for note in small:
        print(f"  note, {note}")
    print()

    psq = detect(sim.psq, rule="psq", rater="rater", addressed="addressed")
    patient = psq.for_rater("patient")
    print("Self-reports: simulated Post-Session Questionnaires (patient and therapist), rule 'psq':")
    print(f"  {len(psq.episodes)} self-reported episodes; clients with a reported rupture: "
          + ", ".join(f"{r} {int((psq.clients.loc[psq.clients['rater'] == r, 'n_ruptures'] > 0).sum())}"
                      for r in ("patient", "therapist")))
    for a in (agreement(psq, level="session"), agreement(psq, level="client", what="any"),
              agreement(patient, res, level="client", what="any")):
        print(f"  {a.names[0]} vs {a.names[1]}, {a.level}s ({a.what}): kappa {a.kappa:.2f}, "
              f"{a.percent:.0%} agree (n = {a.n})")
    print()

    obs = detect(sim.observer, rule="observer_significant", coder="coder", resolution="resolution",
                 resolved="resolved", contribution="contribution")
    coder_a = obs.for_coder("A")
    print("Observer codes: simulated 3RS-style codes (two coders, 10 five-minute segments a session),")
    print("rule 'observer_significant' (a session with a marker rated 3+ of 5 in significance):")
    print(f"  coder A: {len(coder_a.episodes)} episodes; " + ", ".join(
        f"{kind} {int((coder_a.episodes['type'] == kind).sum())}" for kind in ("confrontation", "withdrawal", "both")))
    rel = coder_agreement(obs)
    print("  coder reliability (sessions coded by both; ICC [95% CI]):")
    print("    " + rel.table()[["measure", "n_sessions", "ICC(A,1)", "ICC(C,1)"]].to_string(index=False)
          .replace("\n", "\n    "))
    kappa = rel.kappa.set_index("label")["kappa"].astype(float)
    print(f"    session has a rupture: kappa {kappa['rupture']:.2f}; its type: kappa {kappa['type']:.2f}")
    conv = convergence({"observer": coder_a, "psq": psq, args.rule: res})
    print("  convergence of the three ways of seeing a rupture (kappa [95% CI], sessions both observed;")
    print("  clients: any rupture):")
    for row in conv.pairs.itertuples():
        print(f"    {row.a:>15} vs {row.b:<15} {row.level:>7}: kappa {row.kappa:.2f} "
              f"[{row.kappa_low:.2f}, {row.kappa_high:.2f}], n = {row.n}")
    print()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "episodes.csv": res.episodes,
        "sessions.csv": res.sessions,
        "clients.csv": res.clients,
        "by_client.csv": res.by_client(),
        "shapes.csv": shapes,
        "input_scores.csv": scores,
        "true_episodes.csv": sim.truth,
        "outcomes.csv": sim.clients[["client", "pattern", "outcome"]],
        "psq_answers.csv": sim.psq,
        "psq_episodes.csv": psq.episodes,
        "observer_codes.csv": sim.observer,
        "observer_episodes.csv": obs.episodes,
        "coder_reliability.csv": rel.icc,
        "convergence.csv": conv.pairs,
    }
    for fname, frame in tables.items():
        if frame is not None:
            frame.to_csv(out / fname, index=False)
    (out / "methods.md").write_text("# Methods\n\n" + res.methods() + "\n", encoding="utf-8")
    written = [*tables, "methods.md"]
    written += _figures(res, out, conv)
    print(f"Wrote {', '.join(written)} to {out.resolve()}")
    return 0


def _truth_as_detection(sim, like: Detection) -> Detection:
    """The planted episodes in the shape of a Detection (for the outcome contrasts)."""
    truth = sim.truth.assign(phase=pd.Categorical(["all"] * len(sim.truth)))
    clients = sim.clients.assign(
        included=True,
        n_ruptures=sim.clients["n_episodes"],
        n_repaired=sim.truth[sim.truth["status"] == "repaired"].groupby("client").size()
        .reindex(sim.clients["client"], fill_value=0).to_numpy(),
    )
    return Detection(truth, like.sessions.iloc[:0], clients, "truth", {}, like.version)


def _figures(res: Detection, out: Path, conv: Any) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:  # pragma: no cover - the plot extra installs it
        print("(matplotlib not installed: pip install 'alliance_ts[plot]' for the figures)")
        return []
    from . import plot

    axes = plot.overview(res)
    axes[0].figure.savefig(out / "overview.png", dpi=110)
    grid = plot.panel(res, n=6, ncols=3)
    grid[0, 0].figure.savefig(out / "clients.png", dpi=110)
    plot.average_episode(res).figure.savefig(out / "average_episode.png", dpi=110)
    conv.plot().savefig(out / "convergence.png", dpi=110)
    matplotlib.pyplot.close("all")
    return ["overview.png", "clients.png", "average_episode.png", "convergence.png"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
