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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._lazy import stats
from .errors import AllianceWarning, FewClustersWarning, InvalidInputError, Problem, SmallGroupWarning
from .result import PHASES, Detection, one_course_problem

__all__ = [
    "CLUSTER_METHODS",
    "CONTRASTS",
    "TYPE_CONTRASTS",
    "FEW_CLUSTERS",
    "SMALL_GROUP",
    "FewClustersWarning",
    "Pooled",
    "SmallGroupWarning",
    "d_to_r",
    "fisher_ci",
    "outcome_association",
    "pool",
    "r_to_d",
]

CONTRASTS = ("repaired_vs_unresolved", "repaired_vs_no_rupture", "n_repairs")
#: Contrasts of results whose episodes have a rupture type (the observer and psq rules).
TYPE_CONTRASTS = ("confrontation_vs_withdrawal", "resolved_within_vs_not")
CLUSTER_METHODS = ("mixed", "robust")

#: Groups (two-group contrasts) or samples (``n_repairs``) below this many clients
#: trigger a :class:`SmallGroupWarning`.
SMALL_GROUP = 10

#: Fewer clusters than this trigger a :class:`FewClustersWarning`, by ``cluster_method``.
FEW_CLUSTERS = {"mixed": 10, "robust": 20}


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
    therapist: str | None = None,
    covariates: str | Sequence[str] | None = None,
    cluster_method: str = "mixed",
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
        ``"n_repairs"``; default all three. For a result whose episodes have
        a rupture ``type`` and ``resolved_within`` (the ``observer`` and
        ``psq`` rules) also ``"confrontation_vs_withdrawal"`` (clients all of
        whose ruptures showed confrontation markers, none withdrawal, vs the
        reverse; clients with both kinds are in neither group) and
        ``"resolved_within_vs_not"`` (clients all of whose ruptures were
        resolved within the session they began vs clients none of whose
        ruptures were), both in the default then.
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
    therapist : str, optional
        A column of ``outcomes`` naming each client's cluster (therapist,
        site, group): the estimates then allow for clients of one therapist
        being alike (see ``cluster_method``). Clients with an outcome but no
        cluster id are left out of the estimates, counted in ``n_excluded``
        and reported in an :class:`~alliance_ts.AllianceWarning`.
    covariates : str or list of str, optional
        Columns of ``outcomes`` to adjust for (e.g. baseline severity, for a
        residual-gain analysis, and treatment arm). Numeric columns (or text
        columns whose every value is a number) enter as they are; pandas
        ``Categorical`` and ``bool`` columns are dummy-coded against their
        first category (``False``), so pass a text column such as arm as
        ``outcomes["arm"].astype("category")``; other text columns are an
        error. Clients with an outcome but a missing covariate value are
        left out, counted in ``n_excluded`` and reported in a warning.
        Covariates that are constant among the clients of one comparison are
        dropped from that comparison's model.
    cluster_method : {"mixed", "robust"}, default "mixed"
        With ``therapist``: ``"mixed"`` fits a linear mixed model with a
        random intercept per cluster (statsmodels ``MixedLM``, REML) and
        reports the Wald (normal) interval of the group coefficient;
        ``"robust"`` fits OLS with cluster-robust (CR1) standard errors and a
        t interval on G - 1 degrees of freedom (G clusters). See Notes.

    Returns
    -------
    pandas.DataFrame
        One row per contrast and phase (``"all"`` first), with columns
        ``contrast``, ``phase``, ``group1``, ``group2`` (the groups compared;
        for ``n_repairs`` the predictor), ``n`` (clients with an outcome in
        the comparison, and, when adjusting, with a cluster id and every
        covariate), ``n1``, ``n2``, ``mean1``, ``mean2``, ``sd1``, ``sd2``
        (unadjusted outcome by group; for ``n_repairs`` the predictor and the
        outcome), ``r``, ``r_low``, ``r_high``, ``d``, ``d_low``, ``d_high``,
        ``p``, ``n_no_outcome``, and then

        - ``n_clusters``: clusters among the ``n`` clients (0 without
          ``therapist``);
        - ``method``: ``"pooled t"`` or ``"pearson r"`` (no adjustment),
          ``"OLS adjusted"`` (covariates, no clusters), ``"mixed model"`` or
          ``"cluster-robust OLS"``;
        - ``b``, ``b_se``, ``b_low``, ``b_high``: the regression coefficient
          of group membership (``group1`` = 1; an adjusted mean difference in
          outcome units, sign-flipped with ``higher_is_better=False``) or, for
          ``n_repairs``, of the number of repairs, with its SE and CI;
        - ``covariates``: the adjustment columns, comma-separated (dummies
          as ``arm[cbt]``; ``""`` if none);
        - ``icc``: intraclass correlation of the outcome by cluster, given
          group and covariates, from the random-intercept model's variance
          components, :math:`\hat\tau^2/(\hat\tau^2 + \hat\sigma^2)` (NaN
          without ``therapist``);
        - ``n_excluded``: clients of the comparison with an outcome but no
          cluster id or a missing covariate value, left out.

    Raises
    ------
    InvalidInputError
        Listing every problem at once: unknown contrast, columns not in
        ``outcomes``, non-numeric outcome or covariate values, a covariate
        that repeats the outcome, client or cluster column, an unknown
        ``cluster_method``, duplicate client ids, outcomes matching no client.

    Warns
    -----
    SmallGroupWarning
        An estimate was computed with a group of fewer than
        :data:`SMALL_GROUP` (10) clients (``n_repairs``: fewer than 10
        clients).
    FewClustersWarning
        An estimate rests on fewer than 10 clusters (mixed model) or 20
        (cluster-robust); see :data:`FEW_CLUSTERS`.
    AllianceWarning
        Clients left out for a missing cluster or covariate; a mixed model
        that did not converge (statsmodels' own messages are quoted).

    Notes
    -----
    **Without therapist or covariates.** For a two-group contrast, ``r`` is
    the point-biserial correlation between group membership (1 =
    ``group1``) and the outcome; ``d`` is Cohen's d,
    :math:`(\bar y_1 - \bar y_2)/s_p` with the pooled SD
    :math:`s_p^2 = ((n_1-1)s_1^2 + (n_2-1)s_2^2)/(n_1+n_2-2)`. (Exactly,
    :math:`r = d/\sqrt{d^2 + a(N-2)/N}`; the meta-analytic conversion
    :func:`d_to_r` drops the factor :math:`(N-2)/N`.) The CI of r uses
    Fisher's z (:func:`fisher_ci`, :math:`N = n_1 + n_2`); the CI of d uses
    the large-sample SE :math:`\sqrt{(n_1+n_2)/(n_1 n_2) + d^2/(2(n_1+n_2))}`
    (Hedges & Olkin, 1985); ``p`` is the two-sided pooled-variance t test
    (identical to the test of r = 0); ``b`` is the mean difference with SE
    :math:`s_p\sqrt{1/n_1 + 1/n_2}` and a t interval on N - 2 df.

    For ``n_repairs``, ``r`` is the Pearson correlation between the number
    of repaired episodes and the outcome over analysed clients with an
    outcome, and ``d`` and its CI are converted from r and its CI with
    :func:`r_to_d` (equal groups), as a meta-analysis would; ``b`` is the
    least-squares slope with a t interval on N - 2 df.

    **With therapist and/or covariates** the outcome is regressed on an
    intercept, group membership (or the number of repairs) and the
    covariates: OLS with t intervals (covariates only), a random-intercept
    mixed model, or OLS with cluster-robust SEs. For a two-group contrast
    :math:`d = b/s_p`, its interval is the interval of b divided by
    :math:`s_p`, and ``r`` and its interval are converted from d and its
    interval with :func:`d_to_r` (:math:`a = (n_1+n_2)^2/(n_1 n_2)`);
    ``p`` is the test of b = 0. The standardiser :math:`s_p` is the
    unadjusted pooled within-group SD of the outcome (not the residual SD
    after covariates, and not :math:`\sqrt{\hat\sigma^2 + \hat\tau^2}`), so
    that d keeps the scale of the unadjusted d and of the meta-analysis:
    adjustment then changes only the numerator and the interval. (In a
    balanced design, where each therapist sees the same numbers of both
    groups, the mixed-model b equals the raw mean difference, so d is
    unchanged and only its interval moves.) For ``n_repairs``,
    :math:`r = b\,s_x/s_y` (the standardised slope; with covariates it can
    in principle leave [-1, 1]) with the interval of b scaled the same way,
    and d from r with :func:`r_to_d`.

    **Why the mixed model is the default.** Ignoring the nesting of clients
    in therapists makes intervals too narrow and tests too liberal
    (Wampold & Serlin, 2000; Baldwin, Murray & Shadish, 2005). Both methods
    fix that, but psychotherapy trials usually have few therapists, and
    cluster-robust standard errors are biased downwards with few clusters
    (Cameron & Miller, 2015), while the REML random-intercept model gives
    usable fixed-effect estimates from about 10 clusters (Maas & Hox, 2005;
    McNeish & Stapleton, 2016) and the therapist variance component (ICC)
    that rupture-outcome papers report. ``"robust"`` makes no assumption
    about the form of the within-therapist correlation or the variances and
    suits many clusters (20 and more). Its CR1 variance is
    :math:`\frac{G}{G-1}\frac{N-1}{N-K}(X'X)^{-1}\sum_g X_g'\hat u_g\hat u_g'X_g(X'X)^{-1}`
    with a t(G - 1) reference distribution, as Cameron & Miller (2015)
    recommend. The mixed model's Wald interval uses the normal
    distribution (statsmodels offers no Kenward-Roger correction), one
    reason for the warning below 10 clusters. The ``icc`` is taken from the
    random-intercept model in both methods.

    **Small groups.** Below 10 clients in a group, Cohen's d is biased
    upwards by more than 4% (Hedges' correction
    :math:`J = 1 - 3/(4(n_1+n_2) - 9)`; Hedges, 1981) and its large-sample
    interval is unreliable; such estimates are still reported, with a
    :class:`SmallGroupWarning`.

    Clients with ``"mixed"`` patterns (some episodes repaired, some not) are
    in neither group of the two-group contrasts. Which episodes count as
    repaired depends on the rule: report it with the result.

    References
    ----------
    Baldwin, S. A., Murray, D. M., & Shadish, W. R. (2005). Empirically
    supported treatments or Type I errors? Problems with the analysis of
    data from group-administered treatments. *Journal of Consulting and
    Clinical Psychology*, 73(5), 924-935.

    Cameron, A. C., & Miller, D. L. (2015). A practitioner's guide to
    cluster-robust inference. *Journal of Human Resources*, 50(2), 317-372.

    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture
    repair: A meta-analysis. *Psychotherapy*, 55(4), 508-519.

    Hedges, L. V. (1981). Distribution theory for Glass's estimator of
    effect size and related estimators. *Journal of Educational
    Statistics*, 6(2), 107-128.

    Hedges, L. V., & Olkin, I. (1985). *Statistical methods for
    meta-analysis*. Academic Press.

    Maas, C. J. M., & Hox, J. J. (2005). Sufficient sample sizes for
    multilevel modeling. *Methodology*, 1(3), 86-92.

    McNeish, D. M., & Stapleton, L. M. (2016). The effect of small sample
    size on two-level model estimates: A review and illustration.
    *Educational Psychology Review*, 28(2), 295-314.

    Wampold, B. E., & Serlin, R. C. (2000). The consequence of ignoring a
    nested factor on measures of effect size in analysis of variance.
    *Psychological Methods*, 5(4), 425-433.

    Examples
    --------
    >>> import alliance_ts as at
    >>> from alliance_ts.effects import outcome_association
    >>> sim = at.simulate(400, rng=2)
    >>> res = at.detect(sim.scores, scale="wai-sr")
    >>> table = outcome_association(res, sim.clients, outcome="outcome", by_phase=False)
    >>> table[["contrast", "n1", "n2", "r", "d"]].round(2)
                     contrast    n1    n2     r     d
    0  repaired_vs_unresolved   120    19  0.09  0.25
    1  repaired_vs_no_rupture   120   260  0.06  0.12
    2               n_repairs  <NA>  <NA>  0.04  0.09

    With 12 therapists (a random intercept each) and a covariate:

    >>> clients = sim.clients.assign(therapist=sim.clients["client"] % 12,
    ...                              sessions=sim.clients["n_sessions"])
    >>> nested = outcome_association(res, clients, outcome="outcome", by_phase=False,
    ...                              therapist="therapist", covariates=["sessions"])
    >>> nested[["contrast", "n", "n_clusters", "method", "covariates"]]
                     contrast    n  n_clusters       method covariates
    0  repaired_vs_unresolved  139          12  mixed model   sessions
    1  repaired_vs_no_rupture  380          12  mixed model   sessions
    2               n_repairs  400          12  mixed model   sessions
    """
    typed = isinstance(result, Detection) and {"type", "resolved_within"} <= set(result.episodes.columns)
    default = list(CONTRASTS) + (list(TYPE_CONTRASTS) if typed else [])
    contrasts = default if contrast is None else ([contrast] if isinstance(contrast, str) else list(contrast))
    covs = [] if covariates is None else ([covariates] if isinstance(covariates, str) else list(covariates))
    problems: list[Problem] = []
    bad = [c for c in contrasts if c not in CONTRASTS + TYPE_CONTRASTS]
    if bad:
        problems.append(Problem("parameter 'contrast'", f"unknown contrast(s) {bad}; valid: "
                                f"{', '.join(CONTRASTS + TYPE_CONTRASTS)}"))
    untyped = [c for c in contrasts if c in TYPE_CONTRASTS]
    if untyped and isinstance(result, Detection) and not typed:
        problems.append(Problem("parameter 'contrast'", f"{', '.join(untyped)} need(s) rupture types and "
                                f"within-session resolution, which rule {result.rule!r} does not give; use a result "
                                "of the observer or psq rule"))
    if not isinstance(result, Detection):
        problems.append(Problem("parameter 'result'", f"expected a Detection, got {type(result).__name__}"))
    elif (several := one_course_problem(result)) is not None:
        problems.append(several)
    if not isinstance(outcomes, pd.DataFrame):
        problems.append(Problem("parameter 'outcomes'", f"expected a DataFrame, got {type(outcomes).__name__}"))
    else:
        wanted = [client, outcome] + ([therapist] if therapist is not None else []) + covs
        missing = [c for c in dict.fromkeys(wanted) if c not in outcomes.columns]
        if missing:
            hints = []
            if client in missing:
                hints.append("name the outcomes' id column with client=")
            kept = set(result.clients.columns) if isinstance(result, Detection) else set()
            if any(c in kept for c in missing if c != client):
                hints.append("columns kept with detect(keep=...) are in result.clients: merge them into outcomes")
            problems.append(Problem("columns", f"{len(missing)} column(s) not found in outcomes: "
                                    + ", ".join(map(repr, missing)) + "; available: "
                                    + ", ".join(map(repr, list(outcomes.columns)[:20]))
                                    + (f" ({'; '.join(hints)})" if hints else "")))
        problems += _covariate_problems(outcomes, covs, (client, outcome, therapist))
    if not 0 < level < 1:
        problems.append(Problem("parameter 'level'", f"must be between 0 and 1, got {level!r}"))
    if cluster_method not in CLUSTER_METHODS:
        problems.append(Problem("parameter 'cluster_method'",
                                f"unknown method {cluster_method!r}; valid: {', '.join(CLUSTER_METHODS)}"))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.effects.outcome_association()")
    y = _outcome_series(outcomes, client, outcome)
    if not higher_is_better:
        y = -y

    clients = result.clients[result.clients["included"]]
    ids = clients["client"].to_numpy()
    values = y.reindex(ids).to_numpy(dtype=float)
    _check_matches(y, result.clients["client"], ids, values, client, outcome)
    adj = None
    if therapist is not None or covs:
        adj = _design(outcomes, client, ids, therapist, covs, cluster_method, level)
        _warn_excluded(adj, ids, values, therapist)
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
                rows.append(_correlation(phase, n_rep, values, level, adj))
                continue
            if c == "confrontation_vs_withdrawal":
                kind = eps["type"].astype(str)
                conf = eps[kind.isin(["confrontation", "both"])].groupby("client").size()
                withd = eps[kind.isin(["withdrawal", "both"])].groupby("client").size()
                n_c = conf.reindex(ids, fill_value=0).to_numpy()
                n_w = withd.reindex(ids, fill_value=0).to_numpy()
                rows.append(_two_groups(c, phase, "confrontation", "withdrawal", values, (n_c > 0) & (n_w == 0),
                                        (n_w > 0) & (n_c == 0), level, adj))
                continue
            if c == "resolved_within_vs_not":
                within = eps["resolved_within"].astype(bool)
                yes = eps[within].groupby("client").size().reindex(ids, fill_value=0).to_numpy()
                no = eps[~within].groupby("client").size().reindex(ids, fill_value=0).to_numpy()
                rows.append(_two_groups(c, phase, "resolved_within", "not_within", values, (yes > 0) & (no == 0),
                                        (no > 0) & (yes == 0), level, adj))
                continue
            g1 = (n_rep > 0) & (n_unr == 0)
            g2 = (n_unr > 0) & (n_rep == 0) if c == "repaired_vs_unresolved" else none_at_all
            second = "unresolved" if c == "repaired_vs_unresolved" else "no_rupture"
            rows.append(_two_groups(c, phase, "repaired", second, values, g1, g2, level, adj))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    _warn_small(table, adj)
    return table.astype({"n": "int64", "n1": "Int64", "n2": "Int64", "n_no_outcome": "int64",
                         "n_clusters": "int64", "n_excluded": "int64"})


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


COLUMNS = ("contrast", "phase", "group1", "group2", "n", "n1", "n2", "mean1", "mean2", "sd1", "sd2",
           "r", "r_low", "r_high", "d", "d_low", "d_high", "p", "n_no_outcome",
           "n_clusters", "method", "b", "b_se", "b_low", "b_high", "covariates", "icc", "n_excluded")


@dataclass
class _Adjust:
    """Per analysed client (aligned with the result's ids): covariates, clusters, completeness."""

    z: np.ndarray                 # (n_clients, k) covariate design columns, NaN where missing
    names: list[str]              # design column names
    clusters: np.ndarray | None   # integer cluster codes, -1 where missing; None without a cluster column
    complete: np.ndarray          # bool: a cluster id (if asked) and every covariate
    method: str                   # "mixed" or "robust"
    level: float
    notes: list[str] = field(default_factory=list)   # model trouble, reported once per call

    @property
    def label(self) -> str:
        if self.clusters is None:
            return "OLS adjusted"
        return "mixed model" if self.method == "mixed" else "cluster-robust OLS"


def _covariate_problems(outcomes: pd.DataFrame, covs: list[str], others: tuple[str | None, ...]) -> list[Problem]:
    problems = []
    dup = [c for c in dict.fromkeys(covs) if covs.count(c) > 1]
    if dup:
        problems.append(Problem("parameter 'covariates'", f"named more than once: {', '.join(map(repr, dup))}"))
    clash = [c for c in dict.fromkeys(covs) if c in others]
    if clash:
        problems.append(Problem("parameter 'covariates'", "the outcome, client or cluster column cannot be a "
                                f"covariate: {', '.join(map(repr, clash))}"))
    for c in dict.fromkeys(covs):
        if c not in outcomes.columns or c in clash:
            continue
        col = outcomes[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col.dtype):
            continue
        num = pd.to_numeric(col, errors="coerce")
        bad = (num.isna() & col.notna()).to_numpy()
        if bad.any():
            examples = tuple(f"row {i} (value {v!r})" for i, v in zip(outcomes.index[bad][:5], col[bad][:5]))
            problems.append(Problem(f"column {c!r}", f"{int(bad.sum())} rows with a non-numeric covariate value; "
                                    f"to dummy-code a categorical covariate pass outcomes[{c!r}].astype('category')",
                                    examples))
    return problems


def _design(outcomes: pd.DataFrame, client: str, ids: np.ndarray, therapist: str | None, covs: list[str],
            method: str, level: float) -> _Adjust:
    frame = outcomes.set_index(client).reindex(pd.Index(ids))
    columns, names = [], []
    for c in covs:
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col.dtype):
            cats = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else [False, True]
            present = col.notna().to_numpy()
            for cat in cats[1:]:
                columns.append(np.where(present, (col == cat).to_numpy(dtype=bool), np.nan))
                names.append(f"{c}[{cat}]")
        else:
            columns.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
            names.append(c)
    z = np.column_stack(columns) if columns else np.empty((len(ids), 0))
    complete = ~np.isnan(z).any(axis=1)
    clusters = None
    if therapist is not None:
        codes, _ = pd.factorize(frame[therapist])   # missing ids -> -1
        clusters = np.asarray(codes, dtype=np.int64)
        complete &= clusters >= 0
    return _Adjust(z, names, clusters, complete, method, level)


def _warn_excluded(adj: _Adjust, ids: np.ndarray, values: np.ndarray, therapist: str | None) -> None:
    out = ~adj.complete & ~np.isnan(values)
    if not out.any():
        return
    parts = []
    if adj.clusters is not None:
        k = int((out & (adj.clusters < 0)).sum())
        if k:
            parts.append(f"{k} without a value of {therapist!r}")
    if adj.z.shape[1]:
        k = int((out & np.isnan(adj.z).any(axis=1)).sum())
        if k:
            parts.append(f"{k} with a missing covariate value")
    warnings.warn(f"alliance_ts.effects.outcome_association(): {int(out.sum())} analysed clients with an outcome are "
                  f"left out of the adjusted estimates ({'; '.join(parts)}; counted in column 'n_excluded'); "
                  f"e.g. clients {_first(ids[out], 5)}", AllianceWarning, stacklevel=3)


def _warn_small(table: pd.DataFrame, adj: _Adjust | None) -> None:
    where = "alliance_ts.effects.outcome_association()"
    two = table["contrast"] != "n_repairs"
    n1, n2 = table["n1"].fillna(0).astype(int), table["n2"].fillna(0).astype(int)
    computed = (np.isfinite(table["r"]) | np.isfinite(table["b"])).to_numpy()
    small = computed & np.where(two, np.minimum(n1, n2) < SMALL_GROUP, table["n"] < SMALL_GROUP)
    if small.any():
        rows = table[small]
        text = "; ".join(f"{c}/{p} (n = {n})" if c == "n_repairs" else f"{c}/{p} (n1 = {a}, n2 = {b})"
                         for c, p, n, a, b in zip(rows["contrast"], rows["phase"], rows["n"], rows["n1"],
                                                  rows["n2"]))
        warnings.warn(f"{where}: {len(rows)} estimate(s) rest on a group of fewer than {SMALL_GROUP} clients and "
                      f"are reported, but their large-sample intervals are unreliable at this size: {text}",
                      SmallGroupWarning, stacklevel=3)
    if adj is not None and adj.clusters is not None:
        fitted = ~table["method"].astype(str).str.contains("not estimable").to_numpy()  # those say so already
        few = computed & fitted & (table["n_clusters"] < FEW_CLUSTERS[adj.method]).to_numpy()
        if few.any():
            rows = table[few]
            text = "; ".join(f"{c}/{p} ({g} clusters)" for c, p, g in
                             zip(rows["contrast"], rows["phase"], rows["n_clusters"]))
            warnings.warn(f"{where}: {len(rows)} estimate(s) rest on fewer than {FEW_CLUSTERS[adj.method]} clusters, "
                          f"too few for a {adj.label} to give trustworthy standard errors: {text}",
                          FewClustersWarning, stacklevel=3)
    if adj is not None and adj.notes:
        warnings.warn(f"{where}: " + " | ".join(adj.notes), AllianceWarning, stacklevel=3)


def _empty_fit() -> dict[str, float]:
    return dict(b=math.nan, b_se=math.nan, b_low=math.nan, b_high=math.nan, p=math.nan, icc=math.nan)


def _fit(y: np.ndarray, x: np.ndarray, adj: _Adjust, sel: np.ndarray, where: str) -> dict[str, float]:
    """Coefficient of ``x`` in y ~ 1 + x + covariates (+ cluster), by ``adj``'s method."""
    from statsmodels.regression.linear_model import OLS  # imported when needed: statsmodels is slow to load

    z = adj.z[sel]
    if z.shape[1]:
        varies = np.ptp(z, axis=0) > 0
        if not varies.all():
            dropped = [name for name, v in zip(adj.names, varies) if not v]
            adj.notes.append(f"{where}: covariate(s) {', '.join(dropped)} constant among these clients, left out "
                             "of this model")
        fit_names = [name for name, v in zip(adj.names, varies) if v]
        z = z[:, varies]
    else:
        fit_names = []
    X = np.column_stack([np.ones(y.size), x, z])
    n, k = X.shape
    fit = _empty_fit()
    if n <= k or np.linalg.matrix_rank(X) < k:
        adj.notes.append(f"{where}: the group and the covariates are collinear or too few clients for "
                         f"{k} coefficients; no adjusted estimate")
        return fit
    alpha = 1 - adj.level
    fit["covariates"] = ", ".join(fit_names)  # type: ignore[assignment]
    if adj.clusters is None:
        res = OLS(y, X).fit()
        lo, hi = res.conf_int(alpha)[1]
        fit.update(b=res.params[1], b_se=res.bse[1], b_low=lo, b_high=hi, p=res.pvalues[1])
        return fit
    groups = adj.clusters[sel]
    sizes = np.unique(groups, return_counts=True)[1]
    if sizes.size < 2 or sizes.max() < 2:
        # one cluster: nothing to compare between clusters; every cluster a single client: the
        # cluster variance cannot be told apart from the residual one. Estimated without clusters.
        why = "all clients share one cluster" if sizes.size < 2 else "every cluster holds a single client"
        adj.notes.append(f"{where}: {why}, so the clustering cannot be estimated; reported without it "
                         "(OLS, method column says so)")
        res = OLS(y, X).fit()
        lo, hi = res.conf_int(alpha)[1]
        fit.update(b=res.params[1], b_se=res.bse[1], b_low=lo, b_high=hi, p=res.pvalues[1])
        fit["method"] = "OLS adjusted (clusters not estimable)"  # type: ignore[assignment]
        return fit
    mixed = _mixed(y, X, groups, adj, where)
    if adj.method == "robust":
        res = OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        lo, hi = res.conf_int(alpha)[1]
        fit.update(b=res.params[1], b_se=res.bse[1], b_low=lo, b_high=hi, p=res.pvalues[1])
        fit["icc"] = mixed["icc"]
        return fit
    return mixed


_BENIGN = ("boundary", "Hessian", "singular")


def _mixed(y: np.ndarray, X: np.ndarray, groups: np.ndarray, adj: _Adjust, where: str) -> dict[str, float]:
    from statsmodels.regression.mixed_linear_model import MixedLM

    fit = _empty_fit()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # Powell first, then L-BFGS: statsmodels' default gradient search often fails to converge
            # when the therapist variance is near 0, and reaches ~1e-6 precision only this way.
            res = MixedLM(y, X, groups=groups).fit(reml=True, method=["powell", "lbfgs"])
        except (np.linalg.LinAlgError, ValueError) as err:
            adj.notes.append(f"{where}: the mixed model could not be fitted ({err})")
            return fit
    tau2, sigma2 = float(np.asarray(res.cov_re)[0, 0]), float(res.scale)
    boundary = tau2 <= 1e-8 * sigma2
    messages = [str(w.message) for w in caught if not (boundary and any(s in str(w.message) for s in _BENIGN))]
    if not res.converged or messages:
        adj.notes.append(f"{where}: mixed model {'did not converge' if not res.converged else 'fitted'}; "
                         "statsmodels says: " + "; ".join(dict.fromkeys(messages)))
    b, se = float(res.fe_params[1]), float(res.bse_fe[1])
    half = stats.norm.ppf(0.5 + adj.level / 2) * se
    fit.update(b=b, b_se=se, b_low=b - half, b_high=b + half, p=float(2 * stats.norm.sf(abs(b / se))),
               icc=0.0 if boundary else tau2 / (tau2 + sigma2))
    return fit


def _new_columns(adj: _Adjust | None, unadjusted: str) -> dict[str, Any]:
    return dict(n_clusters=0, method=unadjusted if adj is None else adj.label, b=math.nan, b_se=math.nan,
                b_low=math.nan, b_high=math.nan, covariates="" if adj is None else ", ".join(adj.names),
                icc=math.nan, n_excluded=0)


def _two_groups(contrast, phase, name1, name2, values, g1, g2, level, adj) -> dict[str, Any]:
    has_y = ~np.isnan(values)
    missing = int(((g1 | g2) & ~has_y).sum())
    keep = has_y if adj is None else has_y & adj.complete
    sel1, sel2 = g1 & keep, g2 & keep
    y1, y2 = values[sel1], values[sel2]
    n1, n2 = y1.size, y2.size
    row = dict(contrast=contrast, phase=phase, group1=name1, group2=name2, n=n1 + n2, n1=n1, n2=n2,
               mean1=_mean(y1), mean2=_mean(y2), sd1=_sd(y1), sd2=_sd(y2), r=math.nan, r_low=math.nan,
               r_high=math.nan, d=math.nan, d_low=math.nan, d_high=math.nan, p=math.nan, n_no_outcome=missing)
    row.update(_new_columns(adj, "pooled t"))
    sel = sel1 | sel2
    if adj is not None:
        row["n_excluded"] = int(((g1 | g2) & has_y & ~adj.complete).sum())
        if adj.clusters is not None:
            row["n_clusters"] = int(np.unique(adj.clusters[sel]).size)
    if n1 < 2 or n2 < 2:
        return row
    ss = (n1 - 1) * np.var(y1, ddof=1) + (n2 - 1) * np.var(y2, ddof=1)
    sp = math.sqrt(ss / (n1 + n2 - 2))
    if sp == 0:
        return row
    n = n1 + n2
    if adj is None:
        d = (y1.mean() - y2.mean()) / sp
        r = d / math.sqrt(d * d + (n - 2) * n / (n1 * n2))
        se_d = math.sqrt(n / (n1 * n2) + d * d / (2 * n))
        zq = stats.norm.ppf(0.5 + level / 2)
        t = stats.ttest_ind(y1, y2, equal_var=True)
        r_low, r_high = fisher_ci(r, n, level)
        b, b_se = y1.mean() - y2.mean(), sp * math.sqrt(1 / n1 + 1 / n2)
        half = stats.t.ppf(0.5 + level / 2, n - 2) * b_se
        row.update(r=r, r_low=r_low, r_high=r_high, d=d, d_low=d - zq * se_d, d_high=d + zq * se_d,
                   p=float(t.pvalue), b=b, b_se=b_se, b_low=b - half, b_high=b + half)
        return row
    fit = _fit(values[sel], g1[sel].astype(float), adj, sel, f"{contrast}/{phase}")
    row.update(fit)
    d, d_low, d_high = fit["b"] / sp, fit["b_low"] / sp, fit["b_high"] / sp
    row.update(d=d, d_low=d_low, d_high=d_high, r=d_to_r(d, n1, n2), r_low=d_to_r(d_low, n1, n2),
               r_high=d_to_r(d_high, n1, n2))
    return row


def _correlation(phase, x, y, level, adj) -> dict[str, Any]:
    has_y = ~np.isnan(y)
    keep = has_y if adj is None else has_y & adj.complete
    xs, ys = x[keep].astype(float), y[keep]
    n = xs.size
    row = dict(contrast="n_repairs", phase=phase, group1="n_repaired", group2="", n=n, n1=pd.NA, n2=pd.NA,
               mean1=_mean(xs), mean2=_mean(ys), sd1=_sd(xs), sd2=_sd(ys), r=math.nan, r_low=math.nan,
               r_high=math.nan, d=math.nan, d_low=math.nan, d_high=math.nan, p=math.nan,
               n_no_outcome=int((~has_y).sum()))
    row.update(_new_columns(adj, "pearson r"))
    if adj is not None:
        row["n_excluded"] = int((has_y & ~adj.complete).sum())
        if adj.clusters is not None:
            row["n_clusters"] = int(np.unique(adj.clusters[keep]).size)
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return row
    if adj is None:
        res = stats.linregress(xs, ys)
        r = float(res.rvalue)
        r_low, r_high = fisher_ci(r, n, level)
        half = stats.t.ppf(0.5 + level / 2, n - 2) * res.stderr
        row.update(r=r, r_low=r_low, r_high=r_high, d=r_to_d(r), d_low=r_to_d(r_low), d_high=r_to_d(r_high),
                   p=float(res.pvalue), b=float(res.slope), b_se=float(res.stderr), b_low=res.slope - half,
                   b_high=res.slope + half)
        return row
    fit = _fit(ys, xs, adj, keep, f"n_repairs/{phase}")
    row.update(fit)
    scale = xs.std(ddof=1) / ys.std(ddof=1)
    r, r_low, r_high = fit["b"] * scale, fit["b_low"] * scale, fit["b_high"] * scale
    row.update(r=r, r_low=r_low, r_high=r_high, d=r_to_d(r), d_low=r_to_d(r_low), d_high=r_to_d(r_high))
    return row


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if v.size else math.nan


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if v.size >= 2 else math.nan


# Pooling across studies or sites (alliance_ts.meta uses the functions above, so it is
# imported once they exist): at.effects.pool is alliance_ts.meta.pool.
from .meta import Pooled, pool  # noqa: E402
