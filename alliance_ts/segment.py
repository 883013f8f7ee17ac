"""Change-point segmentation of alliance courses into constant-mean stretches.

:func:`segment` splits each client's observed scores into segments by
penalised least squares (or any ruptures algorithm and cost). Two engines:

- ``"batch"``: the exact minimiser of *cost of segments + penalty x number of
  change points* for the ``l2`` cost, computed for many clients at once in
  vectorised numpy (optimal partitioning, Jackson et al. 2005), with memory
  bounded by processing clients in blocks. Exact also where ruptures' Pelt is
  not (``min_size >= 2``).
- ``"ruptures"``: one ruptures model per client, with guard-rails for what
  ruptures 1.1.10 gets wrong on short series: ``jump=1``, missed sessions
  removed before ruptures sees them, feasibility checked first, readable
  errors naming the client, plain ints.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem, RuleError
from .noise import aic_penalty, bic_penalty, difference_noise
from .panel import Block, Panel
from .sample import choose
from .validation import check_choice, check_number, plain, read_panel

__all__ = ["ALGORITHMS", "MODELS", "PENALTIES", "noise_sd", "penalty_values", "segment", "segment_block"]

ALGORITHMS = ("pelt", "binseg", "bottomup", "window", "dynp")
MODELS = ("l2", "l1", "normal", "rbf")
PENALTIES = ("bic", "aic")

JACKSON_2005 = (
    "Jackson, B., Scargle, J. D., Barnes, D., Arabhi, S., Alt, A., Gioumousis, P., Gwin, E., "
    "Sangtrakulcharoen, P., Tan, L., & Tsai, T. T. (2005). An algorithm for optimal "
    "partitioning of data on an interval. IEEE Signal Processing Letters, 12(2), 105-108."
)
TRUONG_2020 = (
    "Truong, C., Oudre, L., & Vayatis, N. (2020). Selective review of offline change point "
    "detection methods. Signal Processing, 167, 107299."
)


def noise_sd(panel: Panel, clients: np.ndarray) -> float:
    """Pooled noise SD: the trimmed SD of lag-1 differences over sqrt(2).

    Differences of independent noise have twice its variance; a rupture or a
    shift spoils one or two differences, which the trimming (20% at each end)
    removes. NaN without any difference.
    """
    sd, _ = difference_noise(panel, clients)
    return sd / math.sqrt(2.0)


def penalty_values(penalty: Any, n: np.ndarray, sigma: float, model: str = "l2") -> np.ndarray:
    """Per-client penalty (cost units per change point) for ``n`` observed scores.

    - a number: used as is (for ``l2``, in units of the sum of squared errors,
      the meaning of ruptures' ``pen``);
    - ``"bic"``: ``2 * sigma^2 * ln(n)`` for ``l2`` (Schwarz criterion of a
      Gaussian mean-shift model with known noise SD ``sigma``: each change
      point adds two parameters, its location and the new mean);
      ``3 * ln(n)`` for ``normal`` (location, mean and variance; the ``normal``
      cost is a log-likelihood);
    - ``"aic"``: ``4 * sigma^2`` for ``l2``; ``6`` for ``normal``.
    """
    n = np.asarray(n, dtype=float)
    if not isinstance(penalty, str):
        return np.full(n.shape, float(penalty))
    log_n = np.log(np.maximum(n, 2.0))
    if model == "l2":
        return bic_penalty(sigma, n) if penalty == "bic" else aic_penalty(sigma, n)
    return 3.0 * log_n if penalty == "bic" else np.full(n.shape, 6.0)


def segment(
    data: Any,
    *,
    penalty: float | str = "bic",
    model: str = "l2",
    min_size: int = 1,
    engine: str = "auto",
    algorithm: str = "pelt",
    width: int | None = None,
    noise: float | None = None,
    client: str = "client",
    session: str = "session",
    score: str = "score",
    scale: Any = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Split every client's course into constant-mean segments.

    Parameters
    ----------
    data
        As for :func:`alliance_ts.detect` (long table, or one client's scores).
    penalty : float or {"bic", "aic"}, default "bic"
        Cost of one change point. A number is in the cost's own units (for
        ``l2`` the sum of squared errors, like ruptures' ``pen``); a name is
        scaled by the noise SD (see :func:`penalty_values` and Notes).
    model : {"l2", "l1", "normal", "rbf"}, default "l2"
        ruptures cost model. Named penalties need ``l2`` or ``normal``.
    min_size : int, default 1
        Fewest observed scores in a segment (1 lets a one-session dip be a
        segment).
    engine : {"auto", "batch", "ruptures"}, default "auto"
        ``"auto"`` uses the exact batch engine for ``l2`` with ``pelt`` (or
        ``dynp``, which is exact too), ruptures otherwise.
    algorithm : {"pelt", "binseg", "bottomup", "window", "dynp"}, default "pelt"
        The ruptures search method (``engine="ruptures"``).
    width : int, optional
        Window width for ``algorithm="window"`` (default: ``2 * max(min_size,
        2)``, instead of ruptures' 100, which finds nothing in short courses).
    noise : float, optional
        Noise SD for named penalties. Default: estimated from all clients (the
        trimmed SD of lag-1 differences over sqrt(2); see :func:`noise_sd`).
    client, session, score, scale
        As for :func:`alliance_ts.detect`.
    n_jobs : int, default 1
        Processes for the ruptures engine (one ruptures model per client is
        slow: about 2 ms for 20 sessions); ``-1`` uses every core. The batch
        engine is vectorised and ignores it. Results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per segment, sorted by client and segment: ``client``,
        ``segment`` (1, 2, ...), ``start`` and ``end`` (first and last session
        number of the segment, inclusive), ``n`` (observed scores in it) and
        ``mean``. Clients without any score have no row. A client with fewer
        than ``min_size`` scores is one segment.

    Notes
    -----
    Missed sessions (absent rows or missing scores) are left out before the
    segmentation, so a segment may span a gap in session numbers.

    The batch engine minimises :math:`\\sum_k C(\\text{segment}_k) + \\beta K`
    exactly, with :math:`C` the sum of squared deviations from the segment
    mean, :math:`K` the number of change points, every segment at least
    ``min_size`` long, by dynamic programming over the end of the last
    segment, vectorised over clients (:math:`O(L^2)` array operations for
    courses of :math:`L` scores). Where several segmentations have the same
    cost (to a relative 1e-10), it takes the one whose last change point is
    earliest, as ruptures' Pelt does in exact arithmetic.

    References
    ----------
    .. [1] Jackson et al. (2005), see ``JACKSON_2005``.
    .. [2] Truong, Oudre & Vayatis (2020), see ``TRUONG_2020``.

    Examples
    --------
    >>> import alliance_ts as at
    >>> at.segment([5.0, 5.1, 4.9, 3.0, 3.1, 2.9, 5.0, 5.1], penalty=1.0)
       client  segment  start  end  n  mean
    0       0        1      1    3  3  5.00
    1       0        2      4    6  3  3.00
    2       0        3      7    8  2  5.05
    """
    problems: list[Problem] = []
    check_choice(problems, "model", model, MODELS)
    check_choice(problems, "engine", engine, ("auto", "batch", "ruptures"))
    check_choice(problems, "algorithm", algorithm, ALGORITHMS)
    check_number(problems, "min_size", min_size, low=1, integer=True)
    check_number(problems, "width", width, low=2, integer=True, allow_none=True)
    check_number(problems, "noise", noise, low=0, low_open=True, allow_none=True)
    if not (isinstance(n_jobs, int) and (n_jobs >= 1 or n_jobs == -1)):
        problems.append(Problem("parameter 'n_jobs'", f"must be a positive whole number or -1, got {n_jobs!r}"))
    if isinstance(penalty, str):
        check_choice(problems, "penalty", penalty, PENALTIES)
        if model not in ("l2", "normal"):
            problems.append(Problem("parameter 'penalty'",
                                    f"named penalties need model 'l2' or 'normal'; give a number for {model!r}"))
    else:
        check_number(problems, "penalty", penalty, low=0)
    if engine == "batch" and (model != "l2" or algorithm not in ("pelt", "dynp")):
        problems.append(Problem("parameter 'engine'",
                                "the batch engine is the exact l2 optimum: use model='l2' (and algorithm 'pelt' "
                                "or 'dynp')"))
    panel, data_problems = read_panel(data, client=client, session=session, score=score, scale=scale)
    problems += data_problems
    if problems:
        raise InvalidInputError(problems, "alliance_ts.segment()")
    if panel is None:  # pragma: no cover - problems were raised above
        raise RuntimeError("validation returned no panel without reporting a problem")

    clients = np.flatnonzero(panel.n_obs > 0)
    sigma = (
        float(noise)
        if noise is not None
        else (noise_sd(panel, choose(panel, clients)) if isinstance(penalty, str) and model == "l2" else math.nan)
    )
    if isinstance(penalty, str) and model == "l2" and not (math.isfinite(sigma) and sigma > 0):
        raise InvalidInputError(
            [Problem("parameter 'penalty'",
                     "cannot estimate a noise SD for the named penalty (no varying scores); pass noise= or a "
                     "numeric penalty")],
            "alliance_ts.segment()",
        )
    use_batch = engine == "batch" or (engine == "auto" and model == "l2" and algorithm in ("pelt", "dynp"))
    rows = []
    for block in panel.blocks(clients):
        pen = penalty_values(penalty, block.n, sigma, model)
        if use_batch:
            bounds = segment_block(block.x, block.n, pen, int(min_size))
        else:
            bounds = _segment_ruptures(panel, block, pen, model, int(min_size), algorithm, width, n_jobs)
        rows.append(_segment_rows(block, bounds))
    if rows:
        codes, seg, first, last, count, mean = (np.concatenate(parts) for parts in zip(*rows))
    else:
        codes = seg = first = last = count = np.zeros(0, dtype=np.int64)
        mean = np.zeros(0)
    order = np.lexsort((seg, codes))
    return pd.DataFrame(
        {
            "client": panel.client_ids.take(codes[order]),
            "segment": seg[order],
            "start": first[order],
            "end": last[order],
            "n": count[order],
            "mean": mean[order],
        }
    )


def _segment_rows(block: Block, bounds: list[np.ndarray]):
    """(codes, segment number, first session, last session, n, mean) of block segments.

    ``bounds`` is ``(row, start_pos, stop_pos)`` arrays (stop exclusive).
    """
    row, lo, hi = bounds
    x0 = np.where(np.isnan(block.x), 0.0, block.x)
    csum = np.zeros((x0.shape[0], x0.shape[1] + 1))
    np.cumsum(x0, axis=1, out=csum[:, 1:])
    mean = (csum[row, hi] - csum[row, lo]) / (hi - lo)
    order = np.lexsort((lo, row))
    row, lo, hi, mean = row[order], lo[order], hi[order], mean[order]
    new = np.r_[True, row[1:] != row[:-1]] if row.size else np.zeros(0, dtype=bool)
    first_idx = np.maximum.accumulate(np.where(new, np.arange(row.size), 0)) if row.size else row
    seg = np.arange(row.size) - first_idx + 1
    return (
        block.clients[row],
        seg.astype(np.int64),
        block.s[row, lo].astype(np.int64),
        block.s[row, hi - 1].astype(np.int64),
        (hi - lo).astype(np.int64),
        mean,
    )


def segment_block(x: np.ndarray, n: np.ndarray, pen: np.ndarray, min_size: int):
    """Exact penalised least-squares segmentation of every row of a block.

    Parameters
    ----------
    x : ndarray (m, L)
        Scores, NaN after each row's ``n`` observed ones.
    n : ndarray (m,)
    pen : ndarray (m,)
        Penalty per change point, per row.
    min_size : int

    Returns
    -------
    row, start, stop : ndarray
        One entry per segment (positions; ``stop`` exclusive).

    Notes
    -----
    ``F[t] = min_s F[s] + C(s, t) + pen`` over ``s = 0`` or
    ``min_size <= s <= t - min_size``, with ``C`` from cumulative sums;
    a row with fewer than ``min_size`` scores is one segment. Ties (relative
    1e-10) go to the smallest ``s``.
    """
    m, length = x.shape
    x0 = np.where(np.isnan(x), 0.0, x)
    s1 = np.zeros((m, length + 1))
    s2 = np.zeros((m, length + 1))
    np.cumsum(x0, axis=1, out=s1[:, 1:])
    np.cumsum(x0 * x0, axis=1, out=s2[:, 1:])
    F = np.full((m, length + 1), np.inf)
    F[:, 0] = 0.0
    last = np.zeros((m, length + 1), dtype=np.int64)
    rows = np.arange(m)
    scale = np.maximum(s2[rows, n], 1.0)
    pen = np.asarray(pen, dtype=float)
    for t in range(min_size, length + 1):
        cand = np.arange(0, t - min_size + 1)
        cand = cand[(cand == 0) | (cand >= min_size)]
        seg_len = (t - cand)[None, :]
        d1 = s1[:, t][:, None] - s1[:, cand]
        cost = (s2[:, t][:, None] - s2[:, cand]) - d1 * d1 / seg_len
        np.maximum(cost, 0.0, out=cost)  # rounding can make a zero cost slightly negative
        total = F[:, cand] + cost + pen[:, None]
        best = total.min(axis=1)
        tie = total <= (best + 1e-10 * (np.abs(best) + scale))[:, None]
        k = tie.argmax(axis=1)
        F[:, t] = best
        last[:, t] = cand[k]
    # backtrack from each row's end (rows shorter than min_size: one segment)
    out_row, out_lo, out_hi = [], [], []
    cur = n.astype(np.int64).copy()
    short = cur < min_size
    live = cur > 0
    if short.any():
        idx = np.flatnonzero(short & live)
        out_row.append(idx)
        out_lo.append(np.zeros(idx.size, dtype=np.int64))
        out_hi.append(cur[idx])
        live &= ~short
    while live.any():
        idx = np.flatnonzero(live)
        prev = last[idx, cur[idx]]
        out_row.append(idx)
        out_lo.append(prev)
        out_hi.append(cur[idx])
        cur[idx] = prev
        live = cur > 0
    if not out_row:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    return np.concatenate(out_row), np.concatenate(out_lo), np.concatenate(out_hi)


def _segment_ruptures(panel, block, pen, model, min_size, algorithm, width, n_jobs=1):
    """One ruptures model per client, with the guard-rails (see the module docstring)."""
    ids = [plain(panel.client_ids[c]) for c in block.clients]
    jobs = [(block.x[i, : int(block.n[i])], float(pen[i]), ids[i]) for i in range(block.x.shape[0])]
    settings = (model, min_size, algorithm, width)
    if n_jobs == 1 or len(jobs) < 2:
        found = [_ruptures_one(job, settings) for job in jobs]
    else:
        import os
        from concurrent.futures import ProcessPoolExecutor

        workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
        with ProcessPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(_ruptures_one, jobs, [settings] * len(jobs),
                                  chunksize=max(1, len(jobs) // (4 * workers))))
    out_row, out_lo, out_hi = [], [], []
    for i, bkps in enumerate(found):
        lo = 0
        for b in bkps:
            out_row.append(i)
            out_lo.append(lo)
            out_hi.append(b)
            lo = b
    as_int = lambda v: np.asarray(v, dtype=np.int64)
    return as_int(out_row), as_int(out_lo), as_int(out_hi)


def _ruptures_one(job, settings) -> list[int]:
    """Breakpoints (plain ints) of one client's scores; top level so processes can run it."""
    import ruptures as rpt

    x, pen, cid = job
    model, min_size, algorithm, width = settings
    n = x.size
    if n == 0:
        return []
    size = max(min_size, 2 if model == "normal" else 1)
    if n < 2 * size:
        return [n]  # no change point fits: one segment
    try:
        bkps = _run_ruptures(rpt, np.asarray(x, dtype=float).reshape(-1, 1), pen, model, size, algorithm, width)
    except Exception as err:  # ruptures raises several errors without a message
        raise RuleError(
            f"ruptures {algorithm!r} with model {model!r} failed for client {cid} "
            f"({n} scores, min_size={size}): {type(err).__name__}: {err or 'no message'}"
        ) from None
    return [int(v) for v in bkps]


def _run_ruptures(rpt, signal, pen, model, size, algorithm, width):
    n = signal.shape[0]
    if algorithm == "pelt":
        return rpt.Pelt(model=model, min_size=size, jump=1).fit(signal).predict(pen=pen)
    if algorithm == "binseg":
        return rpt.Binseg(model=model, min_size=size, jump=1).fit(signal).predict(pen=pen)
    if algorithm == "bottomup":
        return rpt.BottomUp(model=model, min_size=size, jump=1).fit(signal).predict(pen=pen)
    if algorithm == "window":
        w = width if width is not None else 2 * max(size, 2)
        if n < w:
            return [n]
        return rpt.Window(width=w, model=model, min_size=size, jump=1).fit(signal).predict(pen=pen)
    # dynp has no penalty: take the number of change points that minimises cost + pen * k
    algo = rpt.Dynp(model=model, min_size=size, jump=1).fit(signal)
    best, best_bkps = math.inf, [n]
    for k in range(n // size):
        try:
            bkps = algo.predict(n_bkps=k) if k else [n]
        except Exception:  # more change points than fit
            break
        total = algo.cost.sum_of_costs(bkps) + pen * k
        better = not math.isfinite(best) or total < best - 1e-10 * (abs(best) + 1.0)
        if better:  # ties keep the fewer change points
            best, best_bkps = total, bkps
    return best_bkps
