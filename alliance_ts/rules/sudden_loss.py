"""Sudden losses: Tang & DeRubeis' sudden-gain criteria applied to alliance drops.

The three criteria are computed exactly as the R package *suddengains*
(``identify_sg()``, Wiedemann et al., 2020) computes them; applied to alliance
scores, its search for decreases finds sudden *drops* of the alliance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .._lazy import stats
from ..errors import InvalidInputError, Problem
from ..panel import Block, Panel
from ..params import choice, flag, number
from ._base import BlockResult, Rule, register_rule, scan_episodes

__all__ = ["SuddenLoss", "reliable_change_cutoff", "t_critical"]

TANG_1999 = (
    "Tang, T. Z., & DeRubeis, R. J. (1999). Sudden gains and critical sessions in "
    "cognitive-behavioral therapy for depression. Journal of Consulting and Clinical "
    "Psychology, 67(6), 894-904."
)
WIEDEMANN_2020 = (
    "Wiedemann, M., Thew, G. R., Stott, R., & Ehlers, A. (2020). suddengains: An R "
    "package to identify sudden gains in longitudinal data. PLOS ONE, 15(3), e0230276."
)
LUTZ_2013 = (
    "Lutz, W., Ehrlich, T., Rubel, J., Hallwachs, N., Röttger, M.-A., Jorasz, C., "
    "Mocanu, S., Vocks, S., Schulte, D., & Tschitsaz-Stucki, A. (2013). The ups and downs "
    "of psychotherapy: Sudden gains and sudden losses identified with session reports. "
    "Psychotherapy Research, 23(1), 14-24."
)


def reliable_change_cutoff(sd: float, reliability: float) -> float:
    """Criterion-1 cut-off from the reliable change index.

    ``1.96 * sqrt(2) * sd * sqrt(1 - reliability)`` (Jacobson & Truax, 1991),
    the value suddengains' ``define_crit1_cutoff()`` returns.

    Examples
    --------
    >>> round(reliable_change_cutoff(sd=8.0, reliability=0.9), 4)
    7.0123
    """
    return 1.96 * math.sqrt(2.0) * sd * math.sqrt(1.0 - reliability)


def t_critical(alpha: float, df: int) -> float:
    """``|t quantile(alpha / 2, df)|``, as ``abs(qt(alpha / 2, df))`` in R.

    Examples
    --------
    >>> [round(t_critical(0.05, df), 3) for df in (4, 3, 2)]
    [2.776, 3.182, 4.303]
    """
    return float(abs(stats.t.ppf(alpha / 2.0, df)))


@register_rule(
    "sudden_loss",
    family="sudden_loss",
    summary=(
        "Tang & DeRubeis criteria on drops between consecutive sessions (absolute "
        "cut-off, 25% of the pre score, t-test of the 3 sessions before vs after), "
        "as suddengains::identify_sg() computes them."
    ),
    reference=TANG_1999 + " Implementation: " + WIEDEMANN_2020,
)
@dataclass(frozen=True)
class SuddenLoss(Rule):
    r"""Sudden losses of the alliance between consecutive sessions.

    Parameters
    ----------
    cutoff : float or None, default None
        Criterion 1: the least drop :math:`x_n - x_{n+1}` in score units.
        Give either ``cutoff`` or ``reliability``.
    reliability : float or None, default None
        Reliability of the scale (e.g. Cronbach's alpha) in [0, 1): the cut-off
        becomes the reliable change index
        :math:`1.96 \sqrt{2}\, SD \sqrt{1 - reliability}`.
    sd : float or None, default None
        The SD for the reliable change index. Default: the SD of the analysed
        clients' first observed scores (the analogue of suddengains'
        pre-treatment SD), reported in ``Detection.params``.
    pct : float or None, default 0.25
        Criterion 2: the drop must be at least ``pct`` times :math:`x_n`.
        None switches criterion 2 off.
    alpha : float, default 0.05
        Criterion 3: two-tailed alpha of the critical t value.
    adjust : bool, default True
        Criterion 3: use the critical t value for the available degrees of
        freedom (missing-data adjustment, Lutz et al. 2013). False uses
        ``critical_value`` for every interval.
    critical_value : float, default 2.776
        Critical value used when ``adjust=False``.
    repair : {"full", "reversal"}, default "full"
        This library's extension (see Notes): what counts as the repair.

    Notes
    -----
    Let :math:`x_s` be the score at session number :math:`s` (missing when
    the session was missed). The interval from session :math:`n` to
    :math:`n+1` is a **sudden loss** when all three criteria hold:

    1. :math:`x_n - x_{n+1} \ge cutoff`;
    2. :math:`x_n - x_{n+1} \ge pct \cdot x_n`;
    3. :math:`\bar x_{pre} - \bar x_{post} > t_{crit}\, s_{pooled}`, where
       *pre* holds the available scores of sessions :math:`n-2, n-1, n`,
       *post* those of :math:`n+1, n+2, n+3`,
       :math:`s_{pooled} = \sqrt{((n_{pre}-1)s_{pre}^2 + (n_{post}-1)s_{post}^2)
       / (n_{pre}+n_{post}-2)}` and
       :math:`t_{crit} = |t_{\alpha/2,\, n_{pre}+n_{post}-2}|`
       (2.776 for 3+3 scores, 3.182 for 5, 4.303 for 2+2 at alpha = .05).

    **Untestable is not "no".** Sessions :math:`n` and :math:`n+1` must both
    be observed (no bridging of a missed session), and criterion 3 needs at
    least two scores in each window; otherwise the interval is untestable.
    A client's first and last intervals are therefore always untestable, and
    a client needs four consecutive observed sessions for any test. Per
    client, ``clients`` reports ``n_intervals`` (session span, last minus
    first session number), ``n_tested``, ``n_untestable`` and ``n_losses``
    (intervals meeting all criteria: the count suddengains reports).
    suddengains' ``count_intervals()`` leaves the first and last interval of
    each client out of its total, so its count of intervals not analysed is
    2 lower per client than ``n_untestable``. A client without any testable
    interval is not analysed (``included=False``).

    The per-interval verdict is in ``sessions["sudden_loss"]`` at the post
    session :math:`n+1`: True / False for a tested interval, missing when
    untestable. These verdicts equal ``identify_sg()``'s (``sg_crit2_pct =
    pct``, ``sg_crit3_alpha = alpha``, ``sg_crit3_adjust = adjust``) on the
    same scores laid out with one column per session number.

    **Episodes (this library's extension).** Each sudden loss opens an episode
    at the post session :math:`n+1` (``start``) with ``pre`` = :math:`x_n`;
    it is repaired at the first later observed session with a score of at
    least :math:`x_n` (``repair="full"``) or at least the midpoint
    :math:`x_{n+1} + (x_n - x_{n+1})/2` (``repair="reversal"``, in the spirit
    of the package's reversal criterion), else unresolved. A further sudden
    loss inside an open episode deepens it rather than opening another.
    By design criterion 3 rejects a one-session V (the post window is not
    stable): this rule finds *sustained* drops.

    References
    ----------
    .. [1] Tang & DeRubeis (1999), see ``TANG_1999``.
    .. [2] Wiedemann et al. (2020), see ``WIEDEMANN_2020``.
    .. [3] Lutz et al. (2013), see ``LUTZ_2013``.
    """

    cutoff: float | None = number(None, "criterion 1: least drop between consecutive sessions, in score units "
                                  "(give cutoff or reliability)", low=0, low_open=True, allow_none=True)
    reliability: float | None = number(None, "reliability of the scale: criterion 1 is then the reliable change "
                                       "index (give cutoff or reliability)", low=0, high=1, high_open=True,
                                       allow_none=True)
    sd: float | None = number(None, "SD for the reliable change index (None: SD of the first scores)", low=0,
                              low_open=True, allow_none=True)
    pct: float | None = number(0.25, "criterion 2: least drop as a share of the pre score (None: off)", low=0,
                               low_open=True, allow_none=True)
    alpha: float = number(0.05, "criterion 3: two-tailed alpha of the critical t value", low=0, high=1,
                          low_open=True, high_open=True)
    adjust: bool = flag(True, "criterion 3: critical t for the available degrees of freedom")
    critical_value: float = number(2.776, "criterion 3: critical value when adjust is False", low=0, low_open=True)
    repair: str = choice("full", "what repairs: back to the pre score, or past the midpoint", ("full", "reversal"))

    strictness = "cutoff"
    detects = ("sustained",)
    sample_dependent = ("sd",)
    trusted_output = True
    client_columns = {
        "n_intervals": "int64",
        "n_tested": "int64",
        "n_untestable": "int64",
        "n_losses": "int64",
    }
    session_columns = {"sudden_loss": "boolean"}
    episode_columns = {"magnitude": "float64"}

    def check(self) -> list[Problem]:
        problems = super().check()
        if self.cutoff is None and self.reliability is None:
            problems.append(
                Problem(
                    "parameter 'cutoff'",
                    "sudden_loss needs cutoff= (least drop in score units) or "
                    "reliability= (and optionally sd=) for the reliable change index",
                )
            )
        if self.sd is not None and self.reliability is None:
            problems.append(Problem("parameter 'sd'", "only used with reliability="))
        if (
            self.cutoff is not None
            and self.reliability is not None
            and not problems
            and not (
                self.sd is not None
                and math.isclose(self.cutoff, reliable_change_cutoff(self.sd, self.reliability), rel_tol=1e-9)
            )
        ):
            problems.append(
                Problem(
                    "parameter 'cutoff'",
                    "give cutoff= or reliability=, not both (unless cutoff equals the "
                    "reliable change index for the given sd=)",
                )
            )
        return problems

    def needs_sample(self) -> bool:
        """The SD of the first scores is estimated only for the reliable change index without ``sd``."""
        return self.cutoff is None and self.sd is None

    def prepare(self, panel: Panel, clients: np.ndarray) -> SuddenLoss:
        if self.cutoff is not None:
            return self
        sd = self.sd
        if sd is None:
            firsts = panel.obs_values[panel.obs_offsets[clients]] if clients.size else np.array([])
            if firsts.size >= 2:  # math.fsum: independent of the clients' order
                mean = math.fsum(firsts.tolist()) / firsts.size
                sd = math.sqrt(math.fsum(((firsts - mean) ** 2).tolist()) / (firsts.size - 1))
            else:
                sd = math.nan
            if not (math.isfinite(sd) and sd > 0):
                raise InvalidInputError(
                    [
                        Problem(
                            "parameter 'sd'",
                            f"cannot estimate the SD of the first scores from {firsts.size} "
                            "analysed client(s) (need at least 2 with different first "
                            "scores); pass sd= for the reliable change index",
                        )
                    ],
                    "alliance_ts.detect()",
                )
        return replace(self, sd=sd, cutoff=reliable_change_cutoff(sd, float(self.reliability or 0.0)))

    def label(self, block: Block) -> BlockResult:
        x, s, n = block.x, block.s, block.n
        m, length = x.shape
        valid = block.valid
        cutoff = float(self.cutoff) if self.cutoff is not None else math.nan

        # Pad three columns on each side once; shifted windows are then views.
        pad = 3
        xp = np.pad(x, ((0, 0), (pad, pad)), constant_values=np.nan)
        sp = np.pad(s, ((0, 0), (pad, pad)), constant_values=0)
        vp = np.pad(valid, ((0, 0), (pad, pad)), constant_values=False)

        def at(a, d):
            """``a`` shifted so that column j holds original column j + d."""
            return a[:, pad + d : pad + d + length]

        # Interval j -> j+1 in observed positions; tested only when the two
        # sessions are consecutive session numbers.
        xn, sn = x, s
        x1, v1 = at(xp, 1), at(vp, 1)
        consecutive = valid & v1 & (at(sp, 1) == sn + 1)
        # pre window: sessions n-2..n; post window: n+1..n+3
        pre_vals = [xn, at(xp, -1), at(xp, -2)]
        pre_ok = [valid] + [at(vp, -d) & (at(sp, -d) >= sn - 2) for d in (1, 2)]
        post_vals = [x1, at(xp, 2), at(xp, 3)]
        post_ok = [v1] + [at(vp, d) & (at(sp, d) <= sn + 3) for d in (2, 3)]
        n_pre = pre_ok[0].astype(np.int8) + pre_ok[1] + pre_ok[2]
        n_post = post_ok[0].astype(np.int8) + post_ok[1] + post_ok[2]
        testable = consecutive & (n_pre >= 2) & (n_post >= 2)

        drop = xn - x1
        with np.errstate(invalid="ignore"):
            candidate = testable & (drop >= cutoff)
            if self.pct is not None:
                candidate &= drop >= self.pct * xn
        # Criterion 3 only where criteria 1 and 2 hold: elsewhere the verdict
        # is False whatever criterion 3 says (it is computable wherever the
        # interval is testable).
        r, c = np.nonzero(candidate)
        np_, mean_pre, var_pre = _window_stats([v[r, c] for v in pre_vals], [o[r, c] for o in pre_ok])
        npo, mean_post, var_post = _window_stats([v[r, c] for v in post_vals], [o[r, c] for o in post_ok])
        df = np_ + npo - 2
        if self.adjust:
            table = np.array([np.nan, np.nan] + [t_critical(self.alpha, d) for d in (2, 3, 4)])
            tcrit = table[df]
        else:
            tcrit = np.full(df.shape, float(self.critical_value))
        # same arithmetic as suddengains: sd^2 from sd = sqrt(var)
        sd_pre, sd_post = np.sqrt(var_pre), np.sqrt(var_post)
        pooled = np.sqrt(((np_ - 1) * sd_pre**2 + (npo - 1) * sd_post**2) / df)
        flag = np.zeros((m, length), dtype=bool)
        flag[r, c] = (mean_pre - mean_post) > tcrit * pooled

        # verdict at the post session (position j+1)
        verdict = np.full((m, length), np.nan)
        verdict[:, 1:] = np.where(testable[:, :-1], flag[:, :-1].astype(float), np.nan)

        n_tested = testable.sum(axis=1)
        last = s[np.arange(m), np.maximum(n - 1, 0)]
        n_intervals = np.where(n >= 1, last - s[:, 0], 0)
        reason = np.full(m, "", dtype=object)
        reason[n_tested == 0] = (
            "no testable interval: criterion 3 needs two consecutive observed sessions "
            "with at least 2 scores in both 3-session windows"
        )

        onset = np.zeros((m, length), dtype=bool)
        onset[:, 1:] = flag[:, :-1]
        pre = np.full((m, length), np.nan)
        pre[:, 1:] = x[:, :-1]
        if self.repair == "full":
            ret = pre
        else:
            ret = x + (pre - x) / 2.0
        start = np.broadcast_to(np.arange(length), (m, length))
        scanned = scan_episodes(x, n, onset, start, pre, ret, None)
        row, st, _, _, pr = scanned
        magnitude = pr - x[row, st]
        return BlockResult.from_scan(
            block,
            scanned,
            ep_extra={"magnitude": magnitude},
            reason=reason,
            client_extra={
                "n_intervals": n_intervals.astype(np.int64),
                "n_tested": n_tested.astype(np.int64),
                "n_untestable": (n_intervals - n_tested).astype(np.int64),
                "n_losses": flag.sum(axis=1).astype(np.int64),
            },
            session_extra={"sudden_loss": verdict},
        )


def _window_stats(values: list[np.ndarray], present: list[np.ndarray]):
    """Count, mean and sample variance of up to three values per cell."""
    count = np.zeros(values[0].shape, dtype=np.int64)
    total = np.zeros(values[0].shape)
    for v, ok in zip(values, present):
        count += ok
        total += np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        ss = np.zeros(values[0].shape)
        for v, ok in zip(values, present):
            d = v - mean
            ss += np.where(ok, d * d, 0.0)
        var = ss / (count - 1)
    return count, mean, var
