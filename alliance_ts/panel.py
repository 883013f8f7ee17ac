"""The validated, normalised form of the input that rules work on.

After validation (:mod:`alliance_ts.validation`) the input is a :class:`Panel`:
every input row sorted by (client, session), client ids replaced by integer
codes in sorted id order, plus the *observed* scores (rows with a score)
packed client after client. Rules never see a Panel; they see
:class:`Block` objects: a few thousand whole clients as padded 2-D numpy
arrays, one row per client and one column per observed score.

Nothing in this module looks at column names or user session labels except
through the arrays it was built from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Block", "Panel", "row_mean_sd"]

#: Upper bound on the cells (clients x padded length) of one block. Keeps the
#: working memory of a rule at a few hundred MB whatever the input size.
BLOCK_CELLS = 1 << 21


@dataclass(frozen=True, eq=False)
class Block:
    """Whole clients as padded arrays (the unit of work of a rule).

    Attributes
    ----------
    clients : ndarray of int64, shape (m,)
        Panel-wide client codes of the rows.
    x : ndarray of float64, shape (m, L)
        Observed scores in session order, NaN after the last one.
    s : ndarray of int64, shape (m, L)
        Session numbers of those scores, 0 after the last one.
    n : ndarray of int64, shape (m,)
        Number of observed scores per client (``n <= L``).
    """

    clients: np.ndarray
    x: np.ndarray
    s: np.ndarray
    n: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask (m, L): True where a score is present."""
        return np.arange(self.x.shape[1])[None, :] < self.n[:, None]

    @classmethod
    def from_series(cls, values: list[list[float]], sessions: list[list[int]] | None = None):
        """Build a block from plain lists (tests and the testing toolkit)."""
        m = len(values)
        length = max((len(v) for v in values), default=0)
        x = np.full((m, length), np.nan)
        s = np.zeros((m, length), dtype=np.int64)
        for i, v in enumerate(values):
            x[i, : len(v)] = v
            s[i, : len(v)] = sessions[i] if sessions is not None else np.arange(1, len(v) + 1)
        n = np.array([len(v) for v in values], dtype=np.int64)
        return cls(np.arange(m, dtype=np.int64), x, s, n)


@dataclass(frozen=True, eq=False)
class Panel:
    """All input rows, validated and sorted by (client, session).

    Attributes
    ----------
    client_ids : pandas.Index
        Unique client ids in sorted order; code ``c`` is ``client_ids[c]``.
    row_client, row_session : ndarray of int64
        Client code and session number of every input row, sorted.
    row_score : ndarray of float64
        Score of every input row (NaN for a missed session).
    obs_values, obs_sessions : ndarray
        The rows with a score, in the same order.
    obs_offsets : ndarray of int64, shape (n_clients + 1,)
        Client ``c``'s observed scores are
        ``obs_values[obs_offsets[c]:obs_offsets[c + 1]]``.
    """

    client_ids: pd.Index
    row_client: np.ndarray
    row_session: np.ndarray
    row_score: np.ndarray
    obs_values: np.ndarray
    obs_sessions: np.ndarray
    obs_offsets: np.ndarray

    @property
    def n_clients(self) -> int:
        return len(self.client_ids)

    @property
    def n_obs(self) -> np.ndarray:
        """Observed scores per client."""
        return np.diff(self.obs_offsets)

    @property
    def row_observed(self) -> np.ndarray:
        return ~np.isnan(self.row_score)

    def blocks(self, clients: np.ndarray, max_cells: int | None = None) -> Iterator[Block]:
        """Yield the given clients as padded blocks of similar length.

        Clients are grouped by their number of observed scores (so a block
        of 3-session clients is not padded to 100 columns because of one long
        course); each block holds at most ``max_cells`` cells. The grouping
        never changes a result: rules treat every client independently and
        only ever add padding zeros/NaNs that they mask out.
        """
        if max_cells is None:
            max_cells = BLOCK_CELLS
        clients = np.asarray(clients, dtype=np.int64)
        if clients.size == 0:
            return
        lengths = self.n_obs[clients]
        order = np.argsort(lengths, kind="stable")
        clients, lengths = clients[order], lengths[order]
        i = 0
        while i < clients.size:
            width = max(int(lengths[i]), 1)
            # Lengths ascend, so the last client of the block sets the width:
            # grow the block while (count x width of its last client) fits.
            j = i + max(1, max_cells // width)
            j = min(j, clients.size)
            while j > i + 1 and int(lengths[j - 1]) * (j - i) > max_cells:
                j = i + max(1, max_cells // max(int(lengths[j - 1]), 1))
            yield self._block(clients[i:j])
            i = j

    def _block(self, clients: np.ndarray) -> Block:
        n = self.n_obs[clients]
        length = max(int(n.max()), 1)
        cols = np.arange(length)
        valid = cols[None, :] < n[:, None]
        idx = self.obs_offsets[clients][:, None] + cols[None, :]
        idx = np.where(valid, idx, 0)
        if self.obs_values.size:
            x = np.where(valid, self.obs_values[idx], np.nan)
            s = np.where(valid, self.obs_sessions[idx], 0)
        else:
            x = np.full(valid.shape, np.nan)
            s = np.zeros(valid.shape, dtype=np.int64)
        return Block(clients, x, s.astype(np.int64, copy=False), n.astype(np.int64))


def row_mean_sd(x: np.ndarray, n: np.ndarray, skip: np.ndarray | None = None):
    """Per-row mean and sample SD (ddof=1) of the first ``n`` entries of each row.

    Sums run column by column in session order, so a client's result does not
    depend on the padded width of its block or on which other clients share
    it (numpy's pairwise ``sum`` would regroup the additions when the width
    changes). Rows with fewer than two values get SD NaN.

    Parameters
    ----------
    x : ndarray (m, L)
    n : ndarray (m,)
    skip : ndarray of bool (m, L), optional
        Entries to leave out in addition to the padding.
    """
    m, length = x.shape
    total = np.zeros(m)
    count = np.zeros(m)
    for j in range(length):
        use = j < n
        if skip is not None:
            use = use & ~skip[:, j]
        total += np.where(use, x[:, j], 0.0)
        count += use
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    ss = np.zeros(m)
    for j in range(length):
        use = j < n
        if skip is not None:
            use = use & ~skip[:, j]
        ss += np.where(use, (x[:, j] - mean) ** 2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(count >= 2, np.sqrt(ss / (count - 1)), np.nan)
    return mean, sd
