r"""Effect sizes in the metrics of the rupture-repair meta-analysis.

Eubanks, Muran & Safran (2018) pooled correlations *r* and reported each
with a standardised mean difference *d*. This module converts between the
two and relates a :class:`~alliance_ts.Detection` to client outcomes in the
meta-analysis' contrasts:

- ``"repaired_vs_unresolved"``: clients whose episodes were all repaired
  against clients whose episodes were all unresolved (published: r = .29,
  d = .62);
- ``"repaired_vs_no_rupture"``: clients whose episodes were all repaired
  against clients without an episode (published: r = .24, d = .50);
- ``"n_repairs"``: the number of repaired episodes, correlated with the
  outcome over every analysed client.

Conversions (Borenstein et al., 2009, ch. 7, as used by the meta-analysis):

.. math::

    d = \frac{\sqrt{a}\, r}{\sqrt{1 - r^2}}, \qquad
    r = \frac{d}{\sqrt{d^2 + a}}, \qquad a = \frac{(n_1 + n_2)^2}{n_1 n_2}

with :math:`a = 4` for equal (or unknown) group sizes.

References
----------
Borenstein, M., Hedges, L. V., Higgins, J. P. T., & Rothstein, H. R. (2009).
*Introduction to meta-analysis*. Wiley.

Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair:
A meta-analysis. *Psychotherapy*, 55(4), 508-519.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import AllianceWarning, InvalidInputError, Problem
from .result import PHASES, Detection

__all__ = ["CONTRASTS", "d_to_r", "fisher_ci", "outcome_association", "r_to_d"]

CONTRASTS = ("repaired_vs_unresolved", "repaired_vs_no_rupture", "n_repairs")


def _a(n1: float | None, n2: float | None) -> float:
    if n1 is None and n2 is None:
        return 4.0
    if n1 is None or n2 is None or n1 <= 0 or n2 <= 0:
        raise InvalidInputError(
            [Problem("parameters 'n1', 'n2'", f"give both group sizes (> 0) or neither, got {n1!r}, {n2!r}")],
            "alliance_ts.effects",
        )
    return (n1 + n2) ** 2 / (n1 * n2)


def r_to_d(r: Any, n1: float | None = None, n2: float | None = None) -> Any:
    r"""Convert a correlation to a standardised mean difference.

    :math:`d = \sqrt{a}\,r / \sqrt{1 - r^2}` with
    :math:`a = (n_1 + n_2)^2 / (n_1 n_2)`, or 4 when the group sizes are not
    given (equal groups).

    Parameters
    ----------
    r : float or array-like
        Correlation(s), strictly between -1 and 1.
    n1, n2 : float, optional
        Group sizes.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> from alliance_ts.effects import r_to_d
    >>> round(r_to_d(0.29), 3)     # the meta-analysis printed .62 from an unrounded r
    0.606
    >>> round(r_to_d(0.296), 2)
    0.62
    >>> round(r_to_d(0.3, 20, 80), 3)
    0.786
    """
    a = _a(n1, n2)
    arr = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = math.sqrt(a) * arr / np.sqrt(1.0 - arr**2)
    return float(out) if out.ndim == 0 else out


def d_to_r(d: Any, n1: float | None = None, n2: float | None = None) -> Any:
    r"""Convert a standardised mean difference to a correlation.

    :math:`r = d / \sqrt{d^2 + a}` with :math:`a = (n_1 + n_2)^2 / (n_1 n_2)`,
    or 4 when the group sizes are not given.

    Examples
    --------
    >>> from alliance_ts.effects import d_to_r
    >>> round(d_to_r(0.50), 3), round(d_to_r(0.22), 3)
    (0.243, 0.109)
    """
    a = _a(n1, n2)
    arr = np.asarray(d, dtype=float)
    out = arr / np.sqrt(arr**2 + a)
    return float(out) if out.ndim == 0 else out


def fisher_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    r"""Confidence interval of a correlation by Fisher's z transformation.

    :math:`\tanh(\operatorname{atanh} r \pm z_{1-\alpha/2} / \sqrt{n - 3})`;
    (NaN, NaN) when ``n <= 3`` or ``r`` is not finite.

    Examples
    --------
    >>> from alliance_ts.effects import fisher_ci
    >>> [round(v, 3) for v in fisher_ci(0.29, 103)]
    [0.102, 0.458]
    """
    if n <= 3 or not np.isfinite(r) or abs(r) >= 1:
        return (math.nan, math.nan)
    z = math.atanh(r)
    half = stats.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    return (math.tanh(z - half), math.tanh(z + half))


def outcome_association(
    result: Detection,
    outcomes: pd.DataFrame,
    *,
    outcome: str,
    client: str = "client",
    contrast: str | Sequence[str] | None = None,
    higher_is_better: bool = True,
    by_phase: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""Relate detected patterns to client outcomes, in the meta-analysis' metrics.

    Parameters
    ----------
    result : Detection
        The labelled trial.
    outcomes : pandas.DataFrame
        One row per client with the client id and the outcome (for example
        pre-post improvement); clients of ``result`` without an outcome are
        counted in ``n_no_outcome``, never silently dropped. Outcome rows of
        clients that are not in ``result`` are not used, and an
        :class:`~alliance_ts.AllianceWarning` says how many; outcomes that
        match no analysed client at all (an empty table, a column of missing
        values, ids of another type) are an error.
    outcome : str
        The outcome column.
    client : str, default "client"
        The client id column of ``outcomes``.
    contrast : str or list of str, optional
        Any of ``"repaired_vs_unresolved"``, ``"repaired_vs_no_rupture"``,
        ``"n_repairs"``; default all three.
    higher_is_better : bool, default True
        Whether a larger outcome is a better one. With False (e.g. symptom
        scores after treatment) the signs are flipped, so that a positive r
        and d always mean the first group did better.
    by_phase : bool, default True
        Also report each contrast for the episodes that started in each phase
        (``early``, ``middle``, ``late``): a client's pattern is then formed
        from its episodes of that phase only; the no-rupture group stays the
        clients without any episode.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per contrast and phase (``"all"`` first), with columns
        ``contrast``, ``phase``, ``group1``, ``group2`` (the groups compared;
        for ``n_repairs`` the predictor), ``n`` (clients with an outcome in
        the comparison), ``n1``, ``n2``, ``mean1``, ``mean2``, ``sd1``,
        ``sd2`` (outcome by group), ``r``, ``r_low``, ``r_high``, ``d``,
        ``d_low``, ``d_high``, ``p`` and ``n_no_outcome``.

    Notes
    -----
    For a two-group contrast, ``r`` is the point-biserial correlation
    between group membership (1 = ``group1``) and the outcome; ``d`` is
    Cohen's d, :math:`(\bar y_1 - \bar y_2)/s_p` with the pooled SD
    :math:`s_p^2 = ((n_1-1)s_1^2 + (n_2-1)s_2^2)/(n_1+n_2-2)`. (Exactly,
    :math:`r = d/\sqrt{d^2 + a(N-2)/N}`; the meta-analytic conversion
    :func:`d_to_r` drops the factor :math:`(N-2)/N`.) The CI of r uses
    Fisher's z (:func:`fisher_ci`, :math:`N = n_1 + n_2`); the CI of d uses
    the large-sample SE :math:`\sqrt{(n_1+n_2)/(n_1 n_2) + d^2/(2(n_1+n_2))}`
    (Hedges & Olkin, 1985); ``p`` is the two-sided pooled-variance t test
    (identical to the test of r = 0).

    For ``n_repairs``, ``r`` is the Pearson correlation between the number
    of repaired episodes and the outcome over analysed clients with an
    outcome, and ``d`` and its CI are converted from r and its CI with
    :func:`r_to_d` (equal groups), as a meta-analysis would.

    Clients with ``"mixed"`` patterns (some episodes repaired, some not) are
    in neither group of the two-group contrasts. Which episodes count as
    repaired depends on the rule: report it with the result.

    References
    ----------
    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture
    repair: A meta-analysis. *Psychotherapy*, 55(4), 508-519.

    Hedges, L. V., & Olkin, I. (1985). *Statistical methods for
    meta-analysis*. Academic Press.

    Examples
    --------
    >>> import alliance_ts as at
    >>> from alliance_ts.effects import outcome_association
    >>> sim = at.simulate(400, rng=2)
    >>> res = at.detect(sim.scores, scale="wai-sr")
    >>> table = outcome_association(res, sim.clients, outcome="outcome", by_phase=False)
    >>> table[["contrast", "n1", "n2", "r", "d"]].round(2)
                     contrast    n1    n2     r     d
    0  repaired_vs_unresolved   111    17  0.13  0.39
    1  repaired_vs_no_rupture   111   272  0.07  0.14
    2               n_repairs  <NA>  <NA>  0.08  0.15
    """
    contrasts = list(CONTRASTS) if contrast is None else ([contrast] if isinstance(contrast, str) else list(contrast))
    problems: list[Problem] = []
    bad = [c for c in contrasts if c not in CONTRASTS]
    if bad:
        problems.append(Problem("parameter 'contrast'", f"unknown contrast(s) {bad}; valid: {', '.join(CONTRASTS)}"))
    if not isinstance(result, Detection):
        problems.append(Problem("parameter 'result'", f"expected a Detection, got {type(result).__name__}"))
    if not isinstance(outcomes, pd.DataFrame):
        problems.append(Problem("parameter 'outcomes'", f"expected a DataFrame, got {type(outcomes).__name__}"))
    else:
        missing = [c for c in (client, outcome) if c not in outcomes.columns]
        if missing:
            problems.append(Problem("columns", f"{len(missing)} column(s) not found in outcomes: "
                                    + ", ".join(map(repr, missing)) + "; available: "
                                    + ", ".join(map(repr, list(outcomes.columns)[:20]))))
    if not 0 < level < 1:
        problems.append(Problem("parameter 'level'", f"must be between 0 and 1, got {level!r}"))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.effects.outcome_association()")
    y = _outcome_series(outcomes, client, outcome)
    if not higher_is_better:
        y = -y

    clients = result.clients[result.clients["included"]]
    ids = clients["client"].to_numpy()
    values = y.reindex(ids).to_numpy(dtype=float)
    _check_matches(y, result.clients["client"], ids, values, client, outcome)
    episodes = result.episodes
    rows = []
    for phase in ("all", *PHASES) if by_phase else ("all",):
        eps = episodes if phase == "all" else episodes[episodes["phase"] == phase]
        rep = eps[eps["status"] == "repaired"].groupby("client").size()
        unr = eps[eps["status"] == "unresolved"].groupby("client").size()
        n_rep = rep.reindex(ids, fill_value=0).to_numpy()
        n_unr = unr.reindex(ids, fill_value=0).to_numpy()
        none_at_all = clients["n_ruptures"].to_numpy() == 0
        for c in contrasts:
            if c == "n_repairs":
                rows.append(_correlation(phase, n_rep, values, level))
                continue
            g1 = (n_rep > 0) & (n_unr == 0)
            g2 = (n_unr > 0) & (n_rep == 0) if c == "repaired_vs_unresolved" else none_at_all
            second = "unresolved" if c == "repaired_vs_unresolved" else "no_rupture"
            rows.append(_two_groups(c, phase, "repaired", second, values[g1], values[g2], level))
    table = pd.DataFrame(rows, columns=[
        "contrast", "phase", "group1", "group2", "n", "n1", "n2", "mean1", "mean2", "sd1", "sd2",
        "r", "r_low", "r_high", "d", "d_low", "d_high", "p", "n_no_outcome",
    ])
    return table.astype({"n": "int64", "n1": "Int64", "n2": "Int64", "n_no_outcome": "int64"})


