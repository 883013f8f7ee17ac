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

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["RESOLUTION", "Block", "Panel"]

#: Upper bound on the cells (clients x padded length) of one block. Keeps the
#: working memory of a rule at a few hundred MB whatever the input size.
BLOCK_CELLS = 1 << 21

#: Differences between two scores of a client smaller than this share of the
#: client's largest absolute score are no difference (float rounding, not
#: data): see :attr:`Block.resolution`.
RESOLUTION = 1e-12


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
    items : dict of str -> ndarray of float64, shape (m, L)
        For rules that read several values per session (questionnaire
        items): each item's values at the observed sessions, NaN where not
        answered or after the last session. Empty for score rules.
    """

    clients: np.ndarray
    x: np.ndarray
    s: np.ndarray
    n: np.ndarray
    mean: np.ndarray | None = None
    sd: np.ndarray | None = None
    items: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask (m, L): True where a score is present."""
        return np.arange(self.x.shape[1])[None, :] < self.n[:, None]

    @cached_property
    def resolution(self) -> np.ndarray:
        """Per client (m,): differences of scores at most this large are no difference.

        :data:`RESOLUTION` times the client's largest absolute score (0 for
        a client whose scores are all 0). Scores are stored as binary
        floating-point numbers, so adding a constant such as 1e5 to every
        score, or computing item means, moves them by rounding errors of
        about 1e-16 of their size; rules compare scores and noise levels
        with this tolerance so that such rounding never makes or breaks an
        episode, and so that a rule's declared invariances hold exactly.
        """
        if self.x.size == 0:
            return np.zeros(self.x.shape[0])
        with np.errstate(invalid="ignore"):
            top = np.fmax.reduce(np.abs(self.x), axis=1)
        return RESOLUTION * np.where(np.isfinite(top), top, 0.0)


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
    group_ids : pandas.Index or None
        With a grouping column (a rater), the group of each unit: a unit is
        then one client x group course, ``client_ids`` holds each unit's
        client (repeated across its groups) and units are sorted by client,
        then group.
    row_items, obs_items : dict of str -> ndarray
        For rules that read several values per session: each value of every
        row, and of the observed rows. Empty for score rules.
    observed_rows : ndarray of bool or None
        Which sorted rows are observed sessions (None: all of them).
    covariates : pandas.DataFrame or None
        One row per unit: the client-level columns kept (``keep=``).
    row_date : ndarray of datetime64[ns] or None
        With date sessions, the date of every sorted row.
    stats : dict
        What validation counted for the result's ``info``: ``n_rows``,
        ``missing_counts``, ``low``/``high`` (observed scores) and ``scan``
        (:class:`alliance_ts.codes.CodeScan`).
    """

    client_ids: pd.Index
    row_client: np.ndarray
    row_session: np.ndarray
    row_score: np.ndarray
    obs_values: np.ndarray
    obs_sessions: np.ndarray
    obs_offsets: np.ndarray
    row_client_values: object = None
    group_ids: pd.Index | None = None
    row_items: dict[str, np.ndarray] = field(default_factory=dict)
    obs_items: dict[str, np.ndarray] = field(default_factory=dict)
    observed_rows: np.ndarray | None = None
    covariates: pd.DataFrame | None = None
    row_date: np.ndarray | None = None
    stats: dict = field(default_factory=dict)

    @property
    def n_clients(self) -> int:
        """Number of units (clients, or client x group courses)."""
        return len(self.client_ids)

    @property
    def n_obs(self) -> np.ndarray:
        """Observed scores per client."""
        return np.diff(self.obs_offsets)

    @cached_property
    def row_observed(self) -> np.ndarray:
        """Which sorted rows are observed sessions."""
        if self.observed_rows is not None:
            return self.observed_rows
        return np.ones(self.row_score.size, dtype=bool)

    @cached_property
    def all_observed(self) -> bool:
        """True when no row has a missing score."""
        return self.obs_values.size == self.row_score.size

    @cached_property
    def obs_dates(self) -> np.ndarray | None:
        """The dates of the observed rows (date sessions only)."""
        if self.row_date is None:
            return None
        return self.row_date if self.all_observed else self.row_date[self.row_observed]

    def row_clients(self):
        """Client id of every sorted row (input type kept)."""
        if self.row_client_values is not None:
            return self.row_client_values
        return self.client_ids.take(self.row_client)

    def with_scores(self, row_score: np.ndarray) -> Panel:
        """This panel with the session score of every row replaced (rules that derive it)."""
        observed = self.row_observed
        return dataclasses.replace(
            self,
            row_score=row_score,
            obs_values=row_score if observed.all() else row_score[observed],
        )

    def subset(self, units: np.ndarray) -> Panel:
        """A panel of the observed scores of the given units only (codes), renumbered 0..k-1."""
        units = np.asarray(units, dtype=np.int64)
        lengths = np.diff(self.obs_offsets)[units]
        idx = _ranges(self.obs_offsets[units], lengths)
        return Panel.of_observed(
            self.client_ids.take(units), self.obs_values[idx], self.obs_sessions[idx], lengths,
            {k: v[idx] for k, v in self.obs_items.items()},
            None if self.group_ids is None else self.group_ids.take(units),
        )

    @classmethod
    def of_observed(
        cls,
        client_ids: pd.Index,
        values: np.ndarray,
        sessions: np.ndarray,
        lengths: np.ndarray,
        items: dict[str, np.ndarray] | None = None,
        group_ids: pd.Index | None = None,
    ) -> Panel:
        """A panel of observed scores only (no missed-session rows), unit after unit."""
        lengths = np.asarray(lengths, dtype=np.int64)
        items = items or {}
        return cls(
            client_ids=client_ids,
            row_client=np.repeat(np.arange(lengths.size, dtype=np.int64), lengths),
            row_session=sessions,
            row_score=values,
            obs_values=values,
            obs_sessions=sessions,
            obs_offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
            group_ids=group_ids,
            row_items=items,
            obs_items=items,
        )

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
            items = {k: v[lo:hi].reshape(clients.size, length) for k, v in self.obs_items.items()}
            return Block(clients, x, s.astype(np.int64, copy=False), n.astype(np.int64), mean, sd, items)
        cols = np.arange(length)
        valid = cols[None, :] < n[:, None]
        idx = self.obs_offsets[clients][:, None] + cols[None, :]
        idx = np.where(valid, idx, 0)
        if self.obs_values.size:
            x = np.where(valid, self.obs_values[idx], np.nan)
            s = np.where(valid, self.obs_sessions[idx], 0)
            items = {k: np.where(valid, v[idx], np.nan) for k, v in self.obs_items.items()}
        else:
            x = np.full(valid.shape, np.nan)
            s = np.zeros(valid.shape, dtype=np.int64)
            items = {k: np.full(valid.shape, np.nan) for k in self.obs_items}
        return Block(clients, x, s.astype(np.int64, copy=False), n.astype(np.int64), mean, sd, items)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, start + length)`` for each pair."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total)
