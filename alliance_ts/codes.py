"""Missing-data codes: the declared ones, and the values that look like undeclared ones.

Trial files often store a missed session as a number (``999``, ``-99``,
``9``). A declared code (``missing=[999]``; SPSS and Stata declare theirs in
the file) is recoded to a missed session before anything else. An
undeclared one would be read as a score: one 999 among WAI totals of 40-60
makes every other session look like a rupture. So when no scale is
declared (codes may be), :func:`scan` looks for values that look like codes, and
:func:`code_problems` turns them into input errors (``check_codes=False``
turns the check off).

The exact criterion (our choice; no publication defines one). For each
observed score ``x`` of a client with at least three observed scores, let
``lo`` and ``hi`` be the lowest and highest of the client's *other* scores
and ``w = max(hi - lo, 0.1 * max(|lo|, |hi|))``. The score is *far* when
``x < lo - 2w`` or ``x > hi + 2w``. Let ``[a, b]`` be the range of all
observed scores that are neither far nor code-like. A value is reported when

- it is *code-like* (a whole number whose digits are all 9 or all 8, such as
  9, 99, 999, -9, -99, 88, or -1) and it is far in at least half of the
  rows that hold it, or lies outside ``[a, b]`` by more than
  ``max(b - a, 0.5 * max(|a|, |b|))``; or
- it is far in at least three clients and lies outside ``[a, b]`` (the same
  out-of-pattern value recurring across clients, below or above every
  in-pattern score).

Every statistic above is a count, a minimum or a maximum over clients, so
the check gives the same answer however the input is split into chunks,
partitions or batches (:func:`merge`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import Problem

__all__ = ["CodeScan", "check_missing", "code_like", "code_problems", "merge", "recode", "scan"]

#: Examples kept per suspect value.
MAX_EXAMPLES = 5
#: Clients in which an out-of-pattern value (not code-like) must be far to be reported.
RECURRING_CLIENTS = 3


#: Whole numbers written only with 9s or only with 8s (up to 12 digits), either sign, and -1.
CODE_VALUES = np.array(sorted(
    {-1.0} | {sign * d * (10.0**k - 1) / 9 for k in range(1, 13) for d in (9, 8) for sign in (1, -1)}
))


def code_like(value: float) -> bool:
    """True for whole numbers written only with 9s or only with 8s (9, -99, 888), and for -1.

    >>> [code_like(v) for v in (9, 99, -99, 888, -1, 98, 0, 9.5)]
    [True, True, True, True, True, False, False, False]
    """
    return bool(_code_like(np.array([float(value)]))[0])


def check_missing(problems: list[Problem], missing: Any) -> tuple[float, ...]:
    """The declared codes as floats (appending a Problem for anything that is not a list of numbers)."""
    if missing is None:
        return ()
    values = [missing] if isinstance(missing, (int, float, np.number)) and not isinstance(missing, bool) else missing
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        problems.append(Problem("parameter 'missing'", f"must be a list of numbers (missing-data codes), got "
                                f"{missing!r}"))
        return ()
    out: list[float] = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
            problems.append(Problem("parameter 'missing'", f"every code must be a finite number, got {v!r}"))
            return ()
        out.append(float(v))
    return tuple(dict.fromkeys(out))


def recode(values: np.ndarray, codes: Sequence[float]) -> tuple[np.ndarray, dict[float, int]]:
    """``values`` with every declared code replaced by NaN, and how many cells each code had."""
    if not codes:
        return values, {}
    hit = np.isin(values, np.asarray(codes, dtype=float))
    if not hit.any():
        return values, {c: 0 for c in codes}
    counts = {c: int(np.count_nonzero(values[hit] == c)) for c in codes}
    out = values.copy()
    out[hit] = np.nan
    return out, counts


@dataclass
class Suspect:
    """One value's statistics in a chunk (see the module docstring)."""

    rows: int = 0
    far_rows: int = 0
    far_clients: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class CodeScan:
    """What :func:`scan` found in one chunk; :func:`merge` adds chunks together."""

    low: float = math.inf
    high: float = -math.inf
    suspects: dict[float, Suspect] = field(default_factory=dict)


