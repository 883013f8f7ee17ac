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

__all__ = ["RobustDrop", "dip_ratio", "fall_ratio", "pooled_trimmed_scale", "trimmed_scale"]


def trimmed_scale(values: np.ndarray, trim: float = 0.2):
    """Trimmed SD of each row of ``values`` (NaN ignored), its df and the trimmed mean.

    Drops the ``k = max(1, floor(trim * c))`` smallest and largest of a row's
    ``c`` values (none when ``c < 4``), takes the sample SD of the rest and
    divides by what that SD is on average for standard normal values
    (:func:`_trim_factor`), so that Gaussian noise gives about its SD. A few
    large falls and rises (the episodes themselves) barely move it, and,
    unlike the median absolute deviation, it is not biased by rounded scores.
    1-D input is treated as one row. Rows with fewer than 2 kept values give
    NaN. Returns ``(sd, df, trimmed_mean)``.

    Examples
    --------
    >>> import numpy as np
    >>> sd, df, loc = trimmed_scale(np.array([0.0, 1, -1, 2, -2, 0.5, -0.5, 40]), trim=0.1)
    >>> round(float(sd), 3), int(df), round(float(loc), 3)
    (1.538, 5, 0.333)
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
        factor = _trim_factor(c, k)
        sd = np.where(kept >= 2, np.sqrt(var / factor), np.nan)
    df = np.maximum(kept - 1, 0)
    return (sd[0], df[0], mean[0]) if one_d else (sd, df, mean)


def pooled_trimmed_scale(values: np.ndarray, trim: float = 0.2) -> float:
    """:func:`trimmed_scale` of one long 1-D array.

    The result depends only on the multiset of values, not on their order
    (sorted, then summed with :func:`math.fsum`), so that every execution path
    that sees the same values gets the same number.
    """
    values = np.sort(values[~np.isnan(values)])
    c = values.size
    if c < 2:
        return math.nan
    k = max(1, int(math.floor(trim * c))) if c >= 4 else 0
    mid = values[k : c - k]
    if mid.size < 2:
        return math.nan
    mean = math.fsum(mid.tolist()) / mid.size
    var = math.fsum(((mid - mean) ** 2).tolist()) / (mid.size - 1)
    factor = float(_trim_factor(np.array([c]), np.array([k]))[0])
    return float(math.sqrt(var / factor))


def _trim_factor(c: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Expected sample variance of the middle ``c - 2k`` of ``c`` standard normal values.

    The large-sample value is the variance of a normal truncated to its
    central ``1 - 2g`` (``g = k / c``), ``1 - 2 q phi(q) / (1 - 2g)`` with
    ``q = Phi^-1(1 - g)``; small samples keep more spread, which the term
    ``b(g) / c`` with ``b(g) = 1.3456 - 2.8908 g + 0.8745 g^2`` corrects (fitted
    to Monte Carlo means for c = 10-80, g up to 0.4; within 1.3 / c of them).
    1 when nothing is trimmed.
    """
    c = np.asarray(c, dtype=float)
    k = np.asarray(k, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(c > 0, k / c, 0.0)
        q = stats.norm.isf(np.where(k > 0, g, 0.5))
        asym = 1.0 - 2.0 * q * stats.norm.pdf(q) / (1.0 - 2.0 * g)
        small = (1.3456 - 2.8908 * g + 0.8745 * g * g) / np.where(c > 0, c, 1.0)
    return np.where(k > 0, asym + small, 1.0)


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
    """``a`` moved ``d >= 0`` columns to the right, NaN-filled (column t holds t - d)."""
    if d < 0:
        raise ValueError("_shift moves to the right only")
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
        Noise level: the client's own, the pooled one over all analysed
        clients, the larger of the two, or ``"moderated"``: the two combined
        by their degrees of freedom (see Notes).
    prior_df : float, default 32
        Weight of the pooled estimate in ``"moderated"``, in degrees of freedom.
    center : {"trend", "none"}, default "trend"
        Subtract what the client's steady trend contributes to the statistics
        (a steadily declining course is not a rupture), shrunk towards 0 for
        short courses.
    trim : float, default 0.2
        Share trimmed from each end before a noise SD is computed.
    dip : bool, default True
        Also test the two-sided dip statistic (see Notes).
    after : int, default 2
        Observed sessions after a candidate averaged by the dip statistic.
    pooled_noise : (float, float) or None, default None
        The pooled SD of lag-1 differences and the noise autocorrelation;
        None estimates both from the analysed clients of the call (beyond
        1,000,000 scores, from a sample selected by a hash of the client ids,
        the same in every execution path; NaN when there are too few scores)
        and reports them in ``Detection.params``.
    min_noise : float or None, default None
        Floor for the SD of lag-1 differences, in score units.

    Notes
    -----
    For client scores :math:`x_1..x_n` in session order (missed sessions
    skipped) let :math:`W_{t,d}` be the mean of the :math:`w` = ``window``
    observed scores ending :math:`d` sessions before :math:`t` (fewer at the
    start of a course) and :math:`A_t` the mean of the ``after`` scores after
    :math:`t`. Two statistics are computed at every session:

    * the **fall** over :math:`d` sessions, :math:`F_{t,d} = W_{t,d} - x_t`;
    * the **dip**, :math:`V_t = (W_{t,1} + A_t)/2 - x_t`.

    **Noise.** The noise level is the SD of a client's lag-1 differences
    :math:`x_{t-1} - x_t`, estimated as a trimmed SD (``trim`` of the values
    dropped at each end, rescaled to a normal SD): a rupture spoils only one
    or two differences and is trimmed away, and unlike the median absolute
    deviation the estimate is not biased by scores rounded to whole points.
    ``"moderated"`` combines the client's estimate :math:`s` (:math:`\nu`
    df) with the pooled one :math:`s_0` as
    :math:`(\nu s^2 + \nu_0 s_0^2)/(\nu + \nu_0)`, :math:`\nu_0` =
    ``prior_df`` (the moderated variance of Smyth, 2004), and uses Student's
    t with :math:`\nu + \nu_0` df for the critical value: short or noisy
    courses borrow strength from the sample without one noisy client
    drowning in false alarms. The SD of each statistic follows from the
    difference SD through a first-order autoregressive noise model whose
    autocorrelation :math:`\phi` is estimated once from the whole sample
    (consecutive differences correlate :math:`-(1-\phi)/2`; pairs with a
    difference beyond 2.5 SDs are left out; see :func:`fall_ratio` and
    :func:`dip_ratio`). ``center="trend"`` subtracts what the client's
    typical difference (its trimmed mean, shrunk by
    :math:`\nu/(\nu+\nu_0)`) contributes to each statistic.

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
    center: str = "trend"
    trim: float = 0.2
    dip: bool = True
    after: int = 2
    pooled_noise: tuple[float, ...] | None = None
    min_noise: float | None = None

    strictness = ("alpha", "down")
    detects = ("v", "sustained")
    sample_dependent = ("pooled_noise",)
    trusted_output = True
    client_columns = {"noise": "float64", "z": "float64", "threshold": "float64"}

    @property
    def invariances(self) -> tuple[str, ...]:  # type: ignore[override]
        """Translation always; scaling unless an absolute ``min_noise`` floor is set."""
        return ("translation",) if self.min_noise is not None else ("translation", "scaling")

    def check(self) -> list[Problem]:
        problems: list[Problem] = []
        check_number(problems, "alpha", self.alpha, low=0, high=1, low_open=True, high_open=True)
        check_number(problems, "window", self.window, low=1, integer=True)
        check_number(problems, "max_decline", self.max_decline, low=1, integer=True)
        check_number(problems, "tol", self.tol, low=0, high=1, high_open=True)
        check_number(problems, "repair_within", self.repair_within, low=1, integer=True, allow_none=True)
        check_choice(problems, "noise", self.noise, ("max", "pooled", "client", "moderated"))
        check_number(problems, "prior_df", self.prior_df, low=0)
        check_choice(problems, "center", self.center, ("trend", "none"))
        check_number(problems, "trim", self.trim, low=0, high=0.5, high_open=True)
        if not isinstance(self.dip, (bool, np.bool_)):
            problems.append(Problem("parameter 'dip'", f"must be True or False, got {self.dip!r}"))
        check_number(problems, "after", self.after, low=1, integer=True)
        if self.pooled_noise is not None:
            values = tuple(self.pooled_noise) if isinstance(self.pooled_noise, (tuple, list)) else None
            ok = values is not None and len(values) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
            )
            if ok:
                sd, phi = float(values[0]), float(values[1])
                ok = (math.isnan(sd) or sd >= 0) and (math.isnan(phi) or -1 < phi < 1)
            if not ok:
                problems.append(
                    Problem(
                        "parameter 'pooled_noise'",
                        "must be None or (SD of lag-1 differences >= 0, noise autocorrelation "
                        f"in (-1, 1)), got {self.pooled_noise!r}",
                    )
                )
        return problems

    def rescaled(self, factor: float) -> RobustDrop:
        if self.pooled_noise is None:
            return self
        sd, phi = self.pooled_noise
        return replace(self, pooled_noise=(sd * factor, phi))

    def prepare(self, panel: Panel, clients: np.ndarray) -> RobustDrop:
        if self.pooled_noise is not None:
            return self
        return replace(self, pooled_noise=difference_noise(panel, clients, self.trim))

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m, length = x.shape
        # the client's own noise level and trend, from its lag-1 differences
        own, own_df, trend = trimmed_scale(_shift(x, 1) - x, self.trim)
        trend = np.where(np.isfinite(trend), trend, 0.0)
        sigma_d, df_t = self._noise_level(own, own_df)
        usable = np.isfinite(sigma_d) & (sigma_d > 0)
        phi = self._phi()
        w_here = _window_mean_here(x, self.window)
        # Bonferroni over the client's candidate sessions (and over the two
        # statistics when the dip statistic is used)
        tests = np.maximum(n - 1, 1) * (2 if self.dip else 1)
        z = _critical(self.alpha / tests, df_t)
        falls = Falls(x, self.max_decline)
        lag = falls.lag
        stat = np.full((m, length), np.nan)  # standardised fall at each position
        pre = np.full((m, length), np.nan)
        scale_at = np.full((m, length), np.nan)
        for d in range(1, self.max_decline + 1):
            w = _shift(w_here, d)
            sigma = sigma_d * fall_ratio(phi, self.window, d)
            at_d = lag == d
            # a steady trend moves the fall statistic by trend x (d + (w - 1) / 2)
            loc = self._location(trend * (d + (self.window - 1) / 2.0), own_df)
            with np.errstate(invalid="ignore", divide="ignore"):
                np.copyto(stat, (w - x - loc[:, None]) / sigma[:, None], where=at_d)
            np.copyto(pre, w, where=at_d)
            np.copyto(scale_at, np.broadcast_to(sigma[:, None], (m, length)), where=at_d)
        with np.errstate(invalid="ignore"):
            onset = (lag >= 1) & (falls.top > x) & (stat >= z[:, None]) & usable[:, None]
        if self.dip:
            after = _after_mean(x, self.after)
            sig_dip = sigma_d * dip_ratio(phi, self.window, self.after)
            # ... and the dip statistic by trend x (window - after) / 4
            loc = self._location(trend * (self.window - self.after) / 4.0, own_df)
            with np.errstate(invalid="ignore", divide="ignore"):
                dstat = ((pre + after) / 2.0 - x - loc[:, None]) / sig_dip[:, None]
                onset |= (lag >= 1) & (falls.top > x) & (dstat >= z[:, None]) & usable[:, None]
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
        theta1 = z * sigma_d * fall_ratio(phi, self.window, 1)
        return BlockResult.from_scan(
            block,
            scanned,
            reason=reason,
            client_extra={
                "noise": np.where(usable, sigma_d, np.nan),
                "z": np.asarray(z, dtype=float),
                "threshold": np.where(usable, theta1, np.nan),
            },
        )

    def _phi(self) -> float:
        if self.pooled_noise is None or not math.isfinite(self.pooled_noise[1]):
            return 0.0
        return float(self.pooled_noise[1])

    def _location(self, typical: np.ndarray, df: np.ndarray) -> np.ndarray:
        """The statistic's value under the client's steady trend, shrunk for short courses."""
        if self.center == "none":
            return np.zeros(typical.shape)
        nu = df.astype(float)
        return typical * nu / (nu + self.prior_df)

    def _noise_level(self, own: np.ndarray, own_df: np.ndarray):
        """SD of the lag-1 differences used for each client, and its df (None: normal)."""
        m = own.shape[0]
        pooled = math.nan if self.pooled_noise is None else float(self.pooled_noise[0])
        df_t = None
        if self.noise == "client":
            sigma = own
            df_t = np.where(own_df > 0, own_df, np.nan).astype(float)
        elif self.noise == "pooled":
            sigma = np.full(m, pooled)
        elif self.noise == "moderated":
            nu = own_df.astype(float)
            own0 = np.where(np.isfinite(own), own, 0.0)
            if math.isfinite(pooled):
                sigma = np.sqrt((nu * own0**2 + self.prior_df * pooled**2) / (nu + self.prior_df))
                df_t = nu + self.prior_df
            else:
                sigma = np.where(nu > 0, own0, np.nan)
                df_t = np.where(nu > 0, nu, np.nan)
        else:
            sigma = np.fmax(own, pooled)
        if self.min_noise is not None:
            sigma = np.fmax(sigma, float(self.min_noise))
        return sigma, df_t


