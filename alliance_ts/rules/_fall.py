"""Geometry of a fall in a block of scores, shared by the threshold rules.

For every position ``j`` of every client: how many sessions the
uninterrupted (non-increasing) fall into ``j`` spans, capped at
``max_decline``, the score at its top, and the first session of the fall
that lies below a given return level. Rises no larger than the block's
resolution (``eps``, float rounding) do not interrupt a fall. Computed with shifted views of one
padded copy of the block, so the cost is ``max_decline`` vectorised passes.
"""

from __future__ import annotations

import numpy as np


class Falls:
    """Falls into every position of ``x`` (m clients x L positions).

    Attributes
    ----------
    lag : ndarray of int (m, L)
        Steps of the non-increasing fall ending at each position, at most
        ``max_decline`` (0 when the score rose or it is the first score).
    top : ndarray of float (m, L)
        Score ``max_decline`` steps back at most, where that fall began.
    """

    def __init__(self, x: np.ndarray, max_decline: int, eps: np.ndarray | None = None) -> None:
        m, length = x.shape
        self._x = x
        self._length = length
        self._cap = int(max_decline)
        self._xp = np.pad(x, ((0, 0), (self._cap, 0)), constant_values=np.nan)
        tol = np.zeros((m, 1)) if eps is None else np.asarray(eps, dtype=float)[:, None]
        self._eps = tol
        with np.errstate(invalid="ignore"):
            step = x <= self.back(1) + tol  # NaN (padding, missing) compares False
        stepp = np.pad(step, ((0, 0), (self._cap, 0)), constant_values=False)
        ok = step
        lag = ok.astype(np.int16)
        top = np.where(ok, self.back(1), x)
        for d in range(2, self._cap + 1):
            ok = ok & stepp[:, self._cap - d + 1 : self._cap - d + 1 + length]
            lag += ok
            top = np.where(ok, self.back(d), top)
        self.lag = lag
        self.top = top

    def back(self, d: int) -> np.ndarray:
        """View of the scores ``d`` positions earlier (NaN before the first)."""
        return self._xp[:, self._cap - d : self._cap - d + self._length]

    def start(self, ret: np.ndarray) -> np.ndarray:
        """First position of each fall whose score is below ``ret`` (m, L).

        The fall is non-increasing, so the positions below ``ret`` are a suffix
        of it; the position itself is always included.
        """
        cols = np.arange(self._length)
        start = np.broadcast_to(cols, self._x.shape).copy()
        with np.errstate(invalid="ignore"):
            for d in range(1, self._cap):
                below = (d < self.lag) & (self.back(d) < ret - self._eps)
                np.copyto(start, cols - d, where=below)
        return start
