"""Drops scaled by a robust noise estimate, with a per-client false-alarm bound.

This library's own rule (not a published criterion). It keeps the
drop-and-return logic of the V family but replaces "k SD" by a threshold
derived from a robust estimate of session-to-session noise and from the
number of sessions tested, so that a client without a rupture has roughly
the same small chance of a false alarm whether the course has 5 sessions or
100. Its defaults were chosen with the accuracy benchmark
(``benchmarks/accuracy.py``; see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from ..errors import Problem
from ..panel import Block, Panel
from ._base import (
    BlockResult,
    Rule,
    check_choice,
    check_number,
    register_preset,
    register_rule,
    scan_episodes,
)
from ._fall import Falls

__all__ = ["RobustDrop", "pooled_trimmed_scale", "trimmed_scale"]


def trimmed_scale(values: np.ndarray, trim: float = 0.2):
    """Trimmed SD of each row of ``values`` (NaN ignored), its df and the trimmed mean.

    Drops the ``k = max(1, floor(trim * c))`` smallest and largest of a row's
    ``c`` values (none when ``c < 4``), takes the sample SD of the rest and
    divides by the SD of a standard normal truncated to the same central
    share, so that Gaussian noise gives an unbiased-in-the-limit SD. A few
    large falls and rises (the episodes themselves) barely move it, and,
    unlike the median absolute deviation, it is not biased by rounded scores.
    1-D input is treated as one row. Rows with fewer than 2 kept values give
    NaN. Returns ``(sd, df, trimmed_mean)``.

    Examples
    --------
    >>> import numpy as np
    >>> sd, df, loc = trimmed_scale(np.array([0.0, 1, -1, 2, -2, 0.5, -0.5, 40]), trim=0.1)
    >>> round(float(sd), 3), int(df), round(float(loc), 3)
    (1.779, 5, 0.333)
    """
    one_d = values.ndim == 1
    v = values[None, :] if one_d else values
    srt = np.sort(v, axis=1)  # NaN last
    c = (~np.isnan(srt)).sum(axis=1)
    k = np.where(c >= 4, np.maximum(1, np.floor(trim * c)), 0).astype(np.int64)
    kept = c - 2 * k
    cols = np.arange(srt.shape[1])[None, :]
    mid = (cols >= k[:, None]) & (cols < (c - k)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mid, srt, 0.0).sum(axis=1) / kept
        dev = np.where(mid, srt - mean[:, None], 0.0)
        var = (dev * dev).sum(axis=1) / (kept - 1)
        share = k / c
        q = stats.norm.isf(share)
        factor = np.where(k > 0, 1.0 - 2.0 * q * stats.norm.pdf(q) / (1.0 - 2.0 * share), 1.0)
        sd = np.where(kept >= 2, np.sqrt(var / factor), np.nan)
    df = np.maximum(kept - 1, 0)
    return (sd[0], df[0], mean[0]) if one_d else (sd, df, mean)


#: Pooled noise estimates use about this many values at most (beyond it, every
#: k-th client in id order): plenty for a pooled SD, and it keeps the cost of
#: very large inputs low.
POOLED_VALUES = 1_000_000


def pooled_trimmed_scale(values: np.ndarray, trim: float = 0.2) -> float:
    """:func:`trimmed_scale` of one long 1-D array, by partitioning instead of sorting."""
    values = values[~np.isnan(values)]
    if values.size > POOLED_VALUES:
        values = values[:: -(-values.size // POOLED_VALUES)]
    c = values.size
    if c < 2:
        return math.nan
    k = max(1, int(math.floor(trim * c))) if c >= 4 else 0
    if k:
        part = np.partition(values, (k, c - k - 1))
        mid = part[k : c - k]
    else:
        mid = values
    if mid.size < 2:
        return math.nan
    share = k / c
    q = stats.norm.isf(share) if k else math.inf
    factor = 1.0 - 2.0 * q * stats.norm.pdf(q) / (1.0 - 2.0 * share) if k else 1.0
    return float(math.sqrt(np.var(mid, ddof=1) / factor))


def _window_mean(x: np.ndarray, window: int, end_offset: int) -> np.ndarray:
    """Mean of the ``window`` scores ending ``end_offset`` positions back (NaN-aware)."""
    return _shift(_window_mean_here(x, window), end_offset)


def _window_mean_here(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the ``window`` scores ending at each position (NaN-aware)."""
    m, length = x.shape
    ok = ~np.isnan(x)
    x0 = np.where(ok, x, 0.0)
    okf = ok.astype(float)
    total = x0.copy()
    count = okf.copy()
    for k in range(1, window):
        total[:, k:] += x0[:, :-k]
        count[:, k:] += okf[:, :-k]
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _shift(a: np.ndarray, d: int) -> np.ndarray:
    """``a`` moved ``d`` columns to the right, NaN-filled (column t holds t - d)."""
    if d == 0:
        return a
    out = np.full_like(a, np.nan)
    out[:, d:] = a[:, :-d]
    return out