def difference_noise(panel: Panel, clients: np.ndarray, trim: float = 0.2) -> tuple[float, float]:
    """Pooled trimmed SD of lag-1 differences and the noise autocorrelation.

    From the given clients' consecutive observed scores; NaN where there is
    nothing to estimate from. Independent of the order of the clients.
    """
    diffs, pairs = [], []
    for block in panel.blocks(clients):
        d = _shift(block.x, 1) - block.x  # x[t-1] - x[t]
        diffs.append(d[~np.isnan(d)])
        nxt = np.full_like(d, np.nan)
        nxt[:, :-1] = d[:, 1:]  # the following difference
        ok = ~np.isnan(d) & ~np.isnan(nxt)
        pairs.append(np.stack([d[ok], nxt[ok]], axis=1))
    values = np.concatenate(diffs) if diffs else np.zeros(0)
    sd = pooled_trimmed_scale(values, trim)
    phi = _autocorrelation(np.concatenate(pairs) if pairs else np.zeros((0, 2)), sd)
    return sd, phi


def _autocorrelation(pairs: np.ndarray, sd: float) -> float:
    """Noise autocorrelation phi from pairs of consecutive lag-1 differences.

    For AR(1) noise with autocorrelation phi, consecutive differences
    correlate -(1 - phi) / 2, so phi = 1 + 2 rho. Pairs with a difference
    beyond 2.5 SDs (ruptures and repairs) are left out; the result is kept
    within [-0.5, 0.9]. NaN without usable pairs.
    """
    if pairs.shape[0] == 0 or not (math.isfinite(sd) and sd > 0):
        return math.nan
    keep = (np.abs(pairs) <= 2.5 * sd).all(axis=1)
    a, b = pairs[keep, 0], pairs[keep, 1]
    # math.fsum: the same value whatever the order of the pairs
    denom = math.sqrt(math.fsum((a * a).tolist()) * math.fsum((b * b).tolist()))
    if a.size < 2 or denom == 0:
        return math.nan
    rho = math.fsum((a * b).tolist()) / denom
    return float(min(0.9, max(-0.5, 1.0 + 2.0 * rho)))