def _outcome_series(outcomes: pd.DataFrame, client: str, outcome: str) -> pd.Series:
    problems = []
    ids = outcomes[client]
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        examples = tuple(f"row {i} (client {v!r})" for i, v in zip(outcomes.index[dup][:5], ids[dup][:5]))
        problems.append(Problem(f"column {client!r}", f"{int(dup.sum())} rows share their client id with another row",
                                examples))
    values = pd.to_numeric(outcomes[outcome], errors="coerce")
    bad = (values.isna() & outcomes[outcome].notna()).to_numpy()
    if bad.any():
        examples = tuple(f"row {i} (value {v!r})" for i, v in zip(outcomes.index[bad][:5], outcomes[outcome][bad][:5]))
        problems.append(Problem(f"column {outcome!r}", f"{int(bad.sum())} rows with a non-numeric outcome", examples))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.effects.outcome_association()")
    return pd.Series(values.to_numpy(dtype=float), index=pd.Index(ids))


def _check_matches(y: pd.Series, all_ids: pd.Series, ids: np.ndarray, values: np.ndarray, client: str,
                   outcome: str) -> None:
    """Refuse outcomes that match no analysed client; warn about outcome rows of unknown clients."""
    where = "alliance_ts.effects.outcome_association()"
    if len(ids) and not np.isfinite(values).any():
        if y.empty:
            detail = "the outcomes table has no rows"
        elif not np.isfinite(y.to_numpy()).any():
            detail = f"every value of column {outcome!r} is missing"
        else:
            detail = (f"no analysed client of the result has an outcome: outcome ids e.g. {_first(y.index)}, "
                      f"result ids e.g. {_first(ids)} (are the ids of the same type, e.g. 7 vs '7'?)")
        raise InvalidInputError([Problem(f"column {client!r}" if not y.empty else "parameter 'outcomes'", detail)],
                                where)
    unknown = ~y.index.isin(pd.Index(all_ids))
    if unknown.any():
        examples = _first(y.index[unknown], 5)
        warnings.warn(f"{where}: {int(unknown.sum())} of {len(y)} outcome rows name a client that is not in the "
                      f"result and are not used; e.g. {examples}", AllianceWarning, stacklevel=3)


