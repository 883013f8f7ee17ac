"""Rupture shapes tested against each client's noise, at a calibrated false-alarm level (``rule="scan"``).

The library's own rule. Every way a rupture can sit in a course (a dip of
one to ``max_width`` sessions, a decline with a sudden repair, a sudden drop
with a gradual repair, a drop that lasts to the end) is a template; each
template's least-squares fit to the client's scores, under first-order
autoregressive noise around the client's own level and trend, gives a
standardised statistic, and the course's largest statistic is compared with
a critical value calibrated so that a client without a rupture is flagged
with probability ``alpha`` whatever the length of the course. The noise of
each client is its own, moderated towards the trial's with an empirical-Bayes
prior whose degrees of freedom are estimated from the data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._lazy import special
from ..errors import Problem
from ..noise import (
    difference_autocorrelation,
    pooled_trimmed_scale,
    shift,
    trigamma_inverse,
    trimmed_scale,
    variance_prior,
)
from ..panel import Block, Panel
from ..params import integer, number
from ._base import BlockResult, Rule, register_rule

__all__ = ["SHAPES", "Scan", "calibration", "null_statistics"]

#: The episode shapes, in the order of the ``shape`` codes.
SHAPES = ("dip", "decline", "recovery", "sustained")

#: Default of ``trend_from``: shorter courses are modelled around a level only.
TREND_FROM = 10
#: Default of ``curve_from``: courses this long get a quadratic trend.
CURVE_FROM = 30
#: Simulated rupture-free courses per course length in the calibration.
CAL_DRAWS = 10000
#: False-alarm levels at which the calibration measures the effective number of tests.
CAL_LEVELS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
#: Course lengths calibrated one by one; longer ones are interpolated on CAL_GRID.
CAL_EXACT_UP_TO = 32
CAL_GRID = (32, 48, 64)
#: Clients with at least TRIM_FROM differences that suffice to estimate the noise prior from them alone.
PRIOR_FROM = 30
#: Rows x templates evaluated at a time (bounds the memory of one block).
_CELLS = 1 << 20


# --------------------------------------------------------------------------
# templates


@dataclass(frozen=True)
class Templates:
    """Every candidate episode of a course of ``k`` observed scores, with its fitted constants.

    Templates are stored in runs: one run per shape and width, whose
    templates start at consecutive positions ``a = first .. first + count - 1``
    (0 = the first observed score). A template ``s`` is the pattern of the
    drop (1 = the full depth): ``dip`` 1 on ``[a, a + w)``; ``decline``
    ``(j + 1) / w`` at ``a + j``; ``recovery`` ``1 - j / w`` at ``a + j``;
    ``sustained`` 1 from ``a`` to the last score. Episodes that are repaired
    need a session after them (``a + w <= k - 1``) and every episode a
    session before it (``a >= 1``).
    """

    k: int
    phi: float
    degree: int  # of the null model's polynomial trend (0: a level only)
    runs: tuple[tuple[int, int, int, int, int], ...]  # (shape code, width, first a, count, offset)
    alpha_b: np.ndarray  # coefficient of the window sum of y
    beta_c: np.ndarray  # coefficient of the window sum of i * y
    norm: np.ndarray  # (K,) length of each template's residual under the noise model (NaN: absorbed)
    inv_norm: np.ndarray  # (K,) 1 / norm (0 where the null model absorbs the template)
    neg_b: np.ndarray  # (K,) -alpha_b / norm: the coefficients of a_t itself
    neg_c: np.ndarray  # (K,) -beta_c / norm
    shape: np.ndarray  # (K,) shape code
    start: np.ndarray  # (K,) first position
    stop: np.ndarray  # (K,) repair position (k for sustained)

    @property
    def size(self) -> int:
        return int(self.norm.size)


def _q_diag(k: int, phi: float) -> np.ndarray:
    """Diagonal of Q = P'P, P the AR(1) prewhitening matrix (off-diagonals are -phi)."""
    c = np.full(k, 1.0 + phi * phi)
    c[0] = 1.0
    c[-1] = 1.0
    return c


def _apply_q(x: np.ndarray, phi: float) -> np.ndarray:
    """``x Q`` row by row: ``c_i x_i - phi (x_{i-1} + x_{i+1})`` (missing neighbours count 0)."""
    y = x * _q_diag(x.shape[1], phi)[None, :]
    if x.shape[1] > 1 and phi != 0.0:
        y[:, 1:] -= phi * x[:, :-1]
        y[:, :-1] -= phi * x[:, 1:]
    return y