def _powers_sum(phi: float, lags) -> float:
    return float(sum(phi ** abs(k) for k in lags))


def _mean_var(phi: float, w: int) -> float:
    """Variance of the mean of ``w`` consecutive AR(1) values (unit variance)."""
    return _powers_sum(phi, (i - j for i in range(w) for j in range(w))) / (w * w)


def fall_ratio(phi: float, window: int, d: int) -> float:
    """SD of the fall statistic over ``d`` sessions / SD of a lag-1 difference, for AR(1) noise.

    Fall = mean of ``window`` scores ending ``d`` sessions back minus the
    score: variance ``A + 1 - 2B`` with ``A`` the variance of the window mean
    and ``B`` its covariance with the score; a lag-1 difference has variance
    ``2 (1 - phi)``.

    Examples
    --------
    >>> round(fall_ratio(0.0, 3, 1), 4)  # sqrt((1/3 + 1) / 2)
    0.8165
    """
    var = _mean_var(phi, window) + 1.0 - 2.0 * _powers_sum(phi, range(d, d + window)) / window
    return math.sqrt(max(var, 1e-12) / (2.0 * (1.0 - phi)))


def dip_ratio(phi: float, window: int, after: int) -> float:
    """SD of the dip statistic / SD of a lag-1 difference, for AR(1) noise.

    Dip = (mean of ``window`` scores before + mean of ``after`` scores after) / 2
    minus the score.

    Examples
    --------
    >>> round(dip_ratio(0.0, 3, 2), 4)  # sqrt((1/3 + 1/2) / 4 + 1) / sqrt(2)
    0.7773
    """
    cross = _powers_sum(phi, (i + j for i in range(1, window + 1) for j in range(1, after + 1))) / (window * after)
    var = (
        (_mean_var(phi, window) + _mean_var(phi, after) + 2.0 * cross) / 4.0
        + 1.0
        - _powers_sum(phi, range(1, window + 1)) / window
        - _powers_sum(phi, range(1, after + 1)) / after
    )
    return math.sqrt(max(var, 1e-12) / (2.0 * (1.0 - phi)))


register_preset(
    "recommended",
    RobustDrop,
    dict(alpha=0.04, window=3, max_decline=3, tol=0.5, noise="moderated", prior_df=32.0,
         center="trend", trim=0.2, dip=True, after=2),
    summary=(
        "The library's recommended rule: robust with the parameters chosen on the accuracy "
        "benchmark (alpha 0.04 keeps measured false alarms at or below 5%)."
    ),
    reference="alliance_ts; see docs/benchmarks.md for the evidence",
)
