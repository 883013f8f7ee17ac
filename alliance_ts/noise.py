"""Noise statistics shared by the rules: trimmed scale, difference noise, moderated variance, penalties.

Every function here works on plain numpy arrays (one row per client for the
block functions) and is part of the public API, so that rules written
outside the library can estimate noise the way the built-in rules do.

Row-wise sums use :func:`row_sum`, a left-to-right running sum: a client's
value then does not depend on how many padding columns its block has, so a
client labelled alone, in a batch, in a streamed chunk or in a Dask
partition gets bit-identical numbers.
"""

from __future__ import annotations

import math

import numpy as np

from ._lazy import special, stats
from .panel import Panel

__all__ = [
    "aic_penalty",
    "autocorrelation",
    "difference_autocorrelation",
    "bic_penalty",
    "difference_noise",
    "moderated_sd",
    "pooled_trimmed_scale",
    "row_sum",
    "shift",
    "trim_factor",
    "trigamma_inverse",
    "trimmed_scale",
    "variance_prior",
]


def shift(a: np.ndarray, d: int) -> np.ndarray:
    """``a`` moved ``d >= 0`` columns to the right, NaN-filled (column t holds t - d)."""
    if d < 0:
        raise ValueError("shift moves to the right only")
    if d == 0:
        return a
    out = np.full_like(a, np.nan)
    out[:, d:] = a[:, :-d]
    return out


def row_sum(a: np.ndarray) -> np.ndarray:
    """Sum of each row, added left to right (independent of trailing zero padding).

    ``numpy.sum`` adds long rows pairwise, so appending zeros can change the
    last bit of a row's sum; a running sum cannot.
    """
    if a.ndim != 2:
        raise ValueError("row_sum needs a 2-D array")
    if a.shape[1] == 0:
        return np.zeros(a.shape[0])
    return np.cumsum(a, axis=1)[:, -1]


def trim_factor(c: np.ndarray, k: np.ndarray) -> np.ndarray:
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