def scan(
    values: np.ndarray,
    codes: np.ndarray,
    example: Any,
    position: np.ndarray,
) -> CodeScan:
    """Statistics of the values that could be undeclared missing codes, for one chunk of whole clients.

    Parameters
    ----------
    values : ndarray of float
        The observed scores, sorted by client code (NaN rows removed).
    codes : ndarray of int
        The client code of each score (ascending).
    example : callable
        ``example(i)`` -> the text naming score ``i`` in a message.
    position : ndarray of int
        A number ordering the scores as the input does (for the examples).
    """
    out = CodeScan()
    if values.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    owner = codes - codes[0]  # codes are ascending and consecutive per client: per-client arrays by code
    width = int(owner[-1]) + 1
    counts = np.bincount(owner, minlength=width)
    # Only a client's lowest or highest score can be far from the others (any other score lies
    # between them), so "far" is decided per client from its two lowest and two highest scores:
    # the lowest is far when it lies 2w below the others' range [min2, max1], the highest when it
    # lies 2w above [min1, max2]. A tie for the extreme makes the second equal to it: not far.
    min1, min2 = _two_extremes(values, owner, starts, counts, np.minimum, np.inf)
    max1, max2 = _two_extremes(values, owner, starts, counts, np.maximum, -np.inf)
    enough = counts >= 3
    with np.errstate(invalid="ignore"):
        w_low = np.maximum(max1 - min2, 0.1 * np.maximum(np.abs(min2), np.abs(max1)))
        w_high = np.maximum(max2 - min1, 0.1 * np.maximum(np.abs(min1), np.abs(max2)))
        low_far = enough & (min1 < min2 - 2 * w_low)
        high_far = enough & (max1 > max2 + 2 * w_high)
    far = np.zeros(values.size, dtype=bool)
    for flagged, extreme in ((low_far, min1), (high_far, max1)):
        clients = np.flatnonzero(flagged)
        if clients.size:
            rows = _client_rows(starts, counts, owner, clients)
            far[rows[values[rows] == extreme[owner[rows]]]] = True
    like = _code_like(values)
    keep = ~(far | like)
    if keep.any():
        out.low = float(np.min(values, where=keep, initial=np.inf))
        out.high = float(np.max(values, where=keep, initial=-np.inf))
    candidate = far | like
    if not candidate.any():
        return out
    cand_rows = np.flatnonzero(candidate)
    found = np.unique(values[cand_rows])
    at = np.minimum(np.searchsorted(found, values), found.size - 1)
    n_rows = np.bincount(at[found[at] == values], minlength=found.size)
    far_rows = np.flatnonzero(far)
    n_far = np.bincount(at[far_rows], minlength=found.size)
    pairs = np.unique(np.stack([at[far_rows], owner[far_rows]]), axis=1) if far_rows.size else np.zeros((2, 0), int)
    n_far_clients = np.bincount(pairs[0], minlength=found.size)
    # examples: the far rows of each value first, then its other code-like rows, each in input order
    group = at[cand_rows]
    order = np.lexsort((position[cand_rows], ~far[cand_rows], group))
    rows, group = cand_rows[order], group[order]
    bounds = np.searchsorted(group, np.arange(found.size + 1))
    for k, v in enumerate(found):
        pick = rows[bounds[k]:min(bounds[k] + MAX_EXAMPLES, bounds[k + 1])]
        if n_far[k]:
            pick = pick[far[pick]]
        pick = pick[np.argsort(position[pick], kind="stable")]
        out.suspects[float(v)] = Suspect(int(n_rows[k]), int(n_far[k]), int(n_far_clients[k]),
                                          [(int(position[i]), example(int(i))) for i in pick])
    return out
    for v in np.unique(values[candidate]):
        mask = values == v
        far_v = mask & far
        s = out.suspects.setdefault(float(v), Suspect())
        s.rows += int(mask.sum())
        s.far_rows += int(far_v.sum())
        s.far_clients += int(np.unique(codes[far_v]).size)
        pick = np.flatnonzero(far_v if far_v.any() else mask)
        pick = pick[np.argsort(position[pick], kind="stable")][:MAX_EXAMPLES]
        s.examples = [(int(position[i]), example(int(i))) for i in pick]
    return out


