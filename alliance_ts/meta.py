r"""Pooling effects across studies or sites: random-effects meta-analysis.

:func:`pool` combines per-study correlations *r* (as Fisher's z) or
standardised mean differences *d* the way Eubanks, Muran & Safran (2018)
pooled the rupture-repair studies, and reports the pooled r and d with
their intervals, the heterogeneity statistics (Q, I², tau²) and the
prediction interval; with ``moderators=`` it fits a meta-regression.
Its input is either a table of per-study effects or one
:class:`~alliance_ts.Detection` per study or site with the clients'
outcomes, from which each study's effect is computed by
:func:`alliance_ts.effects.outcome_association`.

Model (Borenstein et al., 2009, ch. 12-16). Study *i* gives an estimate
:math:`y_i` with within-study variance :math:`v_i`,

.. math::

    y_i = \mu + u_i + e_i, \qquad u_i \sim N(0, \tau^2), \quad e_i \sim N(0, v_i),

with :math:`y_i = \operatorname{atanh} r_i` and :math:`v_i = 1/(n_i - 3)`
for correlations, :math:`y_i = d_i` for mean differences. The pooled
estimate is :math:`\hat\mu = \sum w_i^* y_i / \sum w_i^*` with
:math:`w_i^* = 1/(v_i + \hat\tau^2)` and
:math:`\operatorname{SE}(\hat\mu) = (\sum w_i^*)^{-1/2}`.

Which parts use statsmodels: the DerSimonian-Laird (``"DL"``) and
Paule-Mandel (``"PM"``) estimates of tau² and Cochran's Q come from
:func:`statsmodels.stats.meta_analysis.combine_effects` (``method_re="dl"``
and ``"pm"``); statsmodels does not truncate the DL estimate at zero, so
this module does (``max(0, .)``), and then computes the pooled estimate,
its interval, Knapp-Hartung and the prediction interval from the weights
itself, one code path for every method. REML, the meta-regression and the
report are written here.

References
----------
Borenstein, M., Hedges, L. V., Higgins, J. P. T., & Rothstein, H. R. (2009).
*Introduction to meta-analysis*. Wiley.

DerSimonian, R., & Laird, N. (1986). Meta-analysis in clinical trials.
*Controlled Clinical Trials*, 7(3), 177-188.

Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair:
A meta-analysis. *Psychotherapy*, 55(4), 508-519.

Hartung, J., & Knapp, G. (2001). On tests of the overall treatment effect in
meta-analysis with normally distributed responses. *Statistics in Medicine*,
20(12), 1771-1782.

Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a
meta-analysis. *Statistics in Medicine*, 21(11), 1539-1558.

Higgins, J. P. T., Thompson, S. G., & Spiegelhalter, D. J. (2009). A
re-evaluation of random-effects meta-analysis. *Journal of the Royal
Statistical Society: Series A*, 172(1), 137-159.

Paule, R. C., & Mandel, J. (1982). Consensus values and weighting factors.
*Journal of Research of the National Bureau of Standards*, 87(5), 377-385.

Raudenbush, S. W. (2009). Analyzing effect sizes: Random-effects models. In
H. Cooper, L. V. Hedges, & J. C. Valentine (Eds.), *The handbook of research
synthesis and meta-analysis* (2nd ed., pp. 295-315). Russell Sage Foundation.

Sidik, K., & Jonkman, J. N. (2002). A simple confidence interval for
meta-analysis. *Statistics in Medicine*, 21(21), 3153-3159.

Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance
estimators in the random-effects model. *Journal of Educational and
Behavioral Statistics*, 30(3), 261-293.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._lazy import optimize, stats
from .effects import CONTRASTS, d_to_r, outcome_association, r_to_d
from .errors import InvalidInputError, Problem
from .result import Detection

__all__ = ["METHODS", "Pooled", "pool"]

#: Estimators of the between-study variance tau².
METHODS = ("FE", "DL", "PM", "REML")

_WHERE = "alliance_ts.effects.pool()"


@dataclass(frozen=True, eq=False)
class Pooled:
    """A pooled effect: the result of :func:`pool`.

    Attributes
    ----------
    effect : {"r", "d"}
        The metric pooled: correlations (analysed as Fisher's z) or
        standardised mean differences.
    method : {"FE", "DL", "PM", "REML"}
        Estimator of tau² (``"FE"``: common effect, tau² = 0).
    k : int
        Number of studies.
    n_total : float
        Sum of the studies' sample sizes (NaN when they were not given).
    estimate, se : float
        The pooled effect in the analysed metric (Fisher's z for ``"r"``,
        d for ``"d"``) and its standard error (Knapp-Hartung-scaled when
        ``knapp_hartung``).
    ci : (float, float)
        Its confidence interval (analysed metric).
    z, p : float
        Test statistic of the pooled effect against 0 (a t statistic on
        ``k - 1`` df when ``knapp_hartung``) and its two-sided p value.
    tau2, tau : float
        Between-study variance (analysed metric) and its square root.
    q, q_df, q_p : float, int, float
        Cochran's Q with fixed-effect weights, ``k - 1`` and its chi² p value.
    i2, h2 : float
        :math:`I^2 = \\max(0, (Q - df)/Q)` (a proportion) and :math:`H^2 = Q/df`.
    pi : (float, float)
        Prediction interval for the effect of a new study (analysed metric;
        NaN for ``"FE"`` or ``k < 3``).
    r, r_ci, d, d_ci : float, (float, float)
        The pooled effect and its interval as a correlation and as a d
        (converted with :func:`~alliance_ts.effects.r_to_d` /
        :func:`~alliance_ts.effects.d_to_r`, equal groups).
    knapp_hartung : bool
    level : float
        Confidence level.
    studies : pandas.DataFrame
        One row per study: ``study``, ``value`` (r or d as given),
        ``n``, ``y`` (the analysed value: Fisher's z or d), ``variance``
        (of ``y``), ``se``, ``weight_fixed`` and ``weight_random`` (percent
        of the total weight), ``ci_low``, ``ci_high`` (the study's
        interval in the metric of ``value``).
    regression : pandas.DataFrame or None
        With moderators: one row per coefficient, ``term`` (``intercept``
        and each moderator), ``estimate``, ``se``, ``stat`` (z, or t with
        Knapp-Hartung), ``df`` (NaN for z), ``p``, ``ci_low``, ``ci_high``,
        in the analysed metric.
    qm : dict or None
        With moderators: the omnibus test of the moderators, ``stat``,
        ``df``, ``df2`` (None unless F), ``p``, ``test`` (``"chi2"`` or
        ``"F"``), and the residual heterogeneity ``tau2``, ``i2``, ``q_e``,
        ``q_e_df``, ``q_e_p``.
    """

    effect: str
    method: str
    k: int
    n_total: float
    estimate: float
    se: float
    ci: tuple[float, float]
    z: float
    p: float
    tau2: float
    tau: float
    q: float
    q_df: int
    q_p: float
    i2: float
    h2: float
    pi: tuple[float, float]
    r: float
    r_ci: tuple[float, float]
    d: float
    d_ci: tuple[float, float]
    knapp_hartung: bool
    level: float
    studies: pd.DataFrame
    regression: pd.DataFrame | None = None
    qm: dict[str, Any] | None = None

    def to_frame(self) -> pd.DataFrame:
        """One-row summary: every scalar attribute, intervals as ``_low``/``_high`` columns.

        ``pi_low``/``pi_high`` are in the analysed metric (Fisher's z for r);
        ``r_pi_low``/``r_pi_high`` (or ``d_pi_*``) give the prediction
        interval in the effect's own metric.
        """
        row: dict[str, Any] = {}
        for name in ("effect", "method", "k", "n_total", "estimate", "se", "ci", "z", "p", "tau2", "tau", "q",
                     "q_df", "q_p", "i2", "h2", "pi", "r", "r_ci", "d", "d_ci", "knapp_hartung", "level"):
            value = getattr(self, name)
            if isinstance(value, tuple):
                row[f"{name}_low"], row[f"{name}_high"] = value
            else:
                row[name] = value
        # the prediction interval also in r (and d), beside their confidence intervals
        low, high = self.pi_in_metric()
        if self.effect == "r":
            row.update(r_pi_low=low, r_pi_high=high)
        else:
            row.update(d_pi_low=low, d_pi_high=high)
        if self.qm is not None:
            row.update(qm=self.qm["stat"], qm_df=self.qm["df"], qm_p=self.qm["p"], tau2_residual=self.qm["tau2"])
        return pd.DataFrame([row])

    def report(self) -> str:
        """The pooled result as a sentence in the style of the meta-analysis.

        r and p without a leading zero and to two decimals (p to three
        below .01, ``p < .001`` below that), d and Q to two decimals, I² as
        a whole percent, tau² to three decimals. N is left out when the
        sample sizes are unknown; tau² and the prediction interval for the
        common-effect model (``"FE"``) and the prediction interval when
        ``k < 3``.
        """
        lev = f"{self.level * 100:g}%"
        if self.effect == "r":
            head = f"r = {_r(self.r)}, {lev} CI [{_r(self.r_ci[0])}, {_r(self.r_ci[1])}]"
        else:
            head = f"d = {_d(self.d)}, {lev} CI [{_d(self.d_ci[0])}, {_d(self.d_ci[1])}]"
        test = (f"t({self.k - 1}) = {self.z:.2f}" if self.knapp_hartung else f"z = {self.z:.2f}") + f", {_p(self.p)}"
        model = {"FE": "common-effect model", "DL": "random effects, DerSimonian-Laird",
                 "PM": "random effects, Paule-Mandel", "REML": "random effects, REML"}.get(self.method, self.method)
        if self.knapp_hartung:
            model += ", Knapp-Hartung"
        parts = [f"{head}, {test} ({model}), k = {self.k}"
                 + (f", N = {int(round(self.n_total)):,}" if np.isfinite(self.n_total) else "")]
        parts.append(f"d = {_d(self.d)}" if self.effect == "r" else f"r = {_r(self.r)}")
        parts.append(f"Q({self.q_df}) = {self.q:.2f}, {_p(self.q_p)}")
        parts.append(f"I² = {self.i2 * 100:.0f}%")
        if self.method != "FE":
            parts.append(f"tau² = {_tau2_text(self.tau2)}")
        if np.all(np.isfinite(self.pi)):
            low, high = self.pi_in_metric()
            fmt = _r if self.effect == "r" else _d
            parts.append(f"{lev} prediction interval [{fmt(low)}, {fmt(high)}]")
        if self.qm is not None and self.regression is not None:
            mods = [t for t in self.regression["term"] if t != "intercept"]
            test = (f"F({self.qm['df']}, {self.qm['df2']}) = {self.qm['stat']:.2f}" if self.qm["test"] == "F"
                    else f"QM({self.qm['df']}) = {self.qm['stat']:.2f}")
            parts.append(f"moderators {', '.join(mods)}: {test}, {_p(self.qm['p'])}")
        return "; ".join(parts)

    def pi_in_metric(self) -> tuple[float, float]:
        """The prediction interval in the metric of the effect (r back-transformed from z)."""
        if self.effect == "r":
            return (math.tanh(self.pi[0]), math.tanh(self.pi[1]))
        return self.pi


def _r(x: float) -> str:
    text = f"{x:.2f}"
    if text == "-0.00":
        text = "0.00"
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def _d(x: float) -> str:
    """A d to two decimals, without a negative zero."""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def _p(p: float) -> str:
    if p < 0.001:
        return "p < .001"
    text = f"{p:.3f}" if p < 0.01 else f"{p:.2f}"
    return "p = " + (text[1:] if text.startswith("0") else text)


def _tau2_text(tau2: float) -> str:
    if 0 < tau2 < 0.0005:
        return "< 0.001"
    return f"{tau2:.3f}"


def pool(
    table: Any,
    *,
    effect: str = "r",
    value: str | None = None,
    n: str = "n",
    variance: str | None = None,
    study: str | None = "study",
    method: str = "REML",
    knapp_hartung: bool = False,
    moderators: str | Sequence[str] | None = None,
    level: float = 0.95,
    outcomes: pd.DataFrame | Mapping[Any, pd.DataFrame] | None = None,
    outcome: str | None = None,
    contrast: str = "repaired_vs_unresolved",
    client: str = "client",
    higher_is_better: bool = True,
) -> Pooled:
    r"""Pool effects across studies or sites (random-effects meta-analysis).

    Parameters
    ----------
    table : pandas.DataFrame, mapping or list
        Either a table with one row per study (its effect and sample size
        or variance), or the studies' labelled trials: a mapping
        ``{study name: Detection}`` or a list of ``(name, Detection)``
        pairs, with ``outcomes``.
    effect : {"r", "d"}, default "r"
        The metric of the table's effects: correlations (pooled as Fisher's
        z) or standardised mean differences. Trials are always pooled as r.
    value : str, optional
        Column of the effects (default: the name of ``effect``, ``"r"`` or
        ``"d"``).
    n : str, default "n"
        Column of each study's sample size (total N; for ``"r"`` the number
        of pairs, more than 3). For ``"d"`` it may be omitted when
        ``variance`` is given, or replaced by columns ``n1`` and ``n2``.
    variance : str, optional
        For ``"d"``: column of each d's sampling variance (> 0). Without
        it, :math:`v_i = (n_1 + n_2)/(n_1 n_2) + d_i^2 / (2(n_1 + n_2))`
        from columns ``n1`` and ``n2`` when the table has both, else with
        equal groups :math:`v_i = 4/n_i + d_i^2/(2 n_i)` (Borenstein et
        al., 2009, eq. 4.20). Not used for ``"r"`` (:math:`v_i = 1/(n_i-3)`).
    study : str or None, default "study"
        Column of study names (unique); None numbers the rows 1, 2, ...
    method : {"REML", "DL", "PM", "FE"}, default "REML"
        Estimator of tau²: restricted maximum likelihood, DerSimonian-Laird,
        Paule-Mandel, or none (common/fixed effect, tau² = 0).
    knapp_hartung : bool, default False
        Knapp-Hartung (Hartung-Knapp-Sidik-Jonkman) interval and test: t on
        ``k - 1`` (meta-regression: ``k - p``) df with the scaled variance.
    moderators : str or list of str, optional
        Numeric study-level columns (0/1 for a binary moderator) for a
        meta-regression. Categorical columns are refused: dummy-code them
        (e.g. ``pd.get_dummies(table["type"], drop_first=True, dtype=float)``).
    level : float, default 0.95
        Confidence level of every interval.
    outcomes : DataFrame or mapping of DataFrames
        With trials: the clients' outcomes, one table for all studies (then
        client ids must be unique across studies) or ``{study: table}``.
    outcome, contrast, client, higher_is_better
        With trials: passed to
        :func:`~alliance_ts.effects.outcome_association` (``by_phase=False``);
        the study's r and n are its ``contrast`` row.

    Returns
    -------
    Pooled
        The pooled effect, heterogeneity, prediction interval, a table of
        the studies and, with moderators, the meta-regression.

    Raises
    ------
    InvalidInputError
        Once, listing every problem: missing columns, non-numeric or missing
        values, ``|r| >= 1``, n <= 3 for r, non-positive variances, fewer than
        two studies, duplicate study names, an unknown method or effect,
        categorical, missing or constant moderators, more moderators than
        the studies allow (at least ``m + 2`` studies for ``m``
        moderators), collinear moderators, and, with trials, studies whose
        contrast has no r.

    Notes
    -----
    **Fixed-effect weights and heterogeneity.** With :math:`w_i = 1/v_i`,
    :math:`\hat\mu_F = \sum w_i y_i / \sum w_i`,
    :math:`Q = \sum w_i (y_i - \hat\mu_F)^2` on :math:`k - 1` df,
    :math:`I^2 = \max(0, (Q - (k-1))/Q)` and :math:`H^2 = Q/(k-1)`
    (Higgins & Thompson, 2002).

    **tau².** DL: :math:`\hat\tau^2 = \max\{0, (Q - (k-1))/C\}`,
    :math:`C = \sum w_i - \sum w_i^2/\sum w_i`. PM: the root of the
    generalised :math:`Q(\tau^2) = \sum w_i^*(y_i - \hat\mu^*)^2 = k - 1`
    (0 when :math:`Q(0) < k - 1`). REML: the maximiser over
    :math:`\tau^2 \ge 0` of the restricted log-likelihood
    :math:`-\tfrac12 [\sum \log(v_i + \tau^2) + \log \sum w_i^* +
    \sum w_i^* (y_i - \hat\mu^*)^2]` (Viechtbauer, 2005), found as the root
    of its score equation (:func:`scipy.optimize.brentq`; 0 when the score
    is negative at 0).

    **Pooled effect.** :math:`\hat\mu` with :math:`w_i^*`, a Wald interval
    :math:`\hat\mu \pm z_{1-\alpha/2}\,\mathrm{SE}` and z test. With
    Knapp-Hartung, :math:`\mathrm{SE}^2 = q \,/ \sum w_i^*` with
    :math:`q = \sum w_i^* (y_i - \hat\mu)^2/(k-1)` and :math:`t_{k-1}`
    quantiles; q is **not** truncated at 1 (as metafor's default), so the
    interval can be narrower than the Wald one.

    **Prediction interval** (Higgins, Thompson & Spiegelhalter, 2009):
    :math:`\hat\mu \pm t_{k-2,\,1-\alpha/2} \sqrt{\hat\tau^2 + \mathrm{SE}^2}`
    on :math:`k - 2` df, with the SE of the pooled estimate as reported
    (Knapp-Hartung-scaled when chosen); undefined for ``k < 3`` and for
    ``"FE"``. For r, every interval is computed in z and back-transformed
    with tanh; d is converted from r (or r from d) with
    :func:`~alliance_ts.effects.r_to_d` (equal groups).

    **Meta-regression.** With moderator matrix :math:`X` (intercept plus
    :math:`m` columns, :math:`p = m + 1`) and :math:`W = \mathrm{diag}(1/(v_i
    + \hat\tau^2_{res}))`: :math:`b = (X'WX)^{-1}X'Wy`,
    :math:`\mathrm{Var}(b) = (X'WX)^{-1}` (times
    :math:`s^2 = \sum w_i^* e_i^2/(k-p)` with Knapp-Hartung, t on
    :math:`k-p` df). The residual tau² uses the same method: REML of the
    regression's restricted likelihood, the method-of-moments
    generalisation of DL, :math:`(Q_E - (k-p))/(\sum w_i -
    \mathrm{tr}[(X'WX)^{-1}X'W^2X])` with fixed-effect weights (Raudenbush,
    2009), or PM's :math:`Q_E(\tau^2) = k - p`; truncated at 0. QM
    :math:`= b_m' \mathrm{Var}(b_m)^{-1} b_m` is chi² on m df (with
    Knapp-Hartung, F = QM/m on m and k - p df). The residual Q_E uses
    fixed-effect weights; residual :math:`I^2 = \max(0, (Q_E - (k-p))/Q_E)`.
    The summary attributes (``estimate``, ``tau2``, ...) are the model
    without moderators.

    References
    ----------
    See :mod:`alliance_ts.meta`.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance_ts.meta import pool
    >>> table = pd.DataFrame({"study": ["A", "B", "C", "D"], "r": [0.10, 0.30, 0.35, 0.60],
    ...                       "n": [40, 60, 100, 30]})
    >>> res = pool(table, method="DL")
    >>> round(res.r, 3), round(res.tau2, 4)
    (0.337, 0.0173)
    >>> print(res.report())
    r = .34, 95% CI [.16, .49], z = 3.61, p < .001 (random effects, DerSimonian-Laird), k = 4, N = 230;
    d = 0.72; Q(3) = 5.60, p = .13; I² = 46%; tau² = 0.017; 95% prediction interval [-.34, .78]
    """
    problems: list[Problem] = []
    meth = method.upper() if isinstance(method, str) else method
    if meth not in METHODS:
        problems.append(Problem("parameter 'method'", f"unknown method {method!r}; valid: {', '.join(METHODS)}"))
    if effect not in ("r", "d"):
        problems.append(Problem("parameter 'effect'", f"must be 'r' or 'd', got {effect!r}"))
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0 < level < 1:
        problems.append(Problem("parameter 'level'", f"must be between 0 and 1, got {level!r}"))
    if not isinstance(knapp_hartung, bool | np.bool_):
        problems.append(Problem("parameter 'knapp_hartung'", f"must be True or False, got {knapp_hartung!r}"))
    mods = [] if moderators is None else ([moderators] if isinstance(moderators, str) else list(moderators))

    frame: pd.DataFrame | None
    if isinstance(table, pd.DataFrame):
        frame = table
        if outcomes is not None:
            problems.append(Problem("parameter 'outcomes'", "only used with trials (Detection results), not with a "
                                    "table of effects"))
    else:
        frame = _trials_table(table, outcomes, outcome, contrast, client, higher_is_better, problems)
        if frame is not None:
            effect, value, n, variance, study = "r", "r", "n", None, "study"
            if mods:
                problems.append(Problem("parameter 'moderators'", "moderators need a table of effects with "
                                        "the moderator columns; pool trials with a table built from their "
                                        "effects (see Pooled.studies)"))
    if frame is None or effect not in ("r", "d"):
        raise InvalidInputError(problems or [Problem("parameter 'table'", "nothing to pool")], _WHERE)

    data = _effects(frame, effect, value, n, variance, study, problems)
    X = _moderators(frame, mods, problems) if mods else None
    if problems:
        raise InvalidInputError(problems, _WHERE)
    if data is None:  # pragma: no cover - every reason for None is a problem
        raise InvalidInputError([Problem("parameter 'table'", "could not read the effects")], _WHERE)
    names, values, ns, y, v = data
    return _pool(names, values, ns, y, v, effect, str(meth), bool(knapp_hartung), float(level), mods, X)


# ----------------------------------------------------------------------------- input


def _trials_table(trials: Any, outcomes: Any, outcome: str | None, contrast: str, client: str,
                  higher_is_better: bool, problems: list[Problem]) -> pd.DataFrame | None:
    if isinstance(trials, Mapping):
        pairs = list(trials.items())
    elif isinstance(trials, Sequence) and not isinstance(trials, str) and all(
            isinstance(p, tuple) and len(p) == 2 for p in trials):
        pairs = list(trials)
    else:
        problems.append(Problem("parameter 'table'", "expected a DataFrame of per-study effects, a mapping "
                                "{study: Detection} or a list of (study, Detection) pairs; got "
                                f"{type(trials).__name__}"))
        return None
    bad = [f"study {name!r} ({type(res).__name__})" for name, res in pairs if not isinstance(res, Detection)]
    if bad:
        problems.append(Problem("parameter 'table'", f"{len(bad)} studies are not Detection results", tuple(bad[:5])))
    if outcome is None:
        problems.append(Problem("parameter 'outcome'", "name the outcome column of the outcomes table(s)"))
    if contrast not in CONTRASTS:
        problems.append(Problem("parameter 'contrast'", f"unknown contrast {contrast!r}; valid: "
                                f"{', '.join(CONTRASTS)}"))
    names = [name for name, _ in pairs]
    if outcomes is None:
        problems.append(Problem("parameter 'outcomes'", "trials need the clients' outcomes: one DataFrame for all "
                                "studies or a mapping {study: DataFrame}"))
    elif isinstance(outcomes, Mapping):
        absent = [nm for nm in names if nm not in outcomes]
        if absent:
            problems.append(Problem("parameter 'outcomes'", f"no outcomes for {len(absent)} studies",
                                    tuple(repr(a) for a in absent[:5])))
    elif not isinstance(outcomes, pd.DataFrame):
        problems.append(Problem("parameter 'outcomes'", f"expected a DataFrame or a mapping of DataFrames, got "
                                f"{type(outcomes).__name__}"))
    elif not bad:
        seen: dict[Any, Any] = {}
        shared = []
        for name, res in pairs:
            for c in pd.unique(res.clients["client"]):
                if c in seen and seen[c] != name:
                    shared.append(f"client {c!r} in studies {seen[c]!r} and {name!r}")
                seen.setdefault(c, name)
        if shared:
            problems.append(Problem("parameter 'outcomes'", f"{len(shared)} client ids occur in more than one "
                                    "study, so one outcomes table cannot tell them apart; give a mapping "
                                    "{study: DataFrame}", tuple(shared[:5])))
    if problems:
        return None
    rows = []
    for name, res in pairs:
        outs = outcomes[name] if isinstance(outcomes, Mapping) else outcomes
        if isinstance(outs, pd.DataFrame) and not isinstance(outcomes, Mapping) and client in outs.columns:
            outs = outs[outs[client].isin(pd.Index(res.clients["client"]))]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assoc = outcome_association(res, outs, outcome=str(outcome), contrast=contrast, by_phase=False,
                                            client=client, higher_is_better=higher_is_better)
        except InvalidInputError as err:
            problems.extend(Problem(f"study {name!r}, {p.where}", p.message, p.examples) for p in err.problems)
            continue
        for w in caught:  # the study's warnings again, naming the study
            warnings.warn(f"study {name!r}: {w.message}", w.category, stacklevel=3)
        row = assoc.iloc[0]
        if not np.isfinite(row["r"]):
            sizes = "" if pd.isna(row["n1"]) else f" (groups of {row['n1']} and {row['n2']} clients)"
            problems.append(Problem(f"study {name!r}", f"contrast {contrast!r} has no r{sizes}: each group needs at "
                                    "least 2 clients with an outcome and some variation"))
            continue
        rows.append({"study": name, "r": float(row["r"]), "n": int(row["n"])})
    return pd.DataFrame(rows, columns=["study", "r", "n"]) if not problems else None


def _numeric(frame: pd.DataFrame, col: str, problems: list[Problem]) -> np.ndarray | None:
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() | ~np.isfinite(values.to_numpy(dtype=float))).to_numpy()
    if bad.any():
        examples = tuple(f"row {i} (value {v!r})" for i, v in zip(frame.index[bad][:5], raw[bad][:5]))
        problems.append(Problem(f"column {col!r}", f"{int(bad.sum())} rows with a missing or non-numeric value",
                                examples))
        return None
    return values.to_numpy(dtype=float)


def _rows(frame: pd.DataFrame, mask: np.ndarray, values: np.ndarray) -> tuple[str, ...]:
    return tuple(f"row {i} (value {v:g})" for i, v in zip(frame.index[mask][:5], values[mask][:5]))


def _effects(frame: pd.DataFrame, effect: str, value: str | None, n: str, variance: str | None, study: str | None,
             problems: list[Problem]):
    value = value or effect
    # group sizes give the exact variance of d: used whenever both columns are there
    use_groups = effect == "d" and variance is None and {"n1", "n2"} <= set(frame.columns)
    need = [value]
    if study is not None:
        need.append(study)
    if effect == "r":
        need.append(n)
        if variance is not None:
            problems.append(Problem("parameter 'variance'", "only for effect='d'; the variance of Fisher's z is "
                                    "1/(n - 3), from column n"))
    elif variance is not None:
        need.append(variance)
    elif use_groups:
        need += ["n1", "n2"]
    else:
        need.append(n)
    missing = [c for c in dict.fromkeys(need) if c not in frame.columns]
    if missing:
        hint = ""
        if effect == "r" and value not in frame.columns and "d" in frame.columns:
            hint = " (effects given as d: pass effect='d')"
        elif study is not None and study in missing:
            hint = " (name the study column with study=, or study=None to number the studies)"
        problems.append(Problem("columns", f"{len(missing)} column(s) not found in the table: "
                                + ", ".join(map(repr, missing)) + "; available: "
                                + ", ".join(map(repr, list(frame.columns)[:20])) + hint))
        return None
    k = len(frame)
    if k < 2:
        problems.append(Problem("parameter 'table'", f"pooling needs at least 2 studies, got {k}"))
    if study is None:
        names = [str(i + 1) for i in range(k)]
    else:
        ids = frame[study]
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            examples = tuple(f"row {i} (study {s!r})" for i, s in zip(frame.index[dup][:5], ids[dup][:5]))
            problems.append(Problem(f"column {study!r}", f"{int(dup.sum())} rows share their study name with "
                                    "another row", examples))
        names = ids.tolist()
    es = _numeric(frame, value, problems)
    ns: np.ndarray | None = np.full(k, np.nan)
    v: np.ndarray | None = None
    if effect == "r":
        ns = _numeric(frame, n, problems)
        if es is not None:
            bad = np.abs(es) >= 1
            if bad.any():
                problems.append(Problem(f"column {value!r}", f"{int(bad.sum())} correlations with |r| >= 1",
                                        _rows(frame, bad, es)))
        if ns is not None:
            bad = ns <= 3
            if bad.any():
                problems.append(Problem(f"column {n!r}", f"{int(bad.sum())} studies with n <= 3 (Fisher's z needs "
                                        "n > 3: its variance is 1/(n - 3))", _rows(frame, bad, ns)))
            else:
                v = 1.0 / (ns - 3.0)
        y = np.arctanh(np.clip(es, -0.999, 0.999)) if es is not None else None
    else:
        y = es
        if variance is not None:
            v = _numeric(frame, variance, problems)
            if v is not None and (v <= 0).any():
                bad = v <= 0
                problems.append(Problem(f"column {variance!r}", f"{int(bad.sum())} variances <= 0",
                                        _rows(frame, bad, v)))
                v = None
            if n in frame.columns:
                ns = _numeric(frame, n, problems)
        elif use_groups:
            n1, n2 = _numeric(frame, "n1", problems), _numeric(frame, "n2", problems)
            if n1 is not None and n2 is not None:
                bad = (n1 <= 0) | (n2 <= 0)
                if bad.any():
                    problems.append(Problem("columns 'n1', 'n2'", f"{int(bad.sum())} studies with a group size <= 0",
                                            _rows(frame, bad, np.minimum(n1, n2))))
                elif es is not None:
                    ns = n1 + n2
                    v = ns / (n1 * n2) + es**2 / (2 * ns)
                    if n in frame.columns:
                        given = _numeric(frame, n, problems)
                        if given is not None and (bad := np.abs(given - ns) > 0.5).any():
                            problems.append(Problem(f"column {n!r}", f"{int(bad.sum())} studies whose n is not n1 + n2",
                                                    _rows(frame, bad, given)))
        else:
            ns = _numeric(frame, n, problems)
            if ns is not None:
                bad = ns <= 2
                if bad.any():
                    problems.append(Problem(f"column {n!r}", f"{int(bad.sum())} studies with n <= 2",
                                            _rows(frame, bad, ns)))
                elif es is not None:
                    v = 4.0 / ns + es**2 / (2 * ns)
    if y is None or v is None or ns is None or problems:
        return None
    return names, es, ns, y, v


def _moderators(frame: pd.DataFrame, mods: list[str], problems: list[Problem]) -> np.ndarray | None:
    missing = [m for m in mods if m not in frame.columns]
    if missing:
        problems.append(Problem("parameter 'moderators'", f"{len(missing)} moderator column(s) not found: "
                                + ", ".join(map(repr, missing))))
        return None
    if len(set(mods)) != len(mods):
        problems.append(Problem("parameter 'moderators'", f"a moderator is named twice: {mods}"))
        return None
    cols = []
    for m in mods:
        col = frame[m]
        if col.dtype == bool:
            col = col.astype(float)
        if not pd.api.types.is_numeric_dtype(col):
            problems.append(Problem(f"moderator {m!r}", f"is not numeric (dtype {col.dtype}); categorical moderators "
                                    "are not supported: dummy-code them, e.g. pd.get_dummies(table[" + repr(m)
                                    + "], drop_first=True, dtype=float), and pass the dummy columns"))
            continue
        vals = col.to_numpy(dtype=float)
        bad = ~np.isfinite(vals)
        if bad.any():
            problems.append(Problem(f"moderator {m!r}", f"{int(bad.sum())} missing values",
                                    tuple(f"row {i}" for i in frame.index[bad][:5])))
            continue
        if np.ptp(vals) == 0:
            problems.append(Problem(f"moderator {m!r}", f"is constant ({vals[0]:g}) across the studies"))
            continue
        cols.append(vals)
    k, n_mods = len(frame), len(mods)
    if k < n_mods + 2:
        problems.append(Problem("parameter 'moderators'", f"{n_mods} moderator(s) need at least {n_mods + 2} "
                                f"studies (intercept + {n_mods} coefficients + 1 residual df), got {k}"))
    if len(cols) != n_mods or k < n_mods + 2:
        return None
    X = np.column_stack([np.ones(k), *cols])
    if np.linalg.matrix_rank(X) < X.shape[1]:
        problems.append(Problem("parameter 'moderators'", f"the moderators {mods} are collinear (with each other "
                                "or the intercept)"))
        return None
    return X


# ----------------------------------------------------------------------------- estimation


def _statsmodels_tau2(y: np.ndarray, v: np.ndarray, method: str) -> tuple[float, float]:
    """tau² (DL or PM) and Cochran's Q from statsmodels' ``combine_effects``."""
    from statsmodels.stats.meta_analysis import combine_effects

    # statsmodels' DL tau² can be negative (Q < k - 1) and its random-effects SE then NaN: truncated below
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "PM":
            res = combine_effects(y, v, method_re="pm", atol=1e-12, maxiter=1000)
        else:
            res = combine_effects(y, v, method_re="dl")
    tau2 = max(0.0, float(res.tau2))
    if method == "PM" and tau2 > 0 and abs(_q_gen(y, v, np.ones((len(y), 1)), tau2) - (len(y) - 1)) > 1e-8:
        tau2 = _pm(y, v, np.ones((len(y), 1)))  # not converged: solve the estimating equation directly
    return tau2, float(res.q)


def _wls(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = 1.0 / (v + tau2)
    xtwx = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(xtwx)
    b = cov @ (X.T @ (w * y))
    return b, cov, w


def _q_gen(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> float:
    b, _, w = _wls(y, v, X, tau2)
    e = y - X @ b
    return float(np.sum(w * e**2))


def _pm(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    df = len(y) - X.shape[1]
    return _root_from_zero(lambda t: _q_gen(y, v, X, t) - df, y, v)


def _root_from_zero(f: Any, y: np.ndarray, v: np.ndarray) -> float:
    """The tau² >= 0 where the decreasing function ``f`` crosses 0 (0 when it starts at or below 0)."""
    if f(0.0) <= 0:
        return 0.0
    hi = max(float(np.var(y)), float(v.max()), 1e-4)
    while f(hi) > 0:  # widen the bracket until the sign changes
        hi *= 4
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-14, rtol=1e-12))


def _dl_mm(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    """Method-of-moments (DerSimonian-Laird type) tau² for a meta-regression (Raudenbush, 2009)."""
    k, p = X.shape
    _, cov, w = _wls(y, v, X, 0.0)
    q_e = _q_gen(y, v, X, 0.0)
    denom = w.sum() - np.trace(cov @ (X.T @ ((w**2)[:, None] * X)))
    return max(0.0, (q_e - (k - p)) / denom)


def _reml_score(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> float:
    """Derivative of the restricted log-likelihood in tau²: (y'PPy - tr P)/2."""
    _, cov, w = _wls(y, v, X, tau2)
    W = np.diag(w)
    P = W - W @ X @ cov @ X.T @ W
    Py = P @ y
    return 0.5 * (float(Py @ Py) - float(np.trace(P)))


def _reml(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    return _root_from_zero(lambda t: _reml_score(y, v, X, t), y, v)


def _tau2(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str) -> float:
    if method == "FE":
        return 0.0
    if method == "REML":
        return _reml(y, v, X)
    if X.shape[1] == 1:
        return _statsmodels_tau2(y, v, method)[0]
    return _dl_mm(y, v, X) if method == "DL" else _pm(y, v, X)


def _pool(names: list[Any], values: np.ndarray, ns: np.ndarray, y: np.ndarray, v: np.ndarray, effect: str,
          method: str, kh: bool, level: float, mods: list[str], X: np.ndarray | None) -> Pooled:
    k = len(y)
    ones = np.ones((k, 1))
    w_fe = 1.0 / v
    mu_fe = float(np.sum(w_fe * y) / w_fe.sum())
    q = float(np.sum(w_fe * (y - mu_fe) ** 2))
    if method in ("DL", "PM"):
        tau2, q_sm = _statsmodels_tau2(y, v, method)
        q = q_sm
    else:
        tau2 = _tau2(y, v, ones, method)
    df = k - 1
    b, cov, w = _wls(y, v, ones, tau2)
    mu = float(b[0])
    se = math.sqrt(cov[0, 0])
    if kh:
        scale = float(np.sum(w * (y - mu) ** 2)) / df
        se = math.sqrt(scale) * se
        crit = float(stats.t.ppf(0.5 + level / 2, df))
        stat = mu / se
        p = float(2 * stats.t.sf(abs(stat), df))
    else:
        crit = float(stats.norm.ppf(0.5 + level / 2))
        stat = mu / se
        p = float(2 * stats.norm.sf(abs(stat)))
    ci = (mu - crit * se, mu + crit * se)
    if method == "FE" or k < 3:
        pi = (math.nan, math.nan)
    else:
        half = float(stats.t.ppf(0.5 + level / 2, k - 2)) * math.sqrt(tau2 + se**2)
        pi = (mu - half, mu + half)
    q_p = float(stats.chi2.sf(q, df))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    if effect == "r":
        r, r_ci = math.tanh(mu), (math.tanh(ci[0]), math.tanh(ci[1]))
        d, d_ci = float(r_to_d(r)), (float(r_to_d(r_ci[0])), float(r_to_d(r_ci[1])))
    else:
        d, d_ci = mu, ci
        r, r_ci = float(d_to_r(d)), (float(d_to_r(ci[0])), float(d_to_r(ci[1])))

    zq = float(stats.norm.ppf(0.5 + level / 2))
    se_i = np.sqrt(v)
    low, high = y - zq * se_i, y + zq * se_i
    if effect == "r":
        low, high = np.tanh(low), np.tanh(high)
    studies = pd.DataFrame({
        "study": names, "value": values, "n": ns, "y": y, "variance": v, "se": se_i,
        "weight_fixed": 100 * w_fe / w_fe.sum(), "weight_random": 100 * w / w.sum(),
        "ci_low": low, "ci_high": high,
    })
    regression, qm = (None, None) if X is None else _regression(y, v, X, mods, method, kh, level)
    return Pooled(effect=effect, method=method, k=k, n_total=float(ns.sum()), estimate=mu, se=se, ci=ci, z=stat, p=p,
                  tau2=tau2, tau=math.sqrt(tau2), q=q, q_df=df, q_p=q_p, i2=i2, h2=q / df, pi=pi, r=r, r_ci=r_ci,
                  d=d, d_ci=d_ci, knapp_hartung=kh, level=level, studies=studies, regression=regression, qm=qm)


def _regression(y: np.ndarray, v: np.ndarray, X: np.ndarray, mods: list[str], method: str, kh: bool,
                level: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    k, p = X.shape
    m = p - 1
    tau2 = _tau2(y, v, X, method)
    b, cov, w = _wls(y, v, X, tau2)
    df_res = k - p
    if kh:
        cov = cov * float(np.sum(w * (y - X @ b) ** 2)) / df_res
    se = np.sqrt(np.diag(cov))
    stat = b / se
    if kh:
        pvals = 2 * stats.t.sf(np.abs(stat), df_res)
        crit = float(stats.t.ppf(0.5 + level / 2, df_res))
    else:
        pvals = 2 * stats.norm.sf(np.abs(stat))
        crit = float(stats.norm.ppf(0.5 + level / 2))
    table = pd.DataFrame({
        "term": ["intercept", *mods], "estimate": b, "se": se, "stat": stat,
        "df": float(df_res) if kh else math.nan, "p": pvals, "ci_low": b - crit * se, "ci_high": b + crit * se,
    })
    bm = b[1:]
    qm: dict[str, Any]
    qm_stat = float(bm @ np.linalg.solve(cov[1:, 1:], bm))
    if kh:
        qm = {"stat": qm_stat / m, "df": m, "df2": df_res, "p": float(stats.f.sf(qm_stat / m, m, df_res)),
              "test": "F"}
    else:
        qm = {"stat": qm_stat, "df": m, "df2": None, "p": float(stats.chi2.sf(qm_stat, m)), "test": "chi2"}
    q_e = _q_gen(y, v, X, 0.0)
    qm.update(tau2=tau2, i2=max(0.0, (q_e - df_res) / q_e) if q_e > 0 else 0.0, q_e=q_e, q_e_df=df_res,
              q_e_p=float(stats.chi2.sf(q_e, df_res)))
    return table, qm
