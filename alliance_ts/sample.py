"""The sample of clients that sample-wide parameters are estimated from.

Some rules estimate a parameter from the whole input (a pooled SD, the noise
autocorrelation, a calibrated penalty; see ``Rule.sample_dependent``). Up to
:data:`SAMPLE_SCORES` observed scores every analysed client is used; beyond
that, a deterministic subsample of about that many scores, so that labelling
ten million clients does not sort two hundred million differences.

The subsample is the same in every execution path (in memory, a file read in
chunks, Dask partitions), whatever the row order, the chunking and the way
ids are spelled: labelling clients ``7`` or ``"007"`` gives the same
episodes. So a client is chosen by its *data*, never by its id: each analysed
client gets a 64-bit *content hash* of its course (its observed scores, the
gaps between its session numbers and their count). Clients with identical
courses get the copy numbers 0, 1, 2, ... in the order they are seen, and a
client's *sample key* mixes its content hash with its copy number, so that
one in ``step`` of identical courses is chosen; which of the identical
courses is chosen cannot change any estimate. A client is in the sample when
its key is 0 modulo ``step``, the smallest power of two that brings the
analysed scores to about :data:`SAMPLE_SCORES` (:func:`sample_step`).

The hash sees the scores themselves, so on inputs beyond
:data:`SAMPLE_SCORES` scores, shifting or rescaling every score draws a
different (equally random) sample; below it the sample is every analysed
client.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .panel import Panel

__all__ = [
    "SAMPLE_SCORES",
    "Sampler",
    "content_hashes",
    "copy_numbers",
    "sample_keys",
    "sample_step",
    "selected",
    "thin",
]

#: Sample-wide estimates use every analysed client up to this many observed
#: scores, and beyond it about this many (see :func:`sample_step`).
SAMPLE_SCORES = 1_000_000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _position_weights(length: int) -> np.ndarray:
    """Fixed odd 64-bit multipliers, one per position in a course."""
    with np.errstate(over="ignore"):
        return _mix(np.arange(1, length + 1, dtype=np.uint64) * _GOLDEN) | np.uint64(1)


def content_hashes(panel: Panel, units: np.ndarray) -> np.ndarray:
    """The content hash of each given unit (same order as ``units``).

    From the unit's own observed scores only (their exact values, the
    session numbers relative to the first, and their number): unchanged by
    shifting the session numbers, by the id, by any other client and by the
    block the unit is in. Courses that differ hash differently except with
    negligible probability; a clash could only make two courses count as
    copies of each other.
    """
    units = np.asarray(units, dtype=np.int64)
    out = np.zeros(units.size, dtype=np.uint64)
    if units.size == 0:
        return out
    where = np.empty(panel.n_clients, dtype=np.int64)
    where[units] = np.arange(units.size)
    for block in panel.blocks(units):
        x, s, n = block.x, block.s, block.n
        length = x.shape[1]
        # each score's bits, their high half folded into the low half, plus the session
        # number relative to the client's first, weighted by position; padding cells are 0
        bits = x.view(np.uint64)
        with np.errstate(over="ignore"):
            cell = bits ^ (bits >> np.uint64(32))
            cell += (s - s[:, :1]).astype(np.uint64) * _GOLDEN
            cell *= _position_weights(length)[None, :]
            cell[~block.valid] = 0
            h = _mix(cell.sum(axis=1, dtype=np.uint64) + n.astype(np.uint64) * _GOLDEN)
        out[where[block.clients]] = h
    return out


def copy_numbers(hashes: np.ndarray, seen: dict[int, int] | None = None) -> np.ndarray:
    """0, 1, 2, ... among equal hashes, after the copies already counted in ``seen`` (updated)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    srt = hashes[order]
    new = np.r_[True, srt[1:] != srt[:-1]]
    first = np.maximum.accumulate(np.where(new, np.arange(srt.size), 0))
    within = np.arange(srt.size) - first
    if seen is not None:
        starts = np.flatnonzero(new)
        uniq = srt[starts].tolist()
        prior = np.fromiter((seen.get(h, 0) for h in uniq), dtype=np.int64, count=len(uniq))
        counts = np.diff(np.r_[starts, srt.size])
        within = within + np.repeat(prior, counts)
        seen.update(zip(uniq, (prior + counts).tolist()))
    out = np.empty(hashes.size, dtype=np.int64)
    out[order] = within
    return out


