"""Episodes read off an exact change-point segmentation (``rule="changepoint"``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import Problem
from ..panel import Block, Panel
from ..segment import PENALTIES, noise_sd, segment_block
from ._base import BlockResult, Rule, check_choice, check_number, register_rule

__all__ = ["ChangePoint", "segment_episodes"]

#: Multiples of the BIC penalty searched by ``penalty="calibrated"``.
CALIBRATION_GRID = tuple(float(v) for v in np.geomspace(0.25, 32.0, 29))
#: Null clients simulated for the calibration (at most).
CALIBRATION_CLIENTS = 2000


def segment_episodes(x, n, row, lo, hi, theta, tol):
    """Episodes from segments: per row, a fall of the segment mean by ``theta`` or more.

    Returns ``(row, start, trough, end, pre)`` as :func:`scan_episodes` does.
    A rupture starts at the first score of a segment whose mean is at least
    ``theta`` below the previous segment's (``pre``); it is repaired at the
    first score of the first later segment whose mean is back to at least
    ``pre - tol * theta``; else unresolved. The trough is the first lowest
    score from the start to the score before the repair (or the last score).
    """
    m = x.shape[0]
    order = np.lexsort((lo, row))
    row, lo, hi = row[order], lo[order], hi[order]
    x0 = np.where(np.isnan(x), 0.0, x)
    csum = np.zeros((m, x.shape[1] + 1))
    np.cumsum(x0, axis=1, out=csum[:, 1:])
    mean = (csum[row, hi] - csum[row, lo]) / (hi - lo)
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
    in_ep = np.zeros(m, dtype=bool)
    ep_start = np.zeros(m, dtype=np.int64)
    ep_pre = np.zeros(m)
    out = [], [], [], []
    with np.errstate(invalid="ignore"):
        for j in range(1, kmax):
            mu, prev = seg_mean[:, j], seg_mean[:, j - 1]
            back = in_ep & (mu >= ep_pre - tol * theta)
            if back.any():
                idx = np.flatnonzero(back)
                for lst, val in zip(out, (idx, ep_start[idx], seg_lo[idx, j], ep_pre[idx])):
                    lst.append(val)
                in_ep &= ~back
            new_ep = ~in_ep & ~back & (prev - mu >= theta)
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
        "Exact penalised least-squares segmentation; a fall of the segment mean by "
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
    penalty : float or {"calibrated", "bic", "aic"}, default "calibrated"
        Cost of one change point. A number is in units of the sum of squared
        errors. ``"bic"`` is ``penalty_scale * 2 * noise^2 * ln(n)``, ``"aic"``
        ``penalty_scale * 4 * noise^2``. ``"calibrated"`` is the BIC form with
        ``penalty_scale`` chosen so that at most ``fpr`` of rupture-free
        trajectories like the data get a false episode (see Notes).
    min_size : int, default 1
        Fewest observed scores in a segment (1: a one-session dip can be a segment).
    min_drop : float, default 2.0
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
        Noise SD in score units; None estimates it from all analysed clients
        (the trimmed SD of lag-1 differences over sqrt(2)).
    rng : int, default 0
        Seed of the calibration's simulated trajectories (the rule itself is
        deterministic).

    Notes
    -----
    Each client's observed scores (missed sessions left out) are segmented by
    the exact minimiser of cost + penalty x number of change points
    (:func:`alliance_ts.segment`, batch engine). With :math:`\theta` =
    ``min_drop * noise``: a segment whose mean is at least :math:`\theta`
    below the previous segment's mean (``pre``) starts a rupture at its first
    score; the first later segment whose mean is at least
    :math:`pre - tol\,\theta` is the repair, at its first score; otherwise the
    rupture is unresolved. The trough is the first lowest score of the
    episode. After a repair the search resumes.

    **Calibrated penalty.** For about 2,000 analysed clients (selected by a
    hash of their ids), a rupture-free twin of the same sessions is simulated:
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

    penalty: float | str = "bic"
    min_size: int = 1
    min_drop: float = 3.0
    tol: float = 0.5
    fpr: float = 0.05
    penalty_scale: float | None = None
    noise: float | None = None
    prior_df: float = 32.0
    rng: int = 0

    strictness = "min_drop"
    detects = ("v", "sustained")
    sample_dependent = ("noise", "penalty_scale")
    trusted_output = True
    client_columns = {"noise": "float64", "n_segments": "int64", "threshold": "float64"}

    @property
    def invariances(self) -> tuple[str, ...]:  # type: ignore[override]
        """Translation always; scaling unless the penalty is a fixed number."""
        return ("translation",) if not isinstance(self.penalty, str) else ("translation", "scaling")

    def check(self) -> list[Problem]:
        problems: list[Problem] = []
        if isinstance(self.penalty, str):
            check_choice(problems, "penalty", self.penalty, ("calibrated",) + PENALTIES)
        else:
            check_number(problems, "penalty", self.penalty, low=0)
        check_number(problems, "min_size", self.min_size, low=1, integer=True)
        check_number(problems, "min_drop", self.min_drop, low=0, low_open=True)
        check_number(problems, "tol", self.tol, low=0, high=1, high_open=True)
        check_number(problems, "fpr", self.fpr, low=0, high=1, low_open=True, high_open=True)
        # NaN (or a noise SD of 0) is what an estimate from data without variation reports
        if not (isinstance(self.penalty_scale, float) and math.isnan(self.penalty_scale)):
            check_number(problems, "penalty_scale", self.penalty_scale, low=0, low_open=True, allow_none=True)
        if not (isinstance(self.noise, float) and math.isnan(self.noise)):
            check_number(problems, "noise", self.noise, low=0, allow_none=True)
        check_number(problems, "prior_df", self.prior_df, low=0)
        check_number(problems, "rng", self.rng, low=0, integer=True)
        return problems

    def rescaled(self, factor: float) -> ChangePoint:
        if self.noise is None:
            return self
        return replace(self, noise=self.noise * factor)

    def prepare(self, panel: Panel, clients: np.ndarray) -> ChangePoint:
        rule = self
        if rule.noise is None:
            rule = replace(rule, noise=noise_sd(panel, clients))
        if rule.penalty == "calibrated" and rule.penalty_scale is None:
            rule = replace(rule, penalty_scale=rule._calibrate(panel, clients))
        return rule

    def _client_noise(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each client's noise SD (own estimate moderated by the pooled one) and trend.

        Own estimate: the trimmed SD of the client's lag-1 differences over
        sqrt(2), with ``nu`` degrees of freedom; combined with the pooled SD
        as ``sqrt((nu s^2 + prior_df s0^2) / (nu + prior_df))``. Trend: the
        trimmed mean of the client's change from one observed session to the
        next.
        """
        from .robust import _shift, trimmed_scale

        own, df, mean_diff = trimmed_scale(x - _shift(x, 1))
        own = own / math.sqrt(2.0)
        pooled = float(self.noise) if self.noise is not None else math.nan
        nu = df.astype(float)
        own0 = np.where(np.isfinite(own), own, 0.0)
        if math.isfinite(pooled):
            sigma = np.sqrt((nu * own0**2 + self.prior_df * pooled**2) / (nu + self.prior_df))
        else:
            sigma = np.where(nu > 0, own0, np.nan)
        return sigma, np.where(np.isfinite(mean_diff), mean_diff, 0.0)

    def _pen(self, n: np.ndarray, sigma: np.ndarray, scale: float | None = None) -> np.ndarray:
        if scale is None:
            scale = 1.0 if self.penalty_scale is None else float(self.penalty_scale)
        n = np.asarray(n, dtype=float)
        if not isinstance(self.penalty, str):
            return np.full(n.shape, float(self.penalty))
        if self.penalty == "aic":
            return scale * 4.0 * sigma**2
        return scale * 2.0 * sigma**2 * np.log(np.maximum(n, 2.0))

    def label(self, block: Block) -> BlockResult:
        x, n = block.x, block.n
        m = x.shape[0]
        sigma, _ = self._client_noise(x)
        usable = np.isfinite(sigma) & (sigma > 0)
        pen = np.where(usable, self._pen(n, sigma), 0.0)
        row, lo, hi = segment_block(x, n, pen, int(self.min_size))
        theta = np.where(usable, self.min_drop * sigma, np.inf)
        scanned = segment_episodes(x, n, row, lo, hi, theta, self.tol)
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
        from ..panel import client_hashes, select_by_hash, sample_step
        from .robust import difference_noise

        sigma = float(self.noise) if self.noise is not None else math.nan
        if not (math.isfinite(sigma) and sigma > 0) or clients.size == 0:
            return math.nan
        # about CALIBRATION_CLIENTS clients, chosen by a hash of their ids (the
        # same choice in every execution path), in id order
        clients = np.sort(clients)
        step = sample_step(clients.size, CALIBRATION_CLIENTS)
        clients = clients[select_by_hash(client_hashes(panel.client_ids[clients]), step)]
        _, phi = difference_noise(panel, clients)
        phi = 0.0 if not math.isfinite(phi) else phi
        # the typical change per session over clients (a client's own trend
        # would carry its ruptures into its rupture-free twin)
        trends = [self._client_noise(block.x)[1] for block in panel.blocks(clients)]
        typical = float(np.median(np.concatenate(trends))) if trends else 0.0
        # one row of random numbers per client, in id order: the draws do not
        # depend on how the clients are split into blocks
        gen = np.random.default_rng(int(self.rng))
        width = int(panel.n_obs[clients].max())
        draws = gen.normal(size=(clients.size, width))
        rank = {int(c): i for i, c in enumerate(clients)}
        nulls = []
        for block in panel.blocks(clients):
            x, n = block.x, block.n
            m, length = x.shape
            sig, _ = self._client_noise(x)
            sig = np.where(np.isfinite(sig) & (sig > 0), sig, sigma)
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
                row, lo, hi = segment_block(xs, n, pen, int(self.min_size))
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