def _first(values: Any, k: int = 3) -> str:
    return ", ".join(repr(v) for v in pd.Index(values)[:k].tolist())  # Python scalars: 7, not np.int64(7)


def _two_groups(contrast, phase, name1, name2, y1, y2, level) -> dict[str, Any]:
    missing = int(np.isnan(y1).sum() + np.isnan(y2).sum())
    y1, y2 = y1[~np.isnan(y1)], y2[~np.isnan(y2)]
    n1, n2 = y1.size, y2.size
    row = dict(contrast=contrast, phase=phase, group1=name1, group2=name2, n=n1 + n2, n1=n1, n2=n2,
               mean1=_mean(y1), mean2=_mean(y2), sd1=_sd(y1), sd2=_sd(y2), r=math.nan, r_low=math.nan,
               r_high=math.nan, d=math.nan, d_low=math.nan, d_high=math.nan, p=math.nan, n_no_outcome=missing)
    if n1 < 2 or n2 < 2:
        return row
    ss = (n1 - 1) * np.var(y1, ddof=1) + (n2 - 1) * np.var(y2, ddof=1)
    sp = math.sqrt(ss / (n1 + n2 - 2))
    if sp == 0:
        return row
    d = (y1.mean() - y2.mean()) / sp
    n = n1 + n2
    r = d / math.sqrt(d * d + (n - 2) * n / (n1 * n2))
    se_d = math.sqrt(n / (n1 * n2) + d * d / (2 * n))
    zq = stats.norm.ppf(0.5 + level / 2)
    t = stats.ttest_ind(y1, y2, equal_var=True)
    r_low, r_high = fisher_ci(r, n, level)
    row.update(r=r, r_low=r_low, r_high=r_high, d=d, d_low=d - zq * se_d, d_high=d + zq * se_d, p=float(t.pvalue))
    return row


def _correlation(phase, x, y, level) -> dict[str, Any]:
    keep = ~np.isnan(y)
    x, y = x[keep].astype(float), y[keep]
    n = x.size
    row = dict(contrast="n_repairs", phase=phase, group1="n_repaired", group2="", n=n, n1=pd.NA, n2=pd.NA,
               mean1=_mean(x), mean2=_mean(y), sd1=_sd(x), sd2=_sd(y), r=math.nan, r_low=math.nan,
               r_high=math.nan, d=math.nan, d_low=math.nan, d_high=math.nan, p=math.nan,
               n_no_outcome=int((~keep).sum()))
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return row
    res = stats.pearsonr(x, y)
    r = float(res.statistic)
    r_low, r_high = fisher_ci(r, n, level)
    row.update(r=r, r_low=r_low, r_high=r_high, d=r_to_d(r), d_low=r_to_d(r_low), d_high=r_to_d(r_high),
               p=float(res.pvalue))
    return row


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if v.size else math.nan


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if v.size >= 2 else math.nan
