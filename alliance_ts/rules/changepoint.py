"""Episodes read off an exact change-point segmentation (``rule="changepoint"``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..noise import aic_penalty, bic_penalty, difference_noise, moderated_sd, shift, trimmed_scale
from ..panel import Block, Panel
from ..params import integer, number, number_or_choice, seed
from ..sample import thin
from ..segment import PENALTIES, noise_sd, segment_block
from ._base import BlockResult, Rule, register_rule

__all__ = ["ChangePoint", "segment_episodes"]

#: Multiples of the BIC penalty searched by ``penalty="calibrated"``.
CALIBRATION_GRID = tuple(float(v) for v in np.geomspace(0.25, 32.0, 29))
#: Null clients simulated for the calibration (at most).
CALIBRATION_CLIENTS = 2000


def _centre(x: np.ndarray) -> np.ndarray:
    """Each row's first score (0 for an empty row): subtracted before cumulative sums.

    Cumulative sums of uncentred scores lose the digits that matter when the
    scores are large (adding 1e6 to every score would otherwise change the
    segmentation); centring on a score of the row itself keeps them.
    """
    first = x[:, 0] if x.shape[1] else np.zeros(x.shape[0])
    return np.where(np.isfinite(first), first, 0.0)


def segment_episodes(x, n, row, lo, hi, theta, tol, eps=None):
    """Episodes from segments: per row, a fall of the segment mean by ``theta`` or more.

    Returns ``(row, start, trough, end, pre)`` as :func:`scan_episodes` does.
    A rupture starts at the first score of a segment whose mean is at least
    ``theta`` below the previous segment's (``pre``); it is repaired at the
    first score of the first later segment whose mean is back to at least
    ``pre - tol * theta``; else unresolved. The trough is the first lowest
    score from the start to the score before the repair (or the last score).
    Mean differences within ``eps`` (per row) of a threshold reach it.
    """
    m = x.shape[0]
    order = np.lexsort((lo, row))
    row, lo, hi = row[order], lo[order], hi[order]
    x0 = np.where(np.isnan(x), 0.0, x - _centre(x)[:, None])
    csum = np.zeros((m, x.shape[1] + 1))
    np.cumsum(x0, axis=1, out=csum[:, 1:])
    mean = (csum[row, hi] - csum[row, lo]) / (hi - lo) + _centre(x)[row]
    if row.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, z, np.zeros(0)
    new = np.r_[True, row[1:] != row[:-1]]
    first = np.maximum.accumulate(np.where(new, np.arange(row.size), 0))
    k = np.arange(row.size) - first
    kmax = int(k.max()) + 1
    seg_mean = np.full((m, kmax), np.nan)
    seg_lo = np.zeros((m, kmax), dtype=np.int64)
    seg_mean[row, k] = mean
    seg_lo[row, k] = lo
    theta = np.broadcast_to(np.asarray(theta, dtype=float), (m,))
    eps = np.zeros(m) if eps is None else np.asarray(eps, dtype=float)
    in_ep = np.zeros(m, dtype=bool)
    ep_start = np.zeros(m, dtype=np.int64)
    ep_pre = np.zeros(m)
    out: tuple[list[np.ndarray], ...] = ([], [], [], [])
    with np.errstate(invalid="ignore"):
        for j in range(1, kmax):
            mu, prev = seg_mean[:, j], seg_mean[:, j - 1]
            back = in_ep & (mu >= ep_pre - tol * theta - eps)
            if back.any():
                idx = np.flatnonzero(back)
                for lst, val in zip(out, (idx, ep_start[idx], seg_lo[idx, j], ep_pre[idx])):
                    lst.append(val)
                in_ep &= ~back
            new_ep = ~in_ep & ~back & (prev - mu >= theta - eps)
            if new_ep.any():
                ep_start[new_ep] = seg_lo[new_ep, j]
                ep_pre[new_ep] = prev[new_ep]
                in_ep |= new_ep
    open_ = np.flatnonzero(in_ep)
    rows = np.concatenate(out[0] + [open_])
    starts = np.concatenate(out[1] + [ep_start[open_]])
    ends = np.concatenate(out[2] + [np.full(open_.size, -1, dtype=np.int64)])
    pres = np.concatenate(out[3] + [ep_pre[open_]])
    # trough: first lowest score in [start, end) or [start, n)
    cols = np.arange(x.shape[1])[None, :]
    stop = np.where(ends >= 0, ends, n[rows])
    window = (cols >= starts[:, None]) & (cols < stop[:, None])
    troughs = np.where(window, x[rows], np.inf).argmin(axis=1)
    return rows.astype(np.int64), starts, troughs.astype(np.int64), ends, pres


@register_rule(
    "changepoint",
    family="changepoint",
    summary=(
        "Exact penalised least-squares segmentation (BIC penalty); a fall of the segment mean by "
        "min_drop noise SDs is a rupture, a later segment back near the pre-rupture "
        "mean its repair. Penalty 'calibrated' bounds false episodes at fpr."
    ),
    reference="alliance_ts, on change-point methods reviewed by Truong, Oudre & Vayatis (2020)",
)
@dataclass(frozen=True)
class ChangePoint(Rule):
    r"""Ruptures and repairs from a change-point segmentation of each course.

    Parameters
    ----------
    penalty : float or {"bic", "aic", "calibrated"}, default "bic"
        Cost of one change point. A number is in units of the sum of squared
        errors. ``"bic"`` is ``penalty_scale * 2 * noise^2 * ln(n)``, ``"aic"``
        ``penalty_scale * 4 * noise^2``, with ``noise`` the client's noise SD
        (see Notes). ``"calibrated"`` is the BIC form with ``penalty_scale``
        chosen so that at most ``fpr`` of rupture-free trajectories like the
        data get a false episode (see Notes).
    min_size : int, default 1
        Fewest observed scores in a segment (1: a one-session dip can be a segment).
    min_drop : float, default 3.0
        Least fall of the segment mean, in noise SDs, that counts as a rupture.
    tol : float, default 0.5
        Return tolerance as a share of the fall threshold: a later segment is a
        repair when its mean is at least ``pre - tol * min_drop * noise``.
    fpr : float, default 0.05
        Target share of rupture-free clients with a false episode, for
        ``penalty="calibrated"``.
    penalty_scale : float or None, default None
        Multiplier of the named penalty; for ``"calibrated"`` estimated and
        reported in ``Detection.params`` (pass it back to reproduce a run).
    noise : float or None, default None
        Pooled noise SD in score units; None estimates it from all analysed
        clients (the trimmed SD of lag-1 differences over sqrt(2)).
    prior_df : float, default 32.0
        Weight of the pooled noise SD in each client's moderated noise SD, in
        degrees of freedom (see Notes).
    rng : int, default 0
        Seed of the calibration's simulated trajectories (the rule itself is
        deterministic).

    Notes
    -----
    Each client's noise SD is its own (the trimmed SD of its lag-1 differences
    over :math:`\sqrt 2`, with :math:`\nu` degrees of freedom) moderated
    towards the pooled ``noise`` as
    :math:`\sqrt{(\nu s^2 + \nu_0 s_0^2) / (\nu + \nu_0)}`, :math:`\nu_0` =
    ``prior_df`` (Smyth, 2004). Each client's observed scores (missed
    sessions left out) are segmented by the exact minimiser of cost + penalty
    x number of change points (:func:`alliance_ts.segment`, batch engine),
    computed on the scores minus the client's first score so that large
    scores lose no precision. With :math:`\theta` = ``min_drop`` times the
    client's noise SD: a segment whose mean is at least :math:`\theta`
    below the previous segment's mean (``pre``) starts a rupture at its first
    score; the first later segment whose mean is at least
    :math:`pre - tol\,\theta` is the repair, at its first score; otherwise the
    rupture is unresolved. The trough is the first lowest score of the
    episode. After a repair the search resumes.

    **Calibrated penalty.** For about 2,000 analysed clients (chosen by their
    data, never their ids: :func:`alliance_ts.sample.thin`), a rupture-free twin of the same sessions is simulated:
    the client's first score, the sample's typical change per session, and
    first-order autoregressive Gaussian noise with the client's noise SD and
    the sample's lag-1 autocorrelation (estimated from consecutive
    differences, as by the ``robust`` rule).
    ``penalty_scale`` is the smallest of 29 multipliers between 0.25 and 32
    (geometric grid) of the BIC penalty for which at most ``fpr`` of these
    trajectories get an episode. Cost: 29 batch segmentations of at most
    2,000 courses, about a second; the draw uses ``rng``, so a run is
    reproducible. No published rupture rule offers such a bound; the bound
    holds for trajectories like the simulated ones (Gaussian AR(1) noise
    around a straight line), not for every shape of course.

    **Provenance.** Segmenting alliance courses by change points, the episode
    logic on segment means and the calibration are this library's design;
    the exact segmentation is optimal partitioning (Jackson et al., 2005), the
    problem ruptures' Pelt solves (Truong, Oudre & Vayatis, 2020).
    """

    penalty: float | str = number_or_choice("bic", "cost of one change point: a number (sum of squared errors) "
                                            "or a named penalty", ("calibrated",) + PENALTIES, low=0)
    min_size: int = integer(1, "fewest observed scores in a segment", low=1)
    min_drop: float = number(3.0, "least fall of the segment mean, in noise SDs", low=0, low_open=True)
    tol: float = number(0.5, "return tolerance, as a share of the fall threshold", low=0, high=1, high_open=True)
    fpr: float = number(0.05, "target share of rupture-free clients with a false episode ('calibrated')",
                        low=0, high=1, low_open=True, high_open=True)
    penalty_scale: float | None = number(None, "multiplier of the named penalty (None: 1, or calibrated)", low=0,
                                         low_open=True, allow_none=True, allow_nan=True)
    noise: float | None = number(None, "pooled noise SD in score units, a number (None: estimated from the "
                                 "analysed clients)", low=0, allow_none=True, allow_nan=True)
    prior_df: float = number(32.0, "weight of the pooled noise SD in each client's, in degrees of freedom", low=0)
    rng: int = seed(0, "seed of the calibration's simulated trajectories")

    strictness = "min_drop"
    detects = ("v", "sustained")
    sample_dependent = ("noise", "penalty_scale")
    trusted_output = True
    client_columns = {"noise": "float64", "n_segments": "int64", "threshold": "float64"}

    @property
    def invariances(self) -> tuple[str, ...]:  # type: ignore[override]
        """Translation always; scaling unless the penalty is a fixed number."""
        return ("translation",) if not isinstance(self.penalty, str) else ("translation", "scaling")

    def rescaled(self, factor: float) -> ChangePoint:
        if self.noise is None:
            return self
        return replace(self, noise=self.noise * factor)

    def needs_sample(self) -> bool:
        """The pooled noise is estimated unless given, the penalty scale only when calibrated."""
        return self.noise is None or (self.penalty == "calibrated" and self.penalty_scale is None)

    def prepare(self, panel: Panel, clients: np.ndarray) -> ChangePoint:
        rule = self
        if rule.noise is None:
            rule = replace(rule, noise=noise_sd(panel, clients))
        if rule.penalty == "calibrated" and rule.penalty_scale is None:
            rule = replace(rule, penalty_scale=rule._calibrate(panel, clients))
        return rule

    def _client_noise(self, x: np.ndarray, eps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each client's noise SD (own estimate moderated by the pooled one) and trend.

        Own estimate: the trimmed SD of the client's lag-1 differences over
        sqrt(2), with ``nu`` degrees of freedom (0 when within the resolution
        ``eps``); combined with the pooled SD by :func:`alliance_ts.noise.moderated_sd`.
        Trend: the trimmed mean of the client's change from one observed
        session to the next.
        """
        own, df, mean_diff = trimmed_scale(x - shift(x, 1))
        own = own / math.sqrt(2.0)
        if eps is not None:
            own = np.where(own > eps, own, np.where(np.isnan(own), np.nan, 0.0))
        pooled = float(self.noise) if self.noise is not None else math.nan
        sigma, _ = moderated_sd(own, df, pooled, self.prior_df)
        return sigma, np.where(np.isfinite(mean_diff), mean_diff, 0.0)

    def _pen(self, n: np.ndarray, sigma: np.ndarray, scale: float | None = None) -> np.ndarray:
        if scale is None:
            scale = 1.0 if self.penalty_scale is None else float(self.penalty_scale)
        n = np.asarray(n, dtype=float)
        if not isinstance(self.penalty, str):
            return np.full(n.shape, float(self.penalty))
        if self.penalty == "aic":
            return scale * aic_penalty(sigma, n)
        return scale * bic_penalty(sigma, n)

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m = x.shape[0]
        eps = block.resolution
        sigma, _ = self._client_noise(x, eps)
        usable = np.isfinite(sigma) & (sigma > eps)
        pen = np.where(usable, self._pen(n, sigma), 0.0)
        row, lo, hi = segment_block(x - _centre(x)[:, None], n, pen, int(self.min_size))
        theta = np.where(usable, self.min_drop * sigma, np.inf)
        scanned = segment_episodes(x, n, row, lo, hi, theta, self.tol, eps)
        reason = np.full(m, "", dtype=object)
        reason[~usable] = "noise SD is 0 or undefined: the thresholds are in noise SDs"
        return BlockResult.from_scan(
            block,
            scanned,
            reason=reason,
            client_extra={
                "noise": np.where(usable, sigma, np.nan),
                "n_segments": np.bincount(row, minlength=m).astype(np.int64),
                "threshold": np.where(usable, theta, np.nan),
            },
        )

    def _calibrate(self, panel: Panel, clients: np.ndarray) -> float:
        """The smallest BIC multiplier with at most ``fpr`` false episodes on null trajectories."""
        sigma = float(self.noise) if self.noise is not None else math.nan
        if not (math.isfinite(sigma) and sigma > 0) or clients.size == 0:
            return math.nan
        # about CALIBRATION_CLIENTS clients, chosen and ordered by their data
        # (the same in every execution path, whatever the ids)
        clients = thin(panel, clients, CALIBRATION_CLIENTS)
        _, phi = difference_noise(panel, clients)
        phi = 0.0 if not math.isfinite(phi) else phi
        # the typical change per session over clients (a client's own trend
        # would carry its ruptures into its rupture-free twin)
        trends = [self._client_noise(block.x, block.resolution)[1] for block in panel.blocks(clients)]
        typical = float(np.median(np.concatenate(trends))) if trends else 0.0
        # one row of random numbers per client, in key order: the draws do not
        # depend on how the clients are split into blocks, nor on their ids
        gen = np.random.default_rng(int(self.rng))
        width = int(panel.n_obs[clients].max())
        draws = gen.normal(size=(clients.size, width))
        rank = {int(c): i for i, c in enumerate(clients)}
        nulls = []
        for block in panel.blocks(clients):
            x, n = block.x, block.n
            m, length = x.shape
            sig, _ = self._client_noise(x, block.resolution)
            sig = np.where(np.isfinite(sig) & (sig > block.resolution), sig, sigma)
            line = x[:, :1] + typical * np.arange(length)[None, :]
            z = draws[[rank[int(c)] for c in block.clients], :length]
            e = np.empty((m, length))
            e[:, 0] = z[:, 0]
            for j in range(1, length):
                e[:, j] = phi * e[:, j - 1] + math.sqrt(1 - phi * phi) * z[:, j]
            nulls.append((np.where(block.valid, line + sig[:, None] * e, np.nan), n, sig))
        shares = []
        for scale in CALIBRATION_GRID:
            flagged = total = 0
            for xs, n, sig in nulls:
                pen = self._pen(n, sig, scale)
                row, lo, hi = segment_block(xs - _centre(xs)[:, None], n, pen, int(self.min_size))
                ep_rows = segment_episodes(xs, n, row, lo, hi, self.min_drop * sig, self.tol)[0]
                flagged += np.unique(ep_rows).size
                total += xs.shape[0]
            shares.append(flagged / total)
        # the smallest multiplier from which on every larger one keeps the share <= fpr
        ok = np.array(shares) <= self.fpr
        for i in range(len(ok)):
            if ok[i:].all():
                return float(CALIBRATION_GRID[i])
        return float(CALIBRATION_GRID[-1])