def _code_like(values: np.ndarray) -> np.ndarray:
    """Mask of the values in :data:`CODE_VALUES` (a binary search, not a sort of the values).

    Only values at most 9 or at least 88 in size can be codes, so the search
    runs on those alone (none of a WAI total's 12-60, for instance).
    """
    size = np.abs(values)
    maybe = np.flatnonzero((size <= 9) | (size >= 88))
    out = np.zeros(values.size, dtype=bool)
    if maybe.size:
        v = values[maybe]
        at = np.minimum(np.searchsorted(CODE_VALUES, v), CODE_VALUES.size - 1)
        out[maybe] = CODE_VALUES[at] == v
    return out


def _client_rows(starts: np.ndarray, counts: np.ndarray, owner: np.ndarray, clients: np.ndarray) -> np.ndarray:
    """Positions of the scores of the given clients (owner codes)."""
    first = np.searchsorted(owner, clients)
    lengths = counts[clients]
    before = np.cumsum(lengths) - lengths
    return np.repeat(first - before, lengths) + np.arange(int(lengths.sum()))


def _two_extremes(values: np.ndarray, owner: np.ndarray, starts: np.ndarray, counts: np.ndarray, op: Any,
                  fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Per client (by ``owner`` code): the lowest (``np.minimum``) or highest score, and the next one.

    The next one is the extreme after removing one occurrence of the extreme;
    for a client with one score it is the extreme itself. Clients without
    scores get ``fill``.
    """
    present = owner[starts]
    first = np.full(counts.size, fill)
    first[present] = op.reduceat(values, starts)
    hit = np.flatnonzero(values == first[owner])
    one = hit[np.r_[True, owner[hit][1:] != owner[hit][:-1]]]  # the first occurrence in each client
    rest = values.copy()
    rest[one] = fill
    second = np.full(counts.size, fill)
    second[present] = op.reduceat(rest, starts)
    return first, np.where(counts > 1, second, first)


def merge(scans: Iterable[CodeScan]) -> CodeScan:
    """One scan from the scans of disjoint chunks of whole clients."""
    out = CodeScan()
    for sc in scans:
        out.low, out.high = min(out.low, sc.low), max(out.high, sc.high)
        for v, s in sc.suspects.items():
            t = out.suspects.setdefault(v, Suspect())
            t.rows += s.rows
            t.far_rows += s.far_rows
            t.far_clients += s.far_clients
            t.examples = sorted(t.examples + s.examples)[:MAX_EXAMPLES]
    return out


def code_problems(found: CodeScan, column: str, *, cli_hint: bool = True) -> list[Problem]:
    """The values of ``found`` that look like undeclared missing codes, as problems (one per value)."""
    low, high = found.low, found.high
    span = max(high - low, 0.5 * max(abs(low), abs(high))) if math.isfinite(low) else math.inf
    problems = []
    for v in sorted(found.suspects):
        s = found.suspects[v]
        outside = math.isfinite(low) and (v < low or v > high)
        far_outside = math.isfinite(low) and (v < low - span or v > high + span)
        if code_like(v) and (2 * s.far_rows >= s.rows or far_outside):
            why = "looks like a missing-data code"
        elif s.far_clients >= RECURRING_CLIENTS and outside:
            why = "recurs far outside the clients' other scores"
        else:
            continue
        shown = _number(v)
        where = (f"far outside the client's other scores in {s.far_rows} of these rows"
                 if s.far_rows else f"outside the range of the other scores ({_number(low)} to {_number(high)})")
        if cli_hint:
            how = (f"declare it as a missing-data code with --missing={shown}, or give the instrument's range with "
                   "--scale so that scores are checked against it, or add --no-check-codes if these are real scores")
        else:
            how = (f"declare it as a missing-data code with missing=[{shown}], or give the instrument's range with "
                   "scale= so that scores are checked against it, or pass check_codes=False if these are real "
                   "scores")
        problems.append(Problem(
            f"column {column!r}",
            f"{s.rows} row{'s hold' if s.rows != 1 else ' holds'} the value {shown}, which {why} ({where}): {how}",
            tuple(text for _, text in s.examples),
        ))
    return problems


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