def sample_keys(hashes: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """Sample key of each client: its content hash mixed with its copy number."""
    with np.errstate(over="ignore"):
        return _mix(np.asarray(hashes, dtype=np.uint64) ^ _mix(np.asarray(copies, dtype=np.uint64) * _GOLDEN))


def sample_step(total: int, budget: int | None = None) -> int:
    """The power of two ``k`` such that one in ``k`` (by key) leaves at most about ``budget``.

    ``budget`` defaults to :data:`SAMPLE_SCORES` (read at call time).
    """
    if budget is None:
        budget = SAMPLE_SCORES
    if total <= budget:
        return 1
    return 1 << int(np.ceil(np.log2(total / budget)))


def selected(keys: np.ndarray, step: int) -> np.ndarray:
    """Mask of the keys that are 0 modulo ``step`` (a power of two)."""
    if step <= 1:
        return np.ones(np.shape(keys), dtype=bool)
    return (np.asarray(keys, dtype=np.uint64) & np.uint64(step - 1)) == 0


def thin(panel: Panel, units: np.ndarray, budget: int) -> np.ndarray:
    """About ``budget`` of the given units chosen by sample key, in key order.

    For a rule that draws a subsample of the sample itself (the change-point
    calibration): the choice and the order depend on the clients' data only.
    """
    units = np.asarray(units, dtype=np.int64)
    h = content_hashes(panel, units)
    keys = sample_keys(h, copy_numbers(h))
    keep = selected(keys, sample_step(units.size, budget))
    order = np.argsort(keys[keep], kind="stable")
    return units[keep][order]


def choose(panel: Panel, units: np.ndarray, budget: int | None = None) -> np.ndarray:
    """The sample among ``units`` of one whole panel (every unit up to the budget)."""
    units = np.asarray(units, dtype=np.int64)
    step = sample_step(int(panel.n_obs[units].sum()), budget)
    if step == 1:
        return units
    h = content_hashes(panel, units)
    return units[selected(sample_keys(h, copy_numbers(h)), step)]


class Sampler:
    """Chooses the sample while whole-client chunks go by, in bounded memory.

    :meth:`add` takes each chunk's analysed units (every unit once, chunks in
    any order) and keeps the candidates' scores: every analysed unit until
    the candidates hold more than four times the budget, and from then on
    only units whose key is 0 modulo a doubling ``step_kept``.
    :meth:`sample` gives the final sample, the same as :func:`choose` on the
    whole input.
    """

    def __init__(self, budget: int | None = None) -> None:
        self.budget = SAMPLE_SCORES if budget is None else int(budget)
        self.total = 0
        self.step_kept = 1
        self._seen: dict[int, int] = {}
        self._hashing = False
        self._kept: list[tuple[Panel, np.ndarray | None]] = []

    def add(self, panel: Panel, units: np.ndarray) -> None:
        """Offer the analysed ``units`` of one chunk's panel."""
        units = np.asarray(units, dtype=np.int64)
        self.total += int(panel.n_obs[units].sum())
        if self._hashing:
            keys = self._keys(panel, units)
            keep = selected(keys, self.step_kept)
            self._kept.append((panel.subset(units[keep]), keys[keep]))
        else:
            self._kept.append((panel.subset(units), None))
        while self._scores() > 4 * self.budget:
            self._hash_all()
            self.step_kept *= 2
            self._filter(self.step_kept)

    def sample(self) -> tuple[Panel, np.ndarray]:
        """The sample panel and its units (all of them)."""
        step = sample_step(self.total, self.budget)
        if step > 1:
            self._hash_all()
            self._filter(step)
        panel = concat_panels([p for p, _ in self._kept])
        return panel, np.arange(panel.n_clients, dtype=np.int64)

    def _scores(self) -> int:
        return sum(int(p.obs_values.size) for p, _ in self._kept)

    def _keys(self, panel: Panel, units: np.ndarray) -> np.ndarray:
        h = content_hashes(panel, units)
        return sample_keys(h, copy_numbers(h, self._seen))

    def _hash_all(self) -> None:
        if self._hashing:
            return
        self._hashing = True
        self._kept = [(p, self._keys(p, np.arange(p.n_clients))) for p, _ in self._kept]

    def _filter(self, step: int) -> None:
        out = []
        for p, keys in self._kept:
            if keys is None:  # pragma: no cover - _hash_all runs first
                raise RuntimeError("the sample's candidates have no keys")
            keep = selected(keys, step)
            out.append((p.subset(np.flatnonzero(keep)), keys[keep]))
        self._kept = out


def concat_panels(panels: list[Panel]) -> Panel:
    """One panel of the observed scores of several panels' units (ids dropped: 0, 1, 2, ...)."""
    if not panels:
        empty = np.zeros(0)
        z = np.zeros(0, dtype=np.int64)
        return Panel(pd.RangeIndex(0), z, z, empty, empty, z, np.zeros(1, dtype=np.int64))
    lengths = np.concatenate([p.n_obs for p in panels]).astype(np.int64)
    names = sorted(set().union(*(p.obs_items for p in panels)))
    return Panel.of_observed(
        pd.RangeIndex(lengths.size),
        np.concatenate([p.obs_values for p in panels]),
        np.concatenate([p.obs_sessions for p in panels]),
        lengths,
        {k: np.concatenate([p.obs_items[k] for p in panels]) for k in names},
    )
