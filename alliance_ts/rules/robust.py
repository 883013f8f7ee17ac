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

from .._lazy import stats
from ..noise import difference_noise, moderated_sd, shift, trimmed_scale
from ..panel import Block, Panel
from ..params import choice, flag, integer, number, number_pair
from ._base import BlockResult, Rule, register_preset, register_rule, scan_episodes
from ._fall import Falls

__all__ = ["RobustDrop", "dip_ratio", "fall_ratio"]


def _window_mean(x: np.ndarray, window: int, end_offset: int) -> np.ndarray:
    """Mean of the ``window`` scores ending ``end_offset`` positions back (NaN-aware)."""
    return shift(_window_mean_here(x, window), end_offset)


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
        1,000,000 scores, from a sample chosen by the clients' data, the same
        in every execution path: see :mod:`alliance_ts.sample`; NaN when there
        are too few scores)
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

    **Resolution.** Scores are compared with a tolerance of a trillionth (1e-12) of
    the client's largest absolute score, and a noise SD no larger than that
    is 0 (:attr:`alliance_ts.panel.Block.resolution`): rounding errors are
    not data.

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

    alpha: float = number(0.05, "target chance of a false alarm in a rupture-free client", low=0, high=1,
                          low_open=True, high_open=True)
    window: int = integer(3, "observed sessions averaged for the pre-rupture level", low=1)
    max_decline: int = integer(3, "most sessions a fall may take", low=1)
    tol: float = number(0.5, "return tolerance, as a share of the threshold", low=0, high=1, high_open=True)
    repair_within: int | None = integer(None, "most observed sessions from the trough to the repair "
                                        "(None: any later session)", low=1, allow_none=True)
    noise: str = choice("moderated", "noise level: the client's and the pooled one combined by their degrees of "
                        "freedom ('moderated'), the larger ('max'), the pooled one ('pooled') or the client's own "
                        "('client')", ("moderated", "max", "pooled", "client"))
    prior_df: float = number(32.0, "weight of the pooled noise in 'moderated', in degrees of freedom", low=0)
    center: str = choice("trend", "subtract the client's steady trend from the statistics", ("trend", "none"))
    trim: float = number(0.2, "share trimmed from each end before a noise SD is computed", low=0, high=0.5,
                         high_open=True)
    dip: bool = flag(True, "also test the two-sided dip statistic")
    after: int = integer(2, "observed sessions after a candidate averaged by the dip statistic", low=1)
    pooled_noise: tuple[float, ...] | None = number_pair(
        None, "pooled SD of lag-1 differences and noise autocorrelation (None: estimated from the analysed "
        "clients)", first=("SD of lag-1 differences", ((0, False), (None, False))),
        second=("noise autocorrelation", ((-1, True), (1, True))))
    min_noise: float | None = number(None, "floor of the SD of lag-1 differences, in score units", low=0,
                                     allow_none=True)

    strictness = ("alpha", "down")
    detects = ("v", "sustained")
    sample_dependent = ("pooled_noise",)
    trusted_output = True
    client_columns = {"noise": "float64", "z": "float64", "threshold": "float64"}

    @property
    def invariances(self) -> tuple[str, ...]:  # type: ignore[override]
        """Translation always; scaling unless an absolute ``min_noise`` floor is set."""
        return ("translation",) if self.min_noise is not None else ("translation", "scaling")

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
        own, own_df, trend = trimmed_scale(shift(x, 1) - x, self.trim)
        eps = block.resolution
        # a noise SD within the scores' resolution is float rounding of constant scores
        own = np.where(own > eps, own, np.where(np.isnan(own), np.nan, 0.0))
        trend = np.where(np.isfinite(trend) & (np.abs(trend) > eps), trend, 0.0)
        sigma_d, df_t = self._noise_level(own, own_df)
        usable = np.isfinite(sigma_d) & (sigma_d > eps)
        phi = self._phi()
        w_here = _window_mean_here(x, self.window)
        # Bonferroni over the client's candidate sessions (and over the two
        # statistics when the dip statistic is used)
        tests = np.maximum(n - 1, 1) * (2 if self.dip else 1)
        z = _critical(self.alpha / tests, df_t)
        falls = Falls(x, self.max_decline, eps)
        lag = falls.lag
        stat = np.full((m, length), np.nan)  # standardised fall at each position
        pre = np.full((m, length), np.nan)
        scale_at = np.full((m, length), np.nan)
        for d in range(1, self.max_decline + 1):
            w = shift(w_here, d)
            sigma = sigma_d * fall_ratio(phi, self.window, d)
            at_d = lag == d
            # a steady trend moves the fall statistic by trend x (d + (w - 1) / 2)
            loc = self._location(trend * (d + (self.window - 1) / 2.0), own_df)
            with np.errstate(invalid="ignore", divide="ignore"):
                np.copyto(stat, (w - x - loc[:, None]) / sigma[:, None], where=at_d)
            np.copyto(pre, w, where=at_d)
            np.copyto(scale_at, np.broadcast_to(sigma[:, None], (m, length)), where=at_d)
        real_fall = (lag >= 1) & (falls.top - x > eps[:, None]) & usable[:, None]
        with np.errstate(invalid="ignore"):
            onset = real_fall & (stat >= z[:, None])
        if self.dip:
            after = _after_mean(x, self.after)
            sig_dip = sigma_d * dip_ratio(phi, self.window, self.after)
            # ... and the dip statistic by trend x (window - after) / 4
            loc = self._location(trend * (self.window - self.after) / 4.0, own_df)
            with np.errstate(invalid="ignore", divide="ignore"):
                dstat = ((pre + after) / 2.0 - x - loc[:, None]) / sig_dip[:, None]
                onset |= real_fall & (dstat >= z[:, None])
        reason = np.full(m, "", dtype=object)
        reason[~usable] = (
            "noise estimate is 0 or undefined (constant scores or fewer than 3 scores)"
            if self.noise == "client"
            else "noise estimate is 0 or undefined"
        )
        with np.errstate(invalid="ignore"):
            ret = pre - self.tol * np.fmin(z[:, None] * scale_at, pre - x)
        start = falls.start(ret)
        scanned = scan_episodes(x, n, onset, start, pre, ret, self.repair_within, eps)
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
            sigma, df_t = moderated_sd(own, own_df, pooled, self.prior_df)
        else:
            sigma = np.fmax(own, pooled)
        if self.min_noise is not None:
            sigma = np.fmax(sigma, float(self.min_noise))
        return sigma, df_t


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
        "robust with the parameters chosen on the library's accuracy benchmark (alpha 0.04 kept the "
        "measured false alarms at or below 5% in its scenarios); the default rule before scan."
    ),
    reference="alliance_ts; see docs/benchmarks.md for the evidence",
)