def _cumulative(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums of ``y`` and of ``i * y`` along rows, with a leading 0 column."""
    m, k = y.shape
    big_y = np.zeros((m, k + 1))
    big_j = np.zeros((m, k + 1))
    np.cumsum(y, axis=1, out=big_y[:, 1:])
    np.cumsum(y * np.arange(k, dtype=float)[None, :], axis=1, out=big_j[:, 1:])
    return big_y, big_j


def _inner(big_y: np.ndarray, big_j: np.ndarray, tpl: Templates, out: np.ndarray) -> None:
    """``out[:, t] = <y, s_t>`` for every template, from the running sums."""
    k = big_y.shape[1] - 1
    for code, w, first, count, off in tpl.runs:
        lo = slice(first, first + count)
        hi = slice(k, k + 1) if code == 3 else slice(first + w, first + w + count)
        seg = slice(off, off + count)
        if code in (0, 3):  # dip, sustained: the window sum
            np.subtract(big_y[:, hi], big_y[:, lo], out=out[:, seg])
        else:
            b = big_y[:, hi] - big_y[:, lo]
            c = big_j[:, hi] - big_j[:, lo]
            out[:, seg] = b * tpl.alpha_b[None, seg] + c * tpl.beta_c[None, seg]


def _fill(big_y: np.ndarray, big_j: np.ndarray, tpl: Templates, out: np.ndarray) -> None:
    """``out[:, t] = -<r, s_t> / |R_t|`` from the running sums of ``r`` (:func:`_inner`, scaled and negated).

    The window sums of a width are computed once for its dip, decline and
    recovery (the runs of a width are adjacent).
    """
    k = big_y.shape[1] - 1
    width = -1
    b = c = np.zeros((big_y.shape[0], 0))
    fresh_c = False
    for code, w, first, count, off in tpl.runs:
        seg = slice(off, off + count)
        lo = slice(first, first + count)
        if code == 3:  # sustained: the sum from a to the end
            np.subtract(big_y[:, lo], big_y[:, k : k + 1], out=out[:, seg])
            out[:, seg] *= tpl.inv_norm[None, seg]
            continue
        if w != width:
            hi = slice(first + w, first + w + count)
            width, b, fresh_c = w, big_y[:, hi] - big_y[:, lo], False
        if code == 0:
            np.multiply(b, -tpl.inv_norm[None, seg], out=out[:, seg])
            continue
        if not fresh_c:
            c, fresh_c = big_j[:, first + w : first + w + count] - big_j[:, lo], True
        np.multiply(b, tpl.neg_b[None, seg], out=out[:, seg])
        out[:, seg] += c * tpl.neg_c[None, seg]


@functools.lru_cache(maxsize=512)
def templates(k: int, phi: float, max_width: int, degree: int = 1) -> Templates:
    """The candidate episodes of a ``k``-score course and their constants under AR(1) noise ``phi``.

    ``degree``: of the null model's polynomial trend (0 a level, 1 linear, 2 quadratic).
    """
    runs = []
    shape, start, stop, a_b, b_c = [], [], [], [], []
    off = 0
    # width by width (the window sums of a width are shared by its shapes), sustained drops last
    for w in range(1, max_width + 1):
        count = k - 1 - w  # a = 1 .. k - 1 - w
        if count <= 0:
            continue
        a = np.arange(1, 1 + count)
        for code in (0, 1, 2) if w >= 2 else (0,):
            runs.append((code, w, 1, count, off))
            off += count
            shape.append(np.full(count, code))
            start.append(a)
            stop.append(a + w)
            if code == 1:  # decline: sum (i - a + 1) y_i / w
                a_b.append(-(a - 1.0) / w)
                b_c.append(np.full(count, 1.0 / w))
            elif code == 2:  # recovery: sum (w + a - i) y_i / w
                a_b.append((w + a) / float(w))
                b_c.append(np.full(count, -1.0 / w))
            else:
                a_b.append(np.ones(count))
                b_c.append(np.zeros(count))
    if k >= 2:  # sustained from a = 1 .. k - 1: the sum from a to the end (width 0 marks "to the end")
        a = np.arange(1, k)
        runs.append((3, 0, 1, k - 1, off))
        off += k - 1
        shape.append(np.full(k - 1, 3))
        start.append(a)
        stop.append(np.full(k - 1, k))
        a_b.append(np.ones(k - 1))
        b_c.append(np.zeros(k - 1))
    if not runs:
        empty = np.zeros(0)
        return Templates(k, phi, degree, (), empty, empty, empty, empty, empty, empty,
                         empty.astype(np.int64),
                         empty.astype(np.int64), empty.astype(np.int64))
    tpl = Templates(k, phi, degree, tuple(runs), np.concatenate(a_b), np.concatenate(b_c),
                    np.zeros(off), np.zeros(off), np.zeros(off), np.zeros(off), np.concatenate(shape).astype(np.int64),
                    np.concatenate(start).astype(np.int64), np.concatenate(stop).astype(np.int64))
    # the null model's columns D and Q = P'P
    design = _design(k, degree)
    qd = _apply_q(design, phi)  # rows: Q d_p
    gram = qd @ design.T  # D'QD
    dqs = np.zeros((design.shape[0], off))  # D'Q s_t
    big_y, big_j = _cumulative(qd)
    _inner(big_y, big_j, tpl, dqs)
    h = np.linalg.solve(gram, dqs).T  # (K, degree + 1)
    sqs = _quadratic(tpl, k, phi)
    resid = sqs - np.einsum("kd,dk->k", h, dqs)
    keep = resid > 1e-9 * sqs
    norm = np.sqrt(np.where(keep, resid, np.nan))
    inv = np.where(keep, 1.0 / np.where(keep, norm, 1.0), 0.0)
    return replace(tpl, norm=norm, inv_norm=inv, neg_b=-tpl.alpha_b * inv, neg_c=-tpl.beta_c * inv)


def _quadratic(tpl: Templates, k: int, phi: float) -> np.ndarray:
    """``s' Q s`` of every template: ``sum c_i s_i^2 - 2 phi sum s_i s_{i+1}``."""
    inner = 1.0 + phi * phi  # every position of a repaired template is interior
    out = np.empty(tpl.size)
    for code, w, _first, count, off in tpl.runs:
        seg = slice(off, off + count)
        if code == 0:
            out[seg] = inner * w - 2.0 * phi * (w - 1)
        elif code == 3:  # [a, k): the last position has c = 1
            span = k - tpl.start[seg].astype(float)
            out[seg] = inner * (span - 1) + 1.0 - 2.0 * phi * (span - 1)
        else:  # the values 1/w, 2/w, ..., 1 in either order
            j = np.arange(1, w + 1, dtype=float)
            out[seg] = (inner * float(np.sum(j * j)) - 2.0 * phi * float(np.sum(j[:-1] * j[1:]))) / (w * w)
    return out


def patterns(tpl: Templates, idx: np.ndarray) -> np.ndarray:
    """The drop pattern ``s`` (rows, ``k`` scores) of each template in ``idx``."""
    j = np.arange(tpl.k)[None, :]
    a, stop, shape = tpl.start[idx][:, None], tpl.stop[idx][:, None], tpl.shape[idx][:, None]
    w = (stop - a).astype(float)
    inside = (j >= a) & (j < stop)
    value = np.where(shape == 1, (j - a + 1) / w, np.where(shape == 2, 1.0 - (j - a) / w, 1.0))
    return np.where(inside, value, 0.0)


def residual_df(k: int, degree: int) -> int:
    """Degrees of freedom of a ``k``-score course's residuals once a template is fitted."""
    return k - (degree + 1) - 1


@functools.lru_cache(maxsize=1024)
def _gram_inverse(k: int, degree: int, phi: float) -> np.ndarray:
    """``(D'QD)^-1`` of the null model of a ``k``-score course."""
    design = _design(k, degree)
    return np.linalg.inv(_apply_q(design, phi) @ design.T)


def _design(k: int, degree: int) -> np.ndarray:
    """The null model's columns as rows: powers 0..degree of the position scaled to [0, 1]."""
    u = np.arange(k, dtype=float) / max(k - 1, 1)
    return np.stack([u**p for p in range(degree + 1)])


def projections(x: np.ndarray, tpl: Templates) -> tuple[np.ndarray, np.ndarray]:
    """Each template's fitted drop in noise-free units, and the null model's residual sum of squares.

    Returns ``a`` (rows x templates), ``a_t = -<P x, R_t> / |R_t|`` (the
    least-squares depth of the template times ``|R_t|``: positive = a drop;
    0 for a template the null model absorbs), and ``rss`` (rows), the
    prewhitened residual sum of squares of the null model (level, and a
    polynomial trend of degree ``tpl.degree``), so that fitting template ``t`` too
    leaves ``rss - a_t^2``.
    """
    x0 = x - x[:, :1]  # centred on the first score: the null model removes any level
    k = x.shape[1]
    y = _apply_q(x0, tpl.phi)
    design = _design(k, tpl.degree)
    # the null model's GLS fit (D'y summed left to right: the same in every block) and residuals r
    dy = np.stack([np.cumsum(y * col[None, :], axis=1)[:, -1] for col in design], axis=1)
    # beta = (D'QD)^-1 D'y element by element (a LAPACK solve of many right-hand sides may round a
    # client's numbers differently depending on how many clients share its block)
    ginv = _gram_inverse(k, tpl.degree, tpl.phi)
    r = x0.copy()
    for p in range(design.shape[0]):
        beta_p = dy[:, 0] * ginv[p, 0]
        for q in range(1, design.shape[0]):
            beta_p = beta_p + dy[:, q] * ginv[p, q]
        r -= beta_p[:, None] * design[p][None, :]
    qr = _apply_q(r, tpl.phi)
    rss = np.maximum(np.cumsum(r * qr, axis=1)[:, -1], 0.0)
    # <P x, R_t> = <P r, P s_t> = <Q r, s_t>: the templates need only the residuals' running sums
    big_y, big_j = _cumulative(qr)
    a = np.empty((x.shape[0], tpl.size))
    _fill(big_y, big_j, tpl, a)
    return a, rss


def moderated_t(a: np.ndarray, rss: np.ndarray, nu: int, prior_ss: float, prior_df: float,
                eps: np.ndarray | None = None) -> np.ndarray:
    """The moderated t statistic of fitted drops ``a`` (any shape whose rows match ``rss``).

    ``t = a / s`` with ``s^2 = (rss - a^2 + d0 s0^2) / (nu + d0)``: the
    residual variance once the template is fitted (``nu`` df) moderated by
    the prior (innovation variance ``prior_ss = s0^2`` with ``prior_df =
    d0`` df; a remainder below 1e-12 of ``rss`` is taken as 0, rounding
    errors). For a given row ``t`` increases with ``a``, so the best
    template of a row is the one with the largest ``a``. Where ``s`` is 0
    (scores constant apart from the drop, no prior) a real drop (``a``
    above 10 ``eps``) gets ``+inf``, anything else 0.
    """
    a = np.asarray(a, dtype=float)
    r = rss.reshape(rss.shape + (1,) * (a.ndim - rss.ndim))
    d0 = prior_df if math.isfinite(prior_ss) else 0.0
    extra = d0 * prior_ss if d0 > 0 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = r - a * a
        resid = np.where(resid > 1e-12 * r, resid, 0.0)  # a remainder of rounding errors is no noise
        var = (resid + extra) / (nu + d0)
        t = a / np.sqrt(var)
        zero = ~(var > 0)
        if zero.any():
            big = 0.0 if eps is None else 10.0 * eps.reshape(r.shape)
            t = np.where(zero, np.where(a > big, np.inf, 0.0), t)
    return t


# --------------------------------------------------------------------------
# calibration


def null_statistics(k: int, phi: float, max_width: int, degree: int, prior_df: float, draws: int,
                    seed: Any) -> np.ndarray:
    """Largest statistic of ``draws`` rupture-free courses of ``k`` scores under the empirical-Bayes null.

    Stationary AR(1) noise whose innovation variance is drawn from the
    prior (scaled inverse chi-square with ``prior_df`` df and scale 1; 1
    when ``prior_df`` is infinite), and the statistic of :func:`moderated_t`
    with that prior: the noise estimate, the moderation and the choice of
    the best template are all part of what is simulated.
    """
    tpl = templates(k, phi, max_width, degree)
    g = np.random.default_rng(seed)
    out = np.empty(draws)
    step = max(1, _CELLS // max(tpl.size, 1))
    known = not math.isfinite(prior_df) or prior_df >= 1e6
    # the draws do not depend on the chunk size: every course's noise level first, then the courses
    level = np.sqrt(prior_df / g.chisquare(prior_df, draws)) if not known and prior_df > 0 else np.ones(draws)
    x_all = _ar1_courses(g, draws, k, phi)
    for lo in range(0, draws, step):
        n = min(step, draws - lo)
        x = x_all[lo : lo + n]
        if known:
            a, _rss = projections(x, tpl)
            out[lo : lo + n] = a.max(axis=1) if tpl.size else -np.inf
            continue
        x = x * level[lo : lo + n, None]
        a, rss = projections(x, tpl)
        top = a.max(axis=1) if tpl.size else np.full(n, -np.inf)
        out[lo : lo + n] = moderated_t(top, rss, residual_df(k, degree), 1.0, prior_df)
    return out


def _df(k: int, degree: int, prior_df: float) -> float:
    """Degrees of freedom of the t tail in the calibration: residual df + prior df (inf: known noise)."""
    return math.inf if not math.isfinite(prior_df) or prior_df >= 1e6 else residual_df(k, degree) + prior_df


def _tail(z: np.ndarray, df: float) -> np.ndarray:
    """One template's chance of a statistic ``>= z``: Student's t with ``df`` (normal when infinite)."""
    z = np.asarray(z, dtype=float)
    return special.ndtr(-z) if not math.isfinite(df) else special.stdtr(df, -z)


@functools.lru_cache(maxsize=2048)
def _measured(k: int, phi: float, max_width: int, degree: int, prior_df: float) -> tuple[float, ...]:
    """Effective number of tests at each of :data:`CAL_LEVELS` for ``k`` scores (simulated)."""
    seed = [20261203, k, int(round(phi * 100)) + 100, max_width, degree,
            10**9 if not math.isfinite(prior_df) else int(round(prior_df * 100))]
    top = null_statistics(k, phi, max_width, degree, prior_df, CAL_DRAWS, seed)
    df = _df(k, degree, prior_df)
    out = []
    for level in CAL_LEVELS:
        u = float(np.quantile(top, 1.0 - level))
        single = float(_tail(np.array(u), df))
        m = math.log1p(-level) / math.log1p(-single) if 0 < single < 1 else 1.0
        out.append(float(f"{max(m, 1.0):.4g}"))  # 4 digits: the calibration's precision
    return tuple(out)


def calibration(k: int, phi: float, max_width: int, degree: int = 1, prior_df: float = math.inf
                ) -> tuple[float, ...]:
    """Effective number of tests ``m`` of a ``k``-score course at each of :data:`CAL_LEVELS`.

    ``m`` is what makes ``1 - (1 - tail(u))^m`` the chance that a
    rupture-free course's largest statistic reaches ``u`` (``tail`` the t
    tail with residual + prior df). Measured by simulation
    (:func:`null_statistics`, :data:`CAL_DRAWS` courses, a fixed seed) for
    courses of up to :data:`CAL_EXACT_UP_TO` scores; longer courses are
    interpolated between, or extrapolated along the line through, the
    lengths in :data:`CAL_GRID` (the number of effectively independent
    templates grows in proportion to the length).
    """
    if k < 3:
        return tuple(1.0 for _ in CAL_LEVELS)
    if k <= CAL_EXACT_UP_TO:
        return _measured(k, phi, max_width, degree, prior_df)
    grid = CAL_GRID
    i = 0
    while i < len(grid) - 2 and k > grid[i + 1]:
        i += 1
    k0, k1 = grid[i], grid[i + 1]
    m0, m1 = _measured(k0, phi, max_width, degree, prior_df), _measured(k1, phi, max_width, degree, prior_df)
    return tuple(max(1.0, a + (b - a) * (k - k0) / (k1 - k0)) for a, b in zip(m0, m1))


def _ar1_courses(g: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    """``n`` stationary AR(1) courses of ``k`` scores with unit innovations."""
    e = g.standard_normal((n, k))
    x = np.empty((n, k))
    x[:, 0] = e[:, 0] / math.sqrt(1.0 - phi * phi)
    for j in range(1, k):
        x[:, j] = phi * x[:, j - 1] + e[:, j]
    return x


#: Fewest lag-1 differences a client's own noise estimate is trimmed from (and that count in the prior).
TRIM_FROM = 10


def own_trim(k: int, trim: float) -> float:
    """The share trimmed from a ``k``-score course's lag-1 differences: ``trim`` from :data:`TRIM_FROM` on, else 0.

    Trimming one of 4-9 differences at each end (and scores in whole
    points) leaves too little to estimate from: the middle two of four
    rounded differences are often both 0.
    """
    return trim if k - 1 >= TRIM_FROM else 0.0


@functools.lru_cache(maxsize=1024)
def _own_noise_model(k: int, phi: float, trim: float) -> tuple[float, float]:
    """Scale and effective degrees of freedom of a ``k``-score course's own noise variance.

    The (trimmed: :func:`own_trim`) variance of the ``k - 1`` lag-1
    differences of rupture-free AR(1) noise, divided by the true one, is
    treated as ``f chi2_nu / nu``: ``nu`` the df whose log-chi-square
    variance (``trigamma(nu / 2)``) matches the simulated variance of its
    logarithm, and ``f`` the scale that makes the mean of its logarithm
    match too (``digamma(nu / 2) - log(nu / 2)``), which is what the
    method of moments of :func:`alliance_ts.noise.variance_prior` needs.
    Trimming, few differences and the correlation of consecutive
    differences make ``nu`` much smaller than the differences - 1 (about
    1 for 5 scores, 9 for 20).
    Simulated (:data:`CAL_DRAWS` courses, a fixed seed per length) up to 64
    scores; longer courses scale the df of 64 scores by the number of
    differences. Used to estimate the prior of the noise variances.
    """
    if k > 64:
        f, nu = _own_noise_model(64, phi, trim)
        return f, nu * (k - 1) / 63.0
    g = np.random.default_rng([20261204, k, int(round(phi * 100)) + 100, int(round(trim * 100))])
    x = _ar1_courses(g, CAL_DRAWS, k, phi)
    sd, _nu, _loc = trimmed_scale(shift(x, 1) - x, own_trim(k, trim))
    ratio = sd * sd * (1.0 + phi) / 2.0  # the true variance of a lag-1 difference is 2 / (1 + phi)
    ok = np.isfinite(ratio) & (ratio > 0)
    if ok.sum() < 100:
        return 1.0, 0.0
    logs = np.log(ratio[ok])
    nu = 2.0 * trigamma_inverse(float(np.var(logs, ddof=1)))
    f = math.exp(float(np.mean(logs)) - float(special.digamma(nu / 2.0)) + math.log(nu / 2.0))
    return float(f"{f:.4g}"), float(f"{nu:.4g}")


def _tests_at(level: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Effective number of tests at each ``level``, interpolated in log-log between the calibrated levels."""
    lx = np.log(np.asarray(CAL_LEVELS))
    ll = np.log(np.clip(level, CAL_LEVELS[0], CAL_LEVELS[-1]))
    return np.exp(np.interp(ll, lx, np.log(table)))


def _flag_chance(single: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``1 - (1 - single)^m``: the chance that the largest of ``m`` independent statistics is as extreme."""
    single = np.asarray(single, dtype=float)
    with np.errstate(divide="ignore"):
        fam = -np.expm1(np.asarray(m) * np.log1p(-np.minimum(single, 1.0)))
    return np.where(single >= 1.0, 1.0, fam)


@functools.lru_cache(maxsize=8192)
def _critical(df: float, table: tuple[float, ...], level: float) -> float:
    """The ``u`` at which a rupture-free course is flagged with chance ``level`` (``inf`` for level 0)."""
    if level <= 0:
        return math.inf
    m = _tests_at(np.array(level), np.asarray(table))
    single = -math.expm1(math.log1p(-level) / float(m))
    return float(special.ndtri(1.0 - single) if not math.isfinite(df) else special.stdtrit(df, 1.0 - single))


def _p_value(z: np.ndarray, df: float, table: np.ndarray) -> np.ndarray:
    """Client-level p-value of each largest statistic ``z``.

    :func:`_flag_chance` of the t tail of ``z``, with the effective number
    of tests at the p-value's own level (settled by three fixed-point steps).
    """
    z = np.asarray(z, dtype=float)
    single = _tail(np.where(np.isnan(z), 0.0, z), df)
    p = np.full(z.shape, 0.05)
    for _ in range(3):
        p = _flag_chance(single, _tests_at(p, table))
    return np.where(np.isnan(z), np.nan, p)


# --------------------------------------------------------------------------
# the rule


@register_rule(
    "scan",
    family="scan",
    summary=(
        "The best-fitting rupture shape (dip, decline, gradual recovery, sustained drop) tested "
        "under each client's moderated AR(1) noise, with a critical value calibrated so that a "
        "rupture-free client is flagged with probability alpha at any course length."
    ),
    reference="alliance_ts (the library's own rule; Smyth, 2004, for the moderated noise)",
)
@dataclass(frozen=True)
class Scan(Rule):
    r"""Rupture shapes tested under each client's noise, with a calibrated false-alarm level.

    Parameters
    ----------
    alpha : float, default 0.05
        Chance that a client without any rupture is flagged (per client,
        at every course length).
    max_width : int, default 5
        Most sessions a repaired episode spans (dips, declines, recoveries).
    fdr : float or None, default None
        Instead of ``alpha`` per client, control the false-discovery rate
        over the analysed clients at this level (Benjamini & Hochberg, 1995):
        a client is flagged when its p-value is at most the largest
        ``i q / N`` that the ``i``-th smallest of the ``N`` p-values meets.
    fdr_cut : float or None, default None
        The p-value cut-off of ``fdr``; None computes it from the analysed
        clients (reported in ``Detection.params``; pass it back to label
        further clients with the same cut-off).
    noise : float or None, default None
        Prior SD of lag-1 differences (score units) that each client's own
        is moderated towards; None estimates it with ``prior_df`` from the
        analysed clients.
    prior_df : float or None, default None
        Weight of ``noise`` in degrees of freedom; None estimates it from the
        spread of the clients' own noise estimates (see Notes). 0 = every
        client's own noise only.
    phi : float or None, default None
        Lag-1 autocorrelation of the session noise; None estimates it from
        the analysed clients' consecutive differences (as ``robust`` does).
        0 = independent noise.
    trim : float, default 0.2
        Share of a client's lag-1 differences trimmed from each end before its
        own noise SD is computed.
    min_noise : float or None, default None
        Floor of the SD of lag-1 differences, in score units.
    trend_from : int, default 10
        Courses of at least this many observed scores are modelled with a
        linear trend besides their level (shorter ones: a level only; a
        trend costs a residual degree of freedom, which short courses cannot
        spare).
    curve_from : int, default 30
        Courses of at least this many observed scores get a quadratic trend
        (long courses curve: growth that levels off, a dip in mid-therapy).

    Notes
    -----
    **Model.** A client's observed scores :math:`x_0..x_{k-1}` (missed
    sessions left out) are a level (from ``trend_from`` scores on with a
    linear trend, from ``curve_from`` on a quadratic one), plus stationary
    AR(1) noise with autocorrelation :math:`\phi`, minus a rupture of depth
    :math:`\delta` with the pattern :math:`s` of a template: a **dip** of
    :math:`w` = 1 to ``max_width`` sessions (1 on :math:`[a, a+w)`;
    :math:`w = 1` is the one-session V); a **decline** deepening over
    :math:`w \ge 2` sessions with a sudden repair (:math:`(j+1)/w` at
    :math:`a+j`); a sudden drop with a gradual **recovery** over
    :math:`w \ge 2` sessions (:math:`1 - j/w`); a **sustained** drop from
    :math:`a` to the last score. Repaired templates need a session after
    them, every template one before it (:math:`a \ge 1`).

    **Statistic.** With :math:`P` the AR(1) prewhitening matrix and
    :math:`R = M P s` the template's part orthogonal (after prewhitening)
    to the null model, :math:`a = -\langle Px, R\rangle / \lVert R \rVert`
    is the generalised least-squares depth of the template times
    :math:`\lVert R \rVert` and :math:`t = a / \tilde s` its moderated t
    statistic, with :math:`\tilde s^2 = (RSS - a^2 + d_0 s_0^2)/(\nu + d_0)`:
    the prewhitened residual variance once the template is fitted
    (:math:`\nu` = scores - trend parameters - 1 df) moderated by a prior
    (Smyth, 2004). For one client :math:`t` grows with :math:`a`, so the
    best template is the one with the largest :math:`a`. A template that
    would flag the client but whose lowest score is not below the mean of
    the up to 3 scores before it (a "drop" against the trend only, as in a
    course that never decreases) is passed over for the next best.

    **Noise prior.** The prior innovation variance :math:`s_0^2` (reported
    as ``noise``, the SD of lag-1 differences, :math:`s_0\sqrt{2/(1+\phi)}`)
    and its degrees of freedom :math:`d_0` (``prior_df``) are estimated from
    every analysed client's own robust noise estimate, the trimmed SD of its
    lag-1 differences (``trim`` of them dropped at each end, as in
    ``robust``; bias and effective degrees of freedom simulated for each
    course length), by the method of moments of limma
    (:func:`alliance_ts.noise.variance_prior`): short courses and courses
    constant at a ceiling get the trial's noise level instead of none.
    :math:`\phi` comes from a robust correlation of consecutive lag-1
    differences (:func:`alliance_ts.noise.difference_autocorrelation`).
    :math:`\phi` is rounded to 0.01 and :math:`d_0` to 2 significant digits.

    **Calibration.** The chance that a rupture-free course's largest
    statistic reaches :math:`u` is written :math:`1 - (1 - q(u))^{m}`, with
    :math:`q` the t tail with :math:`\nu + d_0` df and :math:`m` the
    effective number of independent templates. :math:`m` is measured by
    simulating 10,000 rupture-free courses of each length up to 32 scores
    under the fitted model -- innovation variances drawn from the prior, the
    statistic computed exactly as above, so the noise estimate, its
    moderation and the choice of the best template are all simulated (a
    fixed seed per length: the rule stays deterministic) -- at levels .002
    to .5 (interpolated in log-log between them); longer courses
    interpolate along 32, 48 and 64 scores, extrapolating linearly beyond
    (the number of effectively independent templates grows in proportion
    to the length). A client's **p-value** is that chance at its largest
    statistic; it is flagged when :math:`p \le` ``alpha`` (or the ``fdr``
    cut-off), i.e. when its ``z`` reaches the reported ``threshold``.

    **Episodes.** The best template of a flagged client is its first
    episode: it starts at the template's first session, is repaired at the
    session after it (a dip, decline or recovery) or unresolved (a sustained
    drop); the trough is its first lowest score; ``pre`` is the mean of the
    up to 3 observed scores before it. The fitted drop is then taken out of
    the scores and the templates not touching the episodes found are scored
    again (one residual df fewer per episode); the best is a further episode
    while it reaches the same critical value. A drop fitted as lasting to
    the end whose scores come back to ``pre`` later (a dip longer than
    ``max_width``) is repaired at the first such session after its trough.
    Each episode reports its
    ``shape``, ``width``, ``z``, ``p`` (the client-level p-value of its
    statistic) and ``drop`` (``pre`` minus the trough's score).

    **Too few scores.** Without a prior (a file of one client, or of
    clients whose scores never vary), a course needs 2 residual degrees of
    freedom to estimate its noise: 4 scores (3 score courses are then not
    analysed, with that reason).

    **Zero noise.** A client whose moderated noise is 0 (its scores never
    vary apart from the episode, and no other client has noise to borrow)
    has no noise to measure a drop against: a real drop is then reported
    with infinite evidence (``z = inf``, ``p = 0``). Pass ``min_noise`` when
    the instrument's resolution is known.

    **Provenance.** The templates, the model and the calibration are this
    library's design (not a published rupture criterion); the statistic is
    the standard matched filter (likelihood-ratio test for a known shape in
    Gaussian noise), the moderated variance is Smyth's (2004) and the FDR
    procedure Benjamini & Hochberg's (1995). ``docs/benchmarks.md`` reports
    its accuracy and false alarms against the other rules at matched
    false-alarm rates.

    References
    ----------
    .. [1] Smyth, G. K. (2004). Linear models and empirical Bayes methods for
       assessing differential expression in microarray experiments.
       Statistical Applications in Genetics and Molecular Biology, 3(1), 3.
    .. [2] Benjamini, Y., & Hochberg, Y. (1995). Controlling the false
       discovery rate: a practical and powerful approach to multiple
       testing. Journal of the Royal Statistical Society B, 57(1), 289-300.
    """

    alpha: float = number(0.05, "chance that a rupture-free client is flagged", low=0, high=1, low_open=True,
                          high_open=True)
    max_width: int = integer(5, "most sessions a repaired episode spans", low=1, high=12)
    fdr: float | None = number(None, "false-discovery rate over the analysed clients (None: alpha per client)",
                               low=0, high=1, low_open=True, high_open=True, allow_none=True)
    fdr_cut: float | None = number(None, "p-value cut-off of fdr (None: computed from the analysed clients)",
                                   low=0, high=1, allow_none=True)
    noise: float | None = number(None, "prior SD of lag-1 differences, score units (None: estimated)", low=0,
                                 allow_none=True, allow_nan=True)
    prior_df: float | None = number(None, "weight of the prior noise in degrees of freedom (None: estimated)",
                                    low=0, allow_none=True)
    phi: float | None = number(None, "lag-1 autocorrelation of the session noise (None: estimated)", low=-0.5,
                               high=0.9, allow_none=True)
    trim: float = number(0.2, "share trimmed from each end before a noise SD is computed", low=0, high=0.5,
                         high_open=True)
    min_noise: float | None = number(None, "floor of the SD of lag-1 differences, in score units", low=0,
                                     low_open=True, allow_none=True)
    trend_from: int = integer(TREND_FROM, "fewest observed scores for which the model has a linear trend", low=3)
    curve_from: int = integer(CURVE_FROM, "fewest observed scores for which the trend is quadratic", low=4)

    strictness = ("alpha", "down")
    detects = ("v", "sustained")
    sample_dependent = ("noise", "prior_df", "phi", "fdr_cut")
    trusted_output = True
    client_columns: ClassVar[dict[str, str]] = {"noise": "float64", "noise_df": "float64", "z": "float64",
                                                "p": "float64", "threshold": "float64"}
    episode_columns: ClassVar[dict[str, Any]] = {"shape": pd.CategoricalDtype(list(SHAPES)), "width": "int64",
                                                 "z": "float64", "p": "float64", "drop": "float64"}

    @property
    def invariances(self) -> tuple[str, ...]:  # type: ignore[override]
        """Translation always; scaling unless an absolute ``min_noise`` floor is set."""
        return ("translation",) if self.min_noise is not None else ("translation", "scaling")

    def check(self) -> list[Problem]:
        problems = super().check()
        bad = {p.where for p in problems}
        if not bad & {"parameter 'curve_from'", "parameter 'trend_from'"} and self.curve_from < self.trend_from:
            problems.append(Problem("parameter 'curve_from'", f"must be at least trend_from ({self.trend_from}): a "
                                    f"quadratic trend needs the linear one, got {self.curve_from}"))
        if self.fdr_cut is not None and self.fdr is None:
            problems.append(Problem("parameter 'fdr_cut'", "is the cut-off of fdr: give fdr too (or leave fdr_cut "
                                    "out and control each client's false alarms with alpha)"))
        return problems

    def degree(self, k: int) -> int:
        """Degree of the null model's trend for a course of ``k`` observed scores."""
        return 2 if k >= self.curve_from else 1 if k >= self.trend_from else 0

    def needs_sample(self) -> bool:
        return (self.noise is None or self.prior_df is None or self.phi is None
                or (self.fdr is not None and self.fdr_cut is None))

    def rescaled(self, factor: float) -> Scan:
        if self.noise is None or not math.isfinite(self.noise):
            return self
        return replace(self, noise=self.noise * factor)

    def prepare(self, panel: Panel, clients: np.ndarray) -> Scan:
        rule = self
        if self.phi is None:
            phi = difference_autocorrelation(panel, clients, self.trim)
            # to 0.01: the templates and their calibration are computed once per value
            rule = replace(rule, phi=round(phi, 2) if math.isfinite(phi) else 0.0)
        if self.noise is None or self.prior_df is None:
            own, df, n = [], [], []
            for block in panel.blocks(clients):
                v, nu = rule._own(block)
                own.append(v)
                df.append(nu)
                n.append(block.n)
            v_all = np.concatenate(own) if own else np.zeros(0)
            df_all = np.concatenate(df) if df else np.zeros(0)
            # the prior from the clients with enough differences to estimate from, when there are enough of
            # them; else its SD is the pooled trimmed SD of every lag-1 difference (the logarithm of a
            # variance of a few differences rounded to whole points is too far from log chi-square)
            long = np.concatenate(n) - 1 >= TRIM_FROM if n else np.zeros(0, dtype=bool)
            if int(long.sum()) >= PRIOR_FROM:
                s0, d0 = variance_prior(v_all[long], df_all[long])
            else:
                _s, d0 = variance_prior(v_all, df_all)
                s0 = _pooled_difference_sd(panel, clients, float(self.trim))
            if self.prior_df is not None:  # a given weight: the prior SD alone is estimated
                d0 = float(self.prior_df)
            if not math.isfinite(s0):
                d0 = 0.0
            elif self.prior_df is None:
                d0 = float(f"{d0:.2g}")  # two digits: the calibration is simulated once per value
            rule = replace(rule, noise=s0 if self.noise is None else self.noise, prior_df=d0)
        if rule.fdr is not None and rule.fdr_cut is None:
            p = [rule._client_p(block) for block in panel.blocks(clients)]
            rule = replace(rule, fdr_cut=benjamini_hochberg(np.concatenate(p) if p else np.zeros(0), rule.fdr))
        return rule

    # -- noise --------------------------------------------------------------

    def _own(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """Each client's own variance of lag-1 differences (bias-corrected) and its effective df."""
        diffs = shift(block.x, 1) - block.x
        var = np.full(block.n.shape, np.nan)
        df = np.zeros(block.n.shape)
        phi = self._phi()
        for k in np.unique(block.n):
            if k < 3:
                continue
            at = block.n == k
            own, _nu, _loc = trimmed_scale(diffs[at], own_trim(int(k), float(self.trim)))
            own = np.where(own > block.resolution[at], own, np.where(np.isnan(own), np.nan, 0.0))
            f, nu = _own_noise_model(int(k), phi, float(self.trim))
            var[at] = own * own / f
            df[at] = nu
        return np.where(df > 0, var, np.nan), df

    def _phi(self) -> float:
        return 0.0 if self.phi is None else float(self.phi)

    def _levels(self) -> float:
        return float(self.fdr_cut) if self.fdr is not None and self.fdr_cut is not None else float(self.alpha)

    # -- labelling ----------------------------------------------------------

    def _client_p(self, block: Block) -> np.ndarray:
        """Each analysed client's p-value (NaN when not analysed), for the FDR cut-off."""
        return self._scan(block, episodes=False)[0]

    def label(self, block: Block) -> BlockResult:
        p, extra, eps = self._scan(block, episodes=True)
        return BlockResult(clients=block.clients, **eps, reason=extra.pop("reason"), client_extra=extra)

    def _prior(self) -> tuple[float, float]:
        """The prior innovation variance ``s0^2`` and its df ``d0`` (NaN, 0 without a prior)."""
        phi = self._phi()
        s0 = math.nan if self.noise is None else float(self.noise)
        d0 = 0.0 if self.prior_df is None or not math.isfinite(s0) else float(self.prior_df)
        return s0 * s0 * (1.0 + phi) / 2.0, d0

    def _scan(self, block: Block, episodes: bool):
        x, n = block.x, block.n
        m = x.shape[0]
        phi = self._phi()
        prior_ss, d0 = self._prior()
        level = self._levels()
        zmax = np.full(m, np.nan)
        crit = np.full(m, np.nan)
        pval = np.full(m, np.nan)
        noise = np.full(m, np.nan)
        dfs = np.full(m, np.nan)
        # a noise level needs 2 degrees of freedom, the client's residual ones or the prior's: without a
        # prior, 3 scores leave 1 (a V fitted to 50, 30, 50 leaves nothing, which is no evidence of no noise)
        own_df = n - np.where(n >= self.curve_from, 2, np.where(n >= self.trend_from, 1, 0)) - 2
        usable = (n >= 3) & (own_df + d0 >= 2)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "start", "stop", "shape", "width", "z", "p")}
        for k in np.unique(n[usable]):
            rows = np.flatnonzero(usable & (n == k))
            degree = self.degree(int(k))
            tpl = templates(int(k), phi, self.max_width, degree)
            if tpl.size == 0:
                continue
            table = np.asarray(calibration(int(k), phi, self.max_width, degree, d0 if d0 < 1e6 else math.inf))
            key = tuple(float(v) for v in table)
            nu = residual_df(int(k), degree)
            df = _df(int(k), degree, d0)
            c = _critical(float(df), key, level)
            step = max(1, _CELLS // tpl.size)
            for lo in range(0, rows.size, step):
                r = rows[lo : lo + step]
                xr = x[r, : int(k)]
                proj, rss = projections(xr, tpl)
                best, top_a, top = self._best(proj, rss, nu, block.resolution[r], xr, tpl, c)
                zmax[r], crit[r], dfs[r] = top, c, df
                pval[r] = _p_value(top, df, table)
                extra = d0 * prior_ss if d0 > 0 else 0.0
                with np.errstate(invalid="ignore", divide="ignore"):
                    var = (np.maximum(rss - np.maximum(top_a, 0.0) ** 2, 0.0) + extra) / (nu + d0)
                noise[r] = np.sqrt(var * 2.0 / (1.0 + phi))
                if episodes:
                    self._episodes(r, xr, proj, best, top_a, top, np.full(r.size, c), df, table, tpl,
                                   block.resolution[r], parts)
        reason = np.full(m, "", dtype=object)
        reason[~usable] = "too few scores to estimate the noise (fewer than 2 residual degrees of freedom) and no " \
            "other clients' noise to borrow"
        reason[n < 3] = "fewer than 3 observed scores"
        if not episodes:
            return pval, None, None
        if self.min_noise is not None:
            noise = np.fmax(noise, float(self.min_noise))
        columns = {"reason": reason, "noise": noise, "noise_df": dfs, "z": zmax, "p": pval, "threshold": crit}
        return pval, columns, self._episode_arrays(block, parts)

    def _best(self, proj: np.ndarray, rss: np.ndarray, nu: int, eps: np.ndarray, x: np.ndarray, tpl: Templates,
              c: float, blocked=None):
        """Each row's best template, its fitted drop ``a`` and its statistic (with the ``min_noise`` floor).

        The best template is the one with the largest ``a`` (the statistic
        grows with it). One that would flag the row (statistic ``>= c``) but
        whose lowest score is not below the mean of the up to 3 scores before
        it (beyond the resolution ``eps``) is no fall in the scores, only
        against the trend: it is passed over for the next best (a few times;
        then the row has none).
        """
        if blocked is not None:
            proj = np.where(blocked, -np.inf, proj)  # (else passed-over templates are marked in place)
        rows = np.arange(proj.shape[0])
        best = proj.argmax(axis=1)
        top_a = proj[rows, best]
        t = self._t(top_a, rss, nu, eps)
        for attempt in range(9):
            with np.errstate(invalid="ignore"):
                check = np.flatnonzero(t >= c)
            if check.size == 0:
                break
            bad = check[~_falls(x[check], tpl, best[check], eps[check])]
            if bad.size == 0:
                break
            proj[bad, best[bad]] = -np.inf
            if attempt == 8:  # give up: the row has no template that is a real fall and significant
                proj[bad] = -np.inf
            best[bad] = proj[bad].argmax(axis=1)
            top_a[bad] = proj[bad, best[bad]]
            t[bad] = self._t(top_a[bad], rss[bad], nu, eps[bad])
        return best, top_a, np.where(np.isfinite(top_a), t, -np.inf)

    def _t(self, a: np.ndarray, rss: np.ndarray, nu: int, eps: np.ndarray) -> np.ndarray:
        prior_ss, d0 = self._prior()
        t = moderated_t(a, rss, nu, prior_ss, d0, eps)
        if self.min_noise is not None:  # the noise at least the floor: t at most a / floor
            t = np.minimum(t, a / (float(self.min_noise) * math.sqrt((1.0 + self._phi()) / 2.0)))
        return t

    def _episodes(self, r, xr, proj, best, top_a, top, c, df, table, tpl: Templates, eps, parts) -> None:
        """Collect the significant non-overlapping templates of rows ``r`` (best first).

        After each episode its fitted drop is added back to the scores and
        the remaining templates are scored again (one residual df fewer), so
        that one episode's drop does not count as noise against the next.
        """
        prior_ss, d0 = self._prior()
        live = np.arange(r.size)
        blocked = np.zeros(proj.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            hit = top >= c
        removed = 0
        while True:
            live, best, top, top_a = live[hit], best[hit], top[hit], top_a[hit]
            if live.size == 0:
                return
            start, stop = tpl.start[best], tpl.stop[best]
            parts["row"].append(r[live])
            parts["start"].append(start)
            parts["stop"].append(stop)
            parts["shape"].append(tpl.shape[best])
            parts["width"].append(stop - start)
            parts["z"].append(top)
            parts["p"].append(_p_value(top, df, table))
            removed += 1
            nu = residual_df(tpl.k, tpl.degree) - removed
            if nu + (d0 if math.isfinite(prior_ss) else 0.0) <= 0:
                return
            # take the fitted drop out of the scores and score the other templates again
            xr[live] += (top_a / tpl.norm[best])[:, None] * patterns(tpl, best)
            blocked[live] |= ~((tpl.start[None, :] > stop[:, None]) | (tpl.stop[None, :] < start[:, None]))
            proj, rss = projections(xr[live], tpl)
            best, top_a, top = self._best(proj, rss, nu, eps[live], xr[live], tpl, float(c[0]), blocked[live])
            with np.errstate(invalid="ignore"):
                hit = np.isfinite(top) & (top >= c[live])

    def _episode_arrays(self, block: Block, parts) -> dict[str, Any]:
        x, n = block.x, block.n
        if not parts["row"]:
            zi = np.zeros(0, dtype=np.int64)
            zf = np.zeros(0)
            return dict(ep_row=zi, ep_start=zi, ep_trough=zi, ep_end=zi, ep_pre=zf,
                        ep_extra={"shape": np.asarray(SHAPES, dtype=object)[zi],
                                  "width": zi, "z": zf, "p": zf, "drop": zf})
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        order = np.lexsort((cat["start"], cat["row"]))
        cat = {k: v[order] for k, v in cat.items()}
        row, start, stop = cat["row"], cat["start"], cat["stop"]
        end = np.where(stop >= n[row], -1, stop)
        cols = np.arange(x.shape[1])[None, :]
        inside = (cols >= start[:, None]) & (cols < np.minimum(stop, n[row])[:, None])
        trough = np.where(inside, x[row], np.inf).argmin(axis=1)
        before = (cols < start[:, None]) & (cols >= (start - 3)[:, None])
        with np.errstate(invalid="ignore"):
            pre = np.where(before, x[row], 0.0).sum(axis=1) / before.sum(axis=1)
        drop = pre - x[row, trough]
        # a drop fitted as lasting to the end whose scores come back to the pre-rupture level later (a dip
        # longer than max_width) is repaired at the first such session after its trough
        eps = block.resolution[row]
        with np.errstate(invalid="ignore"):
            back = (end[:, None] < 0) & (cols > trough[:, None]) & (cols < n[row][:, None]) & (
                x[row] >= (pre - eps)[:, None])
        found = back.any(axis=1)
        end = np.where(found, back.argmax(axis=1), end)
        stop = np.where(found, end, stop)
        return dict(ep_row=row.astype(np.int64), ep_start=start.astype(np.int64), ep_trough=trough.astype(np.int64),
                    ep_end=end.astype(np.int64), ep_pre=pre,
                    ep_extra={"shape": np.asarray(SHAPES, dtype=object)[cat["shape"]],
                              "width": np.where(end >= 0, stop - start, n[row] - start).astype(np.int64),
                              "z": cat["z"], "p": cat["p"], "drop": drop})


def _falls(x: np.ndarray, tpl: Templates, idx: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Whether each row's template ``idx`` covers a real fall: its lowest score below the mean of the 3 before it."""
    j = np.arange(x.shape[1])[None, :]
    start, stop = tpl.start[idx][:, None], tpl.stop[idx][:, None]
    low = np.where((j >= start) & (j < stop), x, np.inf).min(axis=1)
    before = (j < start) & (j >= start - 3)
    pre = np.where(before, x, 0.0).sum(axis=1) / before.sum(axis=1)
    return pre - low > eps


def _pooled_difference_sd(panel: Panel, clients: np.ndarray, trim: float) -> float:
    """Trimmed SD of every analysed client's lag-1 differences, pooled (order-free; NaN without any)."""
    parts = []
    for block in panel.blocks(clients):
        d = shift(block.x, 1) - block.x
        parts.append(d[~np.isnan(d)])
    sd = pooled_trimmed_scale(np.concatenate(parts) if parts else np.zeros(0), trim)
    return sd if math.isfinite(sd) and sd > 0 else math.nan


def benjamini_hochberg(p: np.ndarray, q: float) -> float:
    """The p-value cut-off of the Benjamini-Hochberg procedure at level ``q`` (0 when nothing is rejected).

    The largest ``i q / N`` such that the ``i``-th smallest of the ``N``
    finite p-values is at most it. Depends only on the multiset of p-values.

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.001, 0.02, 0.03, 0.5]), 0.1)  # 3rd: 0.03 <= 3 x 0.1 / 4
    0.075
    """
    p = np.sort(p[np.isfinite(p)])
    n = p.size
    if n == 0:
        return 0.0
    line = np.arange(1, n + 1) * q / n
    ok = np.flatnonzero(p <= line)
    return float(line[ok[-1]]) if ok.size else 0.0
