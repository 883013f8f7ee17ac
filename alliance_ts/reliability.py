"""Agreement between coders (or raters) of the same sessions: the reliability table of an observer study.

:func:`coder_agreement` takes a result with several coders (the ``observer``
rule with ``coder=``) or raters (``psq`` with ``rater=``) and reports

- intraclass correlations of the session-level frequencies and ratings
  (marker counts, strategies, significance, resolution, contribution):
  two-way models, absolute agreement and consistency, single and average
  measures, with 95% confidence intervals, computed by pingouin's
  ``intraclass_corr`` (McGraw & Wong, 1996; needs ``pip install
  'alliance_ts[reliability]'``);
- Cohen's kappa for the session labels (a rupture in the session; its type)
  between every pair of coders, by scikit-learn.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._lazy import metrics
from .errors import InvalidInputError, Problem
from .result import Detection, group_column
from .validation import plain

__all__ = ["CoderAgreement", "ICC_TYPES", "coder_agreement"]

WHERE = "alliance_ts.coder_agreement()"

#: The ICC forms reported: pingouin's name -> (our label, what it means).
ICC_TYPES = {
    "ICC(A,1)": ("ICC(A,1)", "two-way, absolute agreement, single coder"),
    "ICC(C,1)": ("ICC(C,1)", "two-way, consistency, single coder"),
    "ICC(A,k)": ("ICC(A,k)", "two-way, absolute agreement, mean of the k coders"),
    "ICC(C,k)": ("ICC(C,k)", "two-way, consistency, mean of the k coders"),
}
# pingouin before 0.7 names the same forms after Shrout & Fleiss
_OLD_NAMES = {"ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}

#: The observer rule's session columns an ICC is reported for, in order.
MEASURES = ("withdrawal", "confrontation", "resolution", "significance", "resolved", "contribution")


@dataclass(frozen=True, eq=False)
class CoderAgreement:
    """Reliability of several coders of the same sessions.

    Attributes
    ----------
    icc : pandas.DataFrame
        One row per measure and ICC form: ``measure``, ``type``
        (``ICC(A,1)``, ``ICC(C,1)``, ``ICC(A,k)``, ``ICC(C,k)``),
        ``description``, ``icc``, ``ci_low``, ``ci_high`` (95%, as pingouin
        reports them, to two decimals), ``F``, ``df1``, ``df2``, ``p`` (the F
        test of the ICC), ``n_sessions`` (sessions coded by every coder with
        a value of the measure) and ``n_coders``.
    kappa : pandas.DataFrame
        One row per label and pair of coders: ``label`` (``"rupture"``: the
        session has a rupture; ``"type"``: none / withdrawal /
        confrontation / both), ``coder_a``, ``coder_b``, ``kappa``,
        ``percent`` (share of sessions with the same label) and ``n``
        (sessions coded by both).
    coders : tuple
        The coders compared.
    """

    icc: pd.DataFrame
    kappa: pd.DataFrame
    coders: tuple[Any, ...]

    def __repr__(self) -> str:
        return (f"<CoderAgreement: {len(self.coders)} coders, {self.icc['measure'].nunique()} measures, "
                f"{len(self.kappa)} kappas>")

    def table(self, digits: int = 2) -> pd.DataFrame:
        """The reliability table as a paper prints it: one row per measure, ``ICC [95% CI]`` per form."""
        if self.icc.empty:
            return pd.DataFrame(columns=["measure", "n_sessions", *ICC_TYPES])
        fmt = f"{{:.{digits}f}}"

        def cell(row: pd.Series) -> str:
            if not np.isfinite(row["icc"]):
                return "n/a"
            return f"{fmt.format(row['icc'])} [{fmt.format(row['ci_low'])}, {fmt.format(row['ci_high'])}]"

        wide = self.icc.assign(cell=self.icc.apply(cell, axis=1)).pivot(index="measure", columns="type",
                                                                        values="cell")
        n = self.icc.groupby("measure", sort=False)["n_sessions"].first()
        order = list(dict.fromkeys(self.icc["measure"]))
        out = wide.reindex(order)[[t for t in ICC_TYPES if t in wide.columns]]
        out.insert(0, "n_sessions", n.reindex(order).to_numpy())
        return out.reset_index().rename_axis(columns=None)


def coder_agreement(
    result: Detection,
    *,
    measures: list[str] | None = None,
    coders: list[Any] | None = None,
) -> CoderAgreement:
    """Intraclass correlations and kappas between the coders (or raters) of a result.

    Parameters
    ----------
    result : Detection
        A result with a ``coder`` column (``detect(codes, rule="observer",
        coder=...)``) or a ``rater`` column (``rule="psq"`` with
        ``rater=``).
    measures : list of str, optional
        Session columns to compute ICCs for (default: every one of
        ``withdrawal``, ``confrontation``, ``resolution``, ``significance``,
        ``resolved``, ``contribution`` the result has; for the PSQ its
        items).
    coders : list, optional
        The coders to compare (default: all; ICCs need at least two).

    Returns
    -------
    CoderAgreement

    Notes
    -----
    The targets are the sessions (client x session); a session enters the
    ICC of a measure when every coder compared coded it and gave it a value
    (listwise, as pingouin's ``nan_policy="omit"``). The forms follow McGraw
    & Wong (1996) as named by Liljequist et al. (2019): ``ICC(A,1)`` is
    Shrout & Fleiss' ICC(2,1) (two-way random effects, absolute agreement),
    ``ICC(C,1)`` their ICC(3,1) (two-way mixed effects, consistency), and the
    ``k`` forms the reliability of the coders' mean. The 3RS validation
    (Eubanks et al., 2019) reports ICCs of .85-.98 for marker and strategy
    frequencies and .92 for the contribution and resolution ratings.

    Kappa compares labels of the sessions both coders coded, of the clients
    both coders' courses were analysed for (``min_sessions``): ``rupture``
    (the rule's session criterion; for a PSQ result, that the session lies in
    an episode) and ``type`` (from the session's marker counts).

    References
    ----------
    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some
    intraclass correlation coefficients. *Psychological Methods*, 1(1),
    30-46.
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in
    assessing rater reliability. *Psychological Bulletin*, 86(2), 420-428.

    Examples
    --------
    >>> import alliance_ts as at
    >>> sim = at.simulate(60, rng=2, observer=True)
    >>> res = at.detect(sim.observer, rule="observer", coder="coder", resolved="resolved")
    >>> rel = at.coder_agreement(res)
    >>> rel.table()[["measure", "n_sessions"]]
             measure  n_sessions
    0     withdrawal         858
    1  confrontation         858
    2       resolved         214
    """
    problems: list[Problem] = []
    if not isinstance(result, Detection):
        raise InvalidInputError([Problem("parameter 'result'", f"expected a Detection, got "
                                         f"{type(result).__name__}")], WHERE)
    s = result.sessions
    key = group_column(s)
    if key is None:
        raise InvalidInputError([Problem("parameter 'result'", f"rule {result.rule!r} labelled one coder; label the "
                                         "codes with coder= (observer) or rater= (psq) to compare coders")], WHERE)
    present = list(pd.unique(s[key]))
    chosen = present if coders is None else list(coders)
    unknown = [c for c in chosen if c not in present]
    if unknown:
        problems.append(Problem("parameter 'coders'",
                                f"not in the result: {_shown(unknown)}; it has {_shown(present)}"))
    elif len(chosen) < 2:
        problems.append(Problem("parameter 'coders'", f"needs at least two coders; the result has {_shown(present)}"))
    names = _measures(s) if measures is None else list(measures)
    missing = [m for m in names if m not in s.columns]
    if missing:
        problems.append(Problem("parameter 'measures'", f"not session columns of the result: {missing!r}; it has "
                                + ", ".join(map(repr, _measures(s)))))
    if problems:
        raise InvalidInputError(problems, WHERE)

    seen = s[s[key].isin(chosen) & _observed(s)]
    icc = pd.concat([_icc(seen, key, m, len(chosen)) for m in names], ignore_index=True) if names else \
        pd.DataFrame(columns=["measure", "type", "description", "icc", "ci_low", "ci_high", "F", "df1", "df2", "p",
                              "n_sessions", "n_coders"])
    # session labels exist for the courses the rule analysed (min_sessions); the ICCs use every coded session
    analysed = result.clients.loc[result.clients["included"].astype(bool), ["client", key]]
    labels = _labels(seen.merge(analysed, on=["client", key]), result)
    rows = []
    for a, b in itertools.combinations(chosen, 2):
        la = labels[labels[key] == a].drop(columns=key)
        lb = labels[labels[key] == b].drop(columns=key)
        both = la.merge(lb, on=["client", "session"], suffixes=("_a", "_b"))
        for label in ("rupture", "type"):
            if f"{label}_a" not in both.columns:
                continue
            x, y = both[f"{label}_a"].astype(str).to_numpy(), both[f"{label}_b"].astype(str).to_numpy()
            n = len(both)
            kappa = float("nan")
            if n and len(set(x) | set(y)) > 1:
                kappa = float(metrics.cohen_kappa_score(x, y))
            rows.append({"label": label, "coder_a": a, "coder_b": b, "kappa": kappa,
                         "percent": float(np.mean(x == y)) if n else float("nan"), "n": n})
    kappas = pd.DataFrame(rows, columns=["label", "coder_a", "coder_b", "kappa", "percent", "n"])
    return CoderAgreement(icc, kappas, tuple(chosen))


def _shown(values: list[Any]) -> str:
    return ", ".join(plain(v) for v in values)


def _measures(s: pd.DataFrame) -> list[str]:
    if "segments" in s.columns:  # observer codes
        return [m for m in MEASURES if m in s.columns]
    return [m for m in ("rupture", "withdrawal", "addressed", "resolved") if m in s.columns]


def _observed(s: pd.DataFrame) -> pd.Series:
    return s["score"].notna()


def _labels(seen: pd.DataFrame, result: Detection) -> pd.DataFrame:
    key = group_column(seen)
    out = seen[["client", key, "session"]].copy()
    if "rupture" in seen.columns and seen["rupture"].dtype == "boolean":
        out["rupture"] = seen["rupture"].fillna(False).astype(bool).to_numpy()
        w = seen["withdrawal"].fillna(0).to_numpy() > 0 if "withdrawal" in seen else np.zeros(len(seen), bool)
        c = seen["confrontation"].fillna(0).to_numpy() > 0 if "confrontation" in seen else np.zeros(len(seen), bool)
        kind = np.where(w & c, "both", np.where(w, "withdrawal", np.where(c, "confrontation", "none")))
        out["type"] = np.where(out["rupture"].to_numpy(), kind, "none")
    else:
        out["rupture"] = seen["label"].astype(str).to_numpy() != "none"
    return out


def _icc(seen: pd.DataFrame, key: str, measure: str, n_coders: int) -> pd.DataFrame:
    try:
        import pingouin
    except ImportError:  # pragma: no cover - the reliability extra is part of the test install
        raise InvalidInputError([Problem("coder agreement", "ICCs need pingouin: pip install "
                                         "'alliance_ts[reliability]'")], WHERE) from None
    data = seen[["client", "session", key, measure]].copy()
    data["target"] = pd.MultiIndex.from_frame(data[["client", "session"]]).factorize()[0]
    data[measure] = pd.to_numeric(data[measure], errors="coerce").astype(float)
    wide = data.pivot_table(index="target", columns=key, values=measure, aggfunc="first", dropna=False)
    complete = wide.dropna()
    n = len(complete)
    base = {"measure": measure, "n_sessions": n, "n_coders": n_coders}
    empty = pd.DataFrame([{**base, "type": t, "description": d, "icc": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                           "F": np.nan, "df1": np.nan, "df2": np.nan, "p": np.nan} for t, (_, d) in ICC_TYPES.items()])
    if n < 3 or np.ptp(complete.to_numpy()) == 0:
        return empty[_ICC_COLUMNS]  # too few sessions, or no variation at all: no ICC
    long = complete.reset_index().melt(id_vars="target", var_name="coder", value_name="value")
    long["coder"] = long["coder"].astype(str)
    with warnings.catch_warnings():
        # pingouin's own deprecation notices (it calls dropna(inplace=True)) say nothing about the data
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        table = pingouin.intraclass_corr(long, targets="target", raters="coder", ratings="value")
    table["Type"] = table["Type"].replace(_OLD_NAMES)
    table = table[table["Type"].isin(list(ICC_TYPES))].set_index("Type").reindex(list(ICC_TYPES))
    ci = np.vstack([np.asarray(v, dtype=float) for v in table["CI95%" if "CI95%" in table else "CI95"]])
    return pd.DataFrame({
        **{k: [v] * len(table) for k, v in base.items() if k == "measure"},
        "type": list(ICC_TYPES),
        "description": [d for _, d in ICC_TYPES.values()],
        "icc": table["ICC"].to_numpy(dtype=float),
        "ci_low": ci[:, 0], "ci_high": ci[:, 1],
        "F": table["F"].to_numpy(dtype=float), "df1": table["df1"].to_numpy(dtype=float),
        "df2": table["df2"].to_numpy(dtype=float), "p": table["pval"].to_numpy(dtype=float),
        "n_sessions": n, "n_coders": n_coders,
    })[_ICC_COLUMNS]


_ICC_COLUMNS = ["measure", "type", "description", "icc", "ci_low", "ci_high", "F", "df1", "df2", "p", "n_sessions",
                "n_coders"]
