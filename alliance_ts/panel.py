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
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["Block", "Panel", "client_hashes", "sample_step", "select_by_hash"]

#: Upper bound on the cells (clients x padded length) of one block. Keeps the
#: working memory of a rule at a few hundred MB whatever the input size.
BLOCK_CELLS = 1 << 21

#: Sample-wide estimates (pooled SDs, noise autocorrelation, ...) use all
#: analysed clients up to this many observed scores, and beyond it the clients
#: whose id hashes to 0 modulo a power of two (see :func:`sample_clients`).
SAMPLE_SCORES = 1_000_000


def client_hashes(ids) -> np.ndarray:
    """A fixed 64-bit hash of each client id (``pandas.util.hash_array``, default key).

    The same id always hashes the same, whatever the row order, the chunking
    or the process: the basis of sample selections that every execution path
    (in memory, streaming, Dask) reproduces exactly.
    """
    return pd.util.hash_array(np.asarray(ids, dtype=object)).astype(np.uint64)


def sample_step(total: int, budget: int | None = None) -> int:
    """The power of two ``k`` such that one in ``k`` (by hash) leaves at most about ``budget``.

    ``budget`` defaults to :data:`SAMPLE_SCORES` (read at call time).
    """
    if budget is None:
        budget = SAMPLE_SCORES
    if total <= budget:
        return 1
    return 1 << int(np.ceil(np.log2(total / budget)))


def select_by_hash(hashes: np.ndarray, step: int) -> np.ndarray:
    """Mask of the ids whose hash is 0 modulo ``step`` (a power of two)."""
    if step <= 1:
        return np.ones(hashes.shape, dtype=bool)
    return (hashes & np.uint64(step - 1)) == 0


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
    mean, sd : ndarray of float64, shape (m,), or None
        Each client's mean and sample SD (ddof=1; NaN with fewer than two
        scores), computed once per panel by :attr:`Panel.client_mean_sd`;
        None unless the blocks were requested with ``moments=True``.
    """

    clients: np.ndarray
    x: np.ndarray
    s: np.ndarray
    n: np.ndarray
    mean: np.ndarray | None = None
    sd: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask (m, L): True where a score is present."""
        return np.arange(self.x.shape[1])[None, :] < self.n[:, None]


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
    row_client_values : array-like or None
        The client id of every sorted row when it could be had without a
        copy (the input was already sorted); else None.
    """

    client_ids: pd.Index
    row_client: np.ndarray
    row_session: np.ndarray
    row_score: np.ndarray
    obs_values: np.ndarray
    obs_sessions: np.ndarray
    obs_offsets: np.ndarray
    row_client_values: object = None

    @property
    def n_clients(self) -> int:
        return len(self.client_ids)

    @property
    def n_obs(self) -> np.ndarray:
        """Observed scores per client."""
        return np.diff(self.obs_offsets)

    @cached_property
    def row_observed(self) -> np.ndarray:
        return ~np.isnan(self.row_score)

    @cached_property
    def all_observed(self) -> bool:
        """True when no row has a missing score."""
        return self.obs_values.size == self.row_score.size

    def row_clients(self):
        """Client id of every sorted row (input type kept)."""
        if self.row_client_values is not None:
            return self.row_client_values
        return self.client_ids.take(self.row_client)

    @cached_property
    def client_mean_sd(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sample SD (ddof=1) of every client's observed scores.

        Sums run over each client's own scores only (``np.add.reduceat``),
        so a client's values never depend on the other clients, the row
        order of the input or how clients are later split into blocks.
        NaN for clients with too few scores.
        """
        n = self.n_obs
        m = n.size
        mean = np.full(m, np.nan)
        sd = np.full(m, np.nan)
        has = n > 0
        if not has.any():
            return mean, sd
        starts = self.obs_offsets[:-1][has]
        total = np.add.reduceat(self.obs_values, starts)
        mean[has] = total / n[has]
        dev2 = (self.obs_values - np.repeat(mean[has], n[has])) ** 2
        ss = np.add.reduceat(dev2, starts)
        two = n[has] >= 2
        # constant scores have SD exactly 0, whatever the rounding of the mean
        constant = np.maximum.reduceat(self.obs_values, starts) == np.minimum.reduceat(self.obs_values, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd_has = np.where(two, np.where(constant, 0.0, np.sqrt(ss / (n[has] - 1))), np.nan)
        sd[has] = sd_has
        return mean, sd

    def sample_clients(self, clients: np.ndarray) -> np.ndarray:
        """The clients sample-wide estimates use: all of them up to
        :data:`SAMPLE_SCORES` observed scores, beyond it those whose id hashes to
        0 modulo ``sample_step(total)``; sorted codes."""
        clients = np.asarray(clients, dtype=np.int64)
        step = sample_step(int(self.n_obs[clients].sum()))
        if step == 1:
            return clients
        return clients[select_by_hash(client_hashes(self.client_ids[clients]), step)]

    def blocks(
        self, clients: np.ndarray, max_cells: int | None = None, moments: bool = False
    ) -> Iterator[Block]:
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
            yield self._block(clients[i:j], moments)
            i = j

    def _block(self, clients: np.ndarray, moments: bool = False) -> Block:
        n = self.n_obs[clients]
        length = max(int(n.max()), 1)
        if moments:
            mean, sd = (a[clients] for a in self.client_mean_sd)
        else:
            mean = sd = None
        first, last = int(clients[0]), int(clients[-1])
        if (
            last - first == clients.size - 1
            and int(n.min()) == length
            and np.all(np.diff(clients) == 1)
        ):
            # contiguous clients of equal length: a reshape, no copy
            lo, hi = self.obs_offsets[first], self.obs_offsets[last + 1]
            x = self.obs_values[lo:hi].reshape(clients.size, length)
            s = self.obs_sessions[lo:hi].reshape(clients.size, length)
            return Block(clients, x, s.astype(np.int64, copy=False), n.astype(np.int64), mean, sd)
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
        return Block(clients, x, s.astype(np.int64, copy=False), n.astype(np.int64), mean, sd)