def _critical(p: np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """Upper ``p`` quantile of N(0, 1) (df None) or Student's t, per client.

    Evaluated once per distinct (p, df) pair: courses share few lengths.
    """
    if df is None:
        keys, inverse = np.unique(p, return_inverse=True)
        return stats.norm.isf(keys)[inverse]
    # one complex number per client: a fast 1-D unique of (p, df) pairs
    keys, inverse = np.unique(p + 1j * np.where(np.isfinite(df), df, -1.0), return_inverse=True)
    kp, kdf = keys.real, keys.imag
    values = np.where(kdf > 0, stats.t.isf(kp, np.maximum(kdf, 1.0)), np.nan)
    return values[inverse.reshape(-1)]


def _after_mean(x: np.ndarray, count: int) -> np.ndarray:
    """Mean of the next ``count`` scores (NaN-aware; NaN at the last score)."""
    return _window_mean(x[:, ::-1], count, 1)[:, ::-1]


@register_rule(
    "robust",
    family="robust",
    summary=(
        "A fall below the preceding sessions (or a dip below both neighbours) larger "
        "than a robust noise SD times a length-aware critical value, so that a "
        "rupture-free client has about alpha chance of a false alarm."
    ),
    reference="alliance_ts (the library's own rule; defaults chosen with its accuracy benchmark)",
)
@dataclass(frozen=True)
class RobustDrop(Rule):
    r"""Falls and dips scaled by a robust noise estimate, with a false-alarm bound.

    Parameters
    ----------
    alpha : float, default 0.05
        Target chance that a client without any rupture gets a false one
        (Bonferroni over the client's sessions and the two statistics, for
        Gaussian session noise).
    window : int, default 3
        Observed sessions averaged for the pre-rupture level (1 = the
        previous session only).
    max_decline : int, default 3
        Most sessions a fall may take.
    tol : float, default 0.5
        Return tolerance as a share of the threshold (as in ``vshape``).
    repair_within : int or None, default None
        Most observed sessions from the trough to the repair.
    noise : {"moderated", "max", "pooled", "client"}, default "moderated"
        Noise estimate: the client's own, the pooled one over all analysed
        clients, the larger of the two, or ``"moderated"``: the two combined
        by their degrees of freedom (see Notes).
    prior_df : float, default 32
        Weight of the pooled estimate in ``"moderated"``, in degrees of freedom.
    center : {"median", "none"}, default "median"
        Subtract the client's typical session-to-session change (its trend),
        shrunk towards 0 for short courses.
    trim : float, default 0.2
        Share trimmed from each end before the noise SD is computed.
    dip : bool, default True
        Also test the two-sided dip statistic (see Notes).
    after : int, default 2
        Observed sessions after a candidate averaged by the dip statistic.
    pooled_noise : tuple of float or None, default None
        The pooled noise SDs (one per fall length, one for the dip statistic
        if used, and one for the lag-1 differences); None estimates them from
        all analysed clients of the call (with more than 1,000,000 scores,
        from every k-th client in id order) and reports them in
        ``Detection.params``.
    min_noise : float or None, default None
        Floor for the noise estimate, in score units.

    Notes
    -----
    For client scores :math:`x_1..x_n` in session order (missed sessions
    skipped) let :math:`W_{t,d}` be the mean of the :math:`w` = ``window``
    observed scores ending :math:`d` sessions before :math:`t` (fewer at the
    start of a course) and :math:`A_t` the mean of the ``after`` scores after
    :math:`t`. Two statistics are computed at every session:

    * the **fall** over :math:`d` sessions, :math:`F_{t,d} = W_{t,d} - x_t`;
    * the **dip**, :math:`V_t = (W_{t,1} + A_t)/2 - x_t`.

    **Noise.** Each statistic's SD is estimated per client by a trimmed SD
    (``trim`` of the values dropped at each end, rescaled to a normal SD; a
    few episode values barely move it, and unlike the median absolute
    deviation it is not biased by rounded scores), and pooled over all
    analysed clients. ``"moderated"`` combines them as
    :math:`\hat\sigma^2 = (\nu s^2 + \nu_0 s_0^2)/(\nu + \nu_0)` with the
    client's :math:`\nu` degrees of freedom and :math:`\nu_0` = ``prior_df``,
    the moderated variance of Smyth (2004), and then uses Student's t with
    :math:`\nu + \nu_0` df: short or noisy courses borrow strength from the
    sample without letting one noisy client drown in false alarms.
    ``center="median"`` subtracts the client's median of the statistic times
    :math:`\nu/(\nu+\nu_0)` (a steadily declining course is not a rupture).

    **Onset.** Session :math:`i` is where a rupture is confirmed when the
    scores fall into it without rising from a top :math:`p` at most
    ``max_decline`` sessions earlier (:math:`x_p > x_i`, as in ``vshape``)
    and either standardised statistic, taken with :math:`d = i - p`,
    reaches the critical value

    .. math:: c_i = t^{-1}_{\nu+\nu_0}\!\left(1 - \frac{\alpha}{2(n - 1)}\right),

    a Bonferroni bound over the :math:`n - 1` sessions that could be an
    onset and the two statistics, so that the chance of any false onset in
    a rupture-free client is about ``alpha`` at any course length. The
    pre-rupture level is :math:`pre = W_{i,d}`, the mean of the ``window``
    scores up to the top of the fall.

    **Start, repair, unresolved** as in ``vshape``, with threshold
    :math:`\theta = c_i \hat\sigma_d`: start at the first session of the
    fall below the return level :math:`pre - tol\,\min(\theta, pre - x_i)`;
    repaired at the first later session at or above it (within
    ``repair_within`` sessions of the trough if set); otherwise unresolved to
    the last session.

    **Exclusions.** A client whose noise estimate is 0 or undefined (with
    ``noise="client"``: constant scores or too few scores) is not analysed.

    **Provenance.** This is the library's own rule, designed and tuned on
    simulated data (``benchmarks/accuracy.py``); it is not a criterion from
    the literature. The trimmed SD, the moderated variance and the
    Bonferroni bound are standard statistics. The benchmark measures its
    false-alarm rate: close to ``alpha`` for courses of up to 20-30
    sessions, somewhat above it for 40-100 sessions (see
    ``docs/benchmarks.md``).

    References
    ----------
    .. [1] Smyth, G. K. (2004). Linear models and empirical Bayes methods for
       assessing differential expression in microarray experiments.
       Statistical Applications in Genetics and Molecular Biology, 3(1), 3.
    """

    alpha: float = 0.05
    window: int = 3
    max_decline: int = 3
    tol: float = 0.5
    repair_within: int | None = None
    noise: str = "moderated"
    prior_df: float = 32.0
    center: str = "median"
    trim: float = 0.2
    dip: bool = True
    after: int = 2
    pooled_noise: tuple[float, ...] | None = None
    min_noise: float | None = None

    invariances = ("translation", "scaling")
    strictness = None
    sample_dependent = ("pooled_noise",)
    client_columns = {"noise": "float64", "z": "float64", "threshold": "float64"}

    def check(self) -> list[Problem]:
        problems: list[Problem] = []
        check_number(problems, "alpha", self.alpha, low=0, high=1, low_open=True, high_open=True)
        check_number(problems, "window", self.window, low=1, integer=True)
        check_number(problems, "max_decline", self.max_decline, low=1, integer=True)
        check_number(problems, "tol", self.tol, low=0, high=1, high_open=True)
        check_number(problems, "repair_within", self.repair_within, low=1, integer=True, allow_none=True)
        check_choice(problems, "noise", self.noise, ("max", "pooled", "client", "moderated"))
        check_number(problems, "prior_df", self.prior_df, low=0)
        check_choice(problems, "center", self.center, ("median", "none"))
        check_number(problems, "trim", self.trim, low=0, high=0.5, high_open=True)
        if not isinstance(self.dip, (bool, np.bool_)):
            problems.append(Problem("parameter 'dip'", f"must be True or False, got {self.dip!r}"))
        check_number(problems, "after", self.after, low=1, integer=True)
        if self.pooled_noise is not None:
            values = tuple(self.pooled_noise) if isinstance(self.pooled_noise, (tuple, list)) else None
            if values is None or len(values) != self._n_stats() or not all(
                isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values
            ):
                problems.append(
                    Problem(
                        "parameter 'pooled_noise'",
                        f"must be None or {self._n_stats()} non-negative numbers (one per fall "
                        f"length, plus one for the dip statistic), got {self.pooled_noise!r}",
                    )
                )
        check_number(problems, "min_noise", self.min_noise, low=0, low_open=True, allow_none=True)
        return problems

    def prepare(self, panel: Panel, clients: np.ndarray) -> RobustDrop:
        if self.noise == "client" or self.pooled_noise is not None:
            return self
        parts: list[list[np.ndarray]] = [[] for _ in range(self._n_stats())]
        total = int(panel.n_obs[clients].sum())
        if total > POOLED_VALUES:
            # an evenly spaced subsample of clients (in id order) is plenty
            clients = clients[:: -(-total // POOLED_VALUES)]
        for block in panel.blocks(clients):
            x = block.x
            w_here = _window_mean_here(x, self.window)
            for d in range(1, self.max_decline + 1):
                e = _shift(w_here, d) - x
                parts[d - 1].append(e[~np.isnan(e)])
            if self.dip:
                e = (_shift(w_here, 1) + _after_mean(x, self.after)) / 2.0 - x
                parts[self.max_decline].append(e[~np.isnan(e)])
            e = _shift(x, 1) - x
            parts[-1].append(e[~np.isnan(e)])
        pooled = []
        for chunks in parts:
            values = np.concatenate(chunks) if chunks else np.zeros(0)
            pooled.append(pooled_trimmed_scale(values, self.trim))
        return replace(self, pooled_noise=tuple(pooled))

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m, length = x.shape
        # the client's own noise level and trend, from its lag-1 differences
        own1, own_df, trend = trimmed_scale(_shift(x, 1) - x, self.trim)
        trend = np.where(np.isfinite(trend), trend, 0.0)
        w_here = _window_mean_here(x, self.window)
        # Bonferroni over the client's candidate sessions (and over the two
        # statistics when the dip statistic is used)
        tests = np.maximum(n - 1, 1) * (2 if self.dip else 1)
        falls = Falls(x, self.max_decline)
        lag = falls.lag
        stat = np.full((m, length), np.nan)  # standardised fall at each position
        pre = np.full((m, length), np.nan)
        scale_at = np.full((m, length), np.nan)
        sigma1 = None
        usable = np.ones(m, dtype=bool)
        z = None
        for d in range(1, self.max_decline + 1):
            w = _shift(w_here, d)
            e = w - x
            sigma, df_t = self._noise(e, own1, own_df, d)
            if d == 1:
                sigma1 = sigma
                usable = np.isfinite(sigma) & (sigma > 0)
                z = _critical(self.alpha / tests, df_t)
            at_d = lag == d
            # a steady trend moves the fall statistic by trend x (d + (w - 1) / 2)
            loc = self._location(trend * (d + (self.window - 1) / 2.0), own_df)
            with np.errstate(invalid="ignore", divide="ignore"):
                np.copyto(stat, (e - loc[:, None]) / sigma[:, None], where=at_d)
            np.copyto(pre, w, where=at_d)
            np.copyto(scale_at, np.broadcast_to(sigma[:, None], (m, length)), where=at_d)
        with np.errstate(invalid="ignore"):
            onset = (lag >= 1) & (falls.top > x) & (stat >= z[:, None]) & usable[:, None]
        if self.dip:
            after = _after_mean(x, self.after)
            dv = (_shift(w_here, 1) + after) / 2.0 - x
            sig_dip, df_dip = self._noise(dv, own1, own_df, self.max_decline + 1)
            z_dip = _critical(self.alpha / tests, df_dip)
            # ... and the dip statistic by trend x (window - after) / 4
            loc = self._location(trend * (self.window - self.after) / 4.0, own_df)
            with np.errstate(invalid="ignore", divide="ignore"):
                dstat = ((pre + after) / 2.0 - x - loc[:, None]) / sig_dip[:, None]
                onset |= (lag >= 1) & (falls.top > x) & (dstat >= z_dip[:, None]) & usable[:, None]
        reason = np.full(m, "", dtype=object)
        reason[~usable] = (
            "noise estimate is 0 or undefined (constant scores or fewer than 3 scores)"
            if self.noise == "client"
            else "noise estimate is 0 or undefined"
        )
        with np.errstate(invalid="ignore"):
            ret = pre - self.tol * np.fmin(z[:, None] * scale_at, pre - x)
        start = falls.start(ret)
        scanned = scan_episodes(x, n, onset, start, pre, ret, self.repair_within)
        return BlockResult.from_scan(
            block,
            scanned,
            reason=reason,
            client_extra={
                "noise": np.where(usable, sigma1, np.nan),
                "z": np.asarray(z, dtype=float),
                "threshold": np.where(usable, z * sigma1, np.nan),
            },
        )

    def _n_stats(self) -> int:
        # falls over 1..max_decline sessions, the dip, and the lag-1 difference
        return self.max_decline + (1 if self.dip else 0) + 1

    def _location(self, typical: np.ndarray, df: np.ndarray) -> np.ndarray:
        """The statistic's value under the client's steady trend, shrunk for short courses."""
        if self.center == "none":
            return np.zeros(typical.shape)
        nu = df.astype(float)
        return typical * nu / (nu + self.prior_df)

    def _noise(self, e: np.ndarray, own1: np.ndarray, own_df: np.ndarray, d: int):
        """Noise SD of statistic ``d`` (1..max_decline: falls; then the dip), and its df.

        The client's own noise level comes from its lag-1 differences (one
        sustained drop or V spoils only one or two of them), converted to the
        scale of statistic ``d`` by the ratio of their pooled SDs.
        """
        m = e.shape[0]
        pooled_all = self.pooled_noise
        if pooled_all is not None:
            pooled = float(pooled_all[d - 1])
            ratio = pooled / float(pooled_all[-1]) if pooled_all[-1] > 0 else np.nan
        else:
            pooled = ratio = np.nan
        if self.noise == "client":
            own, own_df, _ = trimmed_scale(e, self.trim)
        else:
            own = own1 * ratio
        df_t = None
        if self.noise == "client":
            sigma = own
            df_t = np.where(own_df > 0, own_df, np.nan)
        elif self.noise == "pooled":
            sigma = np.full(m, pooled)
        elif self.noise == "moderated":
            nu = own_df.astype(float)
            own0 = np.where(np.isfinite(own), own, 0.0)
            sigma = np.sqrt((nu * own0**2 + self.prior_df * pooled**2) / (nu + self.prior_df))
            df_t = nu + self.prior_df
        else:
            sigma = np.fmax(own, pooled)
        if self.min_noise is not None:
            sigma = np.fmax(sigma, float(self.min_noise))
        return sigma, df_t


register_preset(
    "recommended",
    RobustDrop,
    dict(alpha=0.05, window=3, max_decline=3, tol=0.5, noise="moderated", prior_df=32.0,
         center="median", trim=0.2, dip=True, after=2),
    summary=(
        "The library's recommended rule: robust with the parameters chosen on the accuracy "
        "benchmark (false alarms in about 5% or fewer of rupture-free clients)."
    ),
    reference="alliance_ts; see docs/benchmarks.md for the evidence",
)