def trimmed_scale(values: np.ndarray, trim: float = 0.2):
    """Trimmed SD of each row of ``values`` (NaN ignored), its df and the trimmed mean.

    Drops the ``k = max(1, floor(trim * c))`` smallest and largest of a row's
    ``c`` values (none when ``c < 4``), takes the sample SD of the rest and
    divides by what that SD is on average for standard normal values
    (:func:`trim_factor`), so that Gaussian noise gives about its SD. A few
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
        mean = row_sum(np.where(mid, srt, 0.0)) / kept
        dev = np.where(mid, srt - mean[:, None], 0.0)
        var = row_sum(dev * dev) / (kept - 1)
        factor = trim_factor(c, k)
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
    factor = float(trim_factor(np.array([c]), np.array([k]))[0])
    return float(math.sqrt(var / factor))


def difference_noise(panel: Panel, clients: np.ndarray, trim: float = 0.2) -> tuple[float, float]:
    """Pooled trimmed SD of lag-1 differences and the noise autocorrelation.

    From the given clients' consecutive observed scores; NaN where there is
    nothing to estimate from. Independent of the order of the clients.
    """
    diffs, pairs = [], []
    for block in panel.blocks(clients):
        d = shift(block.x, 1) - block.x  # x[t-1] - x[t]
        diffs.append(d[~np.isnan(d)])
        nxt = np.full_like(d, np.nan)
        nxt[:, :-1] = d[:, 1:]  # the following difference
        ok = ~np.isnan(d) & ~np.isnan(nxt)
        pairs.append(np.stack([d[ok], nxt[ok]], axis=1))
    values = np.concatenate(diffs) if diffs else np.zeros(0)
    sd = pooled_trimmed_scale(values, trim)
    phi = autocorrelation(np.concatenate(pairs) if pairs else np.zeros((0, 2)), sd)
    return sd, phi


def autocorrelation(pairs: np.ndarray, sd: float) -> float:
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


def difference_autocorrelation(panel: Panel, clients: np.ndarray, trim: float = 0.2) -> float:
    """Noise autocorrelation phi from consecutive lag-1 differences, by a robust correlation.

    For AR(1) noise consecutive differences ``a, b`` correlate
    ``rho = -(1 - phi) / 2``. ``rho`` is estimated as Gnanadesikan and
    Kettenring's robust correlation ``(S(a+b)^2 - S(a-b)^2) / (S(a+b)^2 +
    S(a-b)^2)`` with ``S`` the pooled trimmed SD (:func:`pooled_trimmed_scale`):
    a rupture's fall and return (``a = -b``) only spread ``a - b``, which
    the trimming drops, and clients with different noise levels do not bias
    it (``a + b`` and ``a - b`` are scale mixtures with the same mixing).
    Unlike :func:`autocorrelation` it needs no cut-off of large differences,
    which biases phi upwards (about 0.4 for a true 0.3). Kept within
    [-0.5, 0.9]; NaN without at least 10 pairs. Independent of the order of
    the clients.
    """
    sums, diffs = [], []
    for block in panel.blocks(clients):
        d = shift(block.x, 1) - block.x
        nxt = np.full_like(d, np.nan)
        nxt[:, :-1] = d[:, 1:]
        ok = ~np.isnan(d) & ~np.isnan(nxt)
        sums.append((d + nxt)[ok])
        diffs.append((d - nxt)[ok])
    plus = np.concatenate(sums) if sums else np.zeros(0)
    minus = np.concatenate(diffs) if diffs else np.zeros(0)
    if plus.size < 10:
        return math.nan
    sp, sm = pooled_trimmed_scale(plus, trim), pooled_trimmed_scale(minus, trim)
    if not (math.isfinite(sp) and math.isfinite(sm)) or sp * sp + sm * sm == 0:
        return math.nan
    rho = (sp * sp - sm * sm) / (sp * sp + sm * sm)
    return float(min(0.9, max(-0.5, 1.0 + 2.0 * rho)))


def moderated_sd(own: np.ndarray, own_df: np.ndarray, pooled: float, prior_df: float):
    """Each client's SD moderated towards a pooled one (Smyth, 2004), and its degrees of freedom.

    ``sqrt((nu s^2 + nu0 s0^2) / (nu + nu0))`` with ``nu`` the client's df
    and ``nu0 = prior_df``; df ``nu + nu0``. Without a finite pooled SD the
    client's own SD (NaN where it has no df).

    Examples
    --------
    >>> import numpy as np
    >>> sd, df = moderated_sd(np.array([2.0]), np.array([4]), pooled=1.0, prior_df=4.0)
    >>> float(sd[0]) == (10.0 / 4.0) ** 0.5, float(df[0])  # (4 * 4 + 4 * 1) / 8 = 2.5
    (True, 8.0)
    """
    nu = np.asarray(own_df, dtype=float)
    own0 = np.where(np.isfinite(own), own, 0.0)
    if math.isfinite(pooled):
        return np.sqrt((nu * own0**2 + prior_df * pooled**2) / (nu + prior_df)), nu + prior_df
    return np.where(nu > 0, own0, np.nan), np.where(nu > 0, nu, np.nan)


#: Largest prior degrees of freedom reported by :func:`variance_prior`: the
#: estimate is infinite when the clients' variances vary no more than sampling
#: alone makes them, and every client then gets the pooled variance.
MAX_PRIOR_DF = 1e6


def variance_prior(var: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """Prior of the clients' noise variances, estimated from the variances themselves (Smyth, 2004).

    The empirical-Bayes model of limma's moderated t: each client's variance
    estimate ``s2`` with ``d`` degrees of freedom is ``s0^2 chi2_d / d``-like
    around its true variance, and the true variances follow a scaled inverse
    chi-square prior with ``d0`` degrees of freedom and scale ``s0^2``. Then
    ``log s2`` has mean ``log s0^2 + digamma(d/2) - log(d/2) - digamma(d0/2) +
    log(d0/2)`` and variance ``trigamma(d/2) + trigamma(d0/2)``, which the
    method of moments solves for ``d0`` and ``s0^2`` (Smyth 2004, section 6.2):

    * ``e = log s2 - digamma(d/2) + log(d/2)``;
    * ``trigamma(d0/2) = var(e) - mean(trigamma(d/2))`` (``d0`` infinite when
      the right side is not positive: the variances differ no more than
      sampling alone makes them);
    * ``s0^2 = exp(mean(e) + digamma(d0/2) - log(d0/2))``.

    Only clients with a positive, finite variance and ``d > 0`` count (a
    variance of exactly 0, a course constant at the ceiling, has no
    logarithm); with fewer than 3 of them the prior is undefined
    (``(nan, 0.0)``). Sums are taken over sorted values with
    :func:`math.fsum`, so the result does not depend on the clients' order.
    Returns ``(s0, d0)``: the prior SD and degrees of freedom (at most
    :data:`MAX_PRIOR_DF`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> true = 4 * 6 / rng.chisquare(6, 5000)  # true variances: s0^2 = 4, d0 = 6
    >>> s2 = true * rng.chisquare(6, 5000) / 6  # their estimates, 6 df each
    >>> s0, d0 = variance_prior(s2, np.full(5000, 6))
    >>> round(s0, 2), round(d0, 1)
    (2.0, 5.9)
    """
    var = np.asarray(var, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = np.isfinite(var) & (var > 0) & np.isfinite(df) & (df > 0)
    if int(ok.sum()) < 3:
        return math.nan, 0.0
    v, d = var[ok], df[ok]
    half = d / 2.0
    e = np.log(v) - special.digamma(half) + np.log(half)
    n = e.size
    e_mean = math.fsum(np.sort(e).tolist()) / n
    e_var = math.fsum(np.sort((e - e_mean) ** 2).tolist()) / (n - 1)
    target = e_var - math.fsum(np.sort(special.polygamma(1, half)).tolist()) / n
    if target <= 0:
        return float(math.sqrt(math.exp(e_mean))), MAX_PRIOR_DF
    d0 = 2.0 * trigamma_inverse(target)
    if d0 >= MAX_PRIOR_DF:
        return float(math.sqrt(math.exp(e_mean))), MAX_PRIOR_DF
    s0_sq = math.exp(e_mean + float(special.digamma(d0 / 2.0)) - math.log(d0 / 2.0))
    return float(math.sqrt(s0_sq)), float(d0)


def trigamma_inverse(y: float) -> float:
    """The ``x > 0`` with ``trigamma(x) = y`` (Newton's method from ``0.5 + 1/y``, as in limma).

    Beyond ``y = 1e7`` it is ``1 / sqrt(y)``, below ``1e-6`` it is ``1 / y``
    (the function's limits, where Newton's steps lose precision).
    """
    if y > 1e7:
        return 1.0 / math.sqrt(y)
    if y < 1e-6:
        return 1.0 / y
    x = 0.5 + 1.0 / y
    for _ in range(100):
        tri = float(special.polygamma(1, x))
        step = tri * (1.0 - tri / y) / float(special.polygamma(2, x))
        x += step
        if -step / x < 1e-10:
            break
    return x


def bic_penalty(sigma: np.ndarray | float, n: np.ndarray) -> np.ndarray:
    """Schwarz penalty per change point of a Gaussian mean-shift model: ``2 sigma^2 ln(n)``.

    Each change point adds two parameters (its location and the new mean);
    ``sigma`` is the noise SD and ``n`` the number of scores (at least 2 is
    used).
    """
    return 2.0 * np.asarray(sigma, dtype=float) ** 2 * np.log(np.maximum(np.asarray(n, dtype=float), 2.0))


def aic_penalty(sigma: np.ndarray | float, n: np.ndarray) -> np.ndarray:
    """Akaike penalty per change point of a Gaussian mean-shift model: ``4 sigma^2``."""
    return np.broadcast_to(4.0 * np.asarray(sigma, dtype=float) ** 2, np.shape(n)).astype(float)
