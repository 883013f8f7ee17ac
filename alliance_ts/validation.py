"""The one validator at the boundary, and the generic checks of parameter values.

:func:`validate` checks a long table completely before anything is computed,
collects *every* problem (missing or duplicated columns, client ids that are
missing or ambiguous, session numbers that are missing, fractional, dates or
durations, values that are not real numbers or lie outside their range,
duplicate client x session rows, empty input) and returns them together, so
the caller raises one :class:`~alliance_ts.errors.InvalidInputError` that
lists them all. Each message names the column, the number of affected rows and
example rows (index label, client, session, value).

What a table must hold is a :class:`Layout`: the client and session columns,
the value columns a rule reads (one score, or several questionnaire items),
and optionally a grouping column (the rater) whose values split a client into
separate courses.

Valid clients that cannot be analysed are *not* problems: they are reported
by the caller in ``Detection.clients`` with ``included=False``.

:func:`check_number` and :func:`check_choice` are the generic checks of
parameter values used by the rules, the simulator and the command line.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import Problem
from .input import as_long_frame
from .panel import Panel
from .scales import ScoreRange, resolve_scale

__all__ = [
    "Layout",
    "check_choice",
    "check_column_names",
    "check_number",
    "merge_problems",
    "plain",
    "read_panel",
    "score_layout",
    "validate",
]

MAX_EXAMPLES = 5
#: Scores larger than this in size are an input error: sums of squares of such values overflow.
HUGE = 1e100


# --------------------------------------------------------------------------
# parameter values


def check_number(
    problems: list[Problem],
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    integer: bool = False,
) -> None:
    """Append a Problem unless ``value`` is a real number in the given range.

    Booleans, complex numbers, strings and non-finite values are refused;
    ``integer=True`` also refuses numbers with a fractional part.
    """
    if value is None and allow_none:
        return
    ok_type = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok_type and integer:
        ok_type = math.isfinite(float(value)) and float(value).is_integer()
    if not ok_type or not math.isfinite(float(value)):
        kind = "a whole number" if integer else "a finite number"
        problems.append(
            Problem(f"parameter {name!r}", f"must be {kind}{' or None' if allow_none else ''}, got {value!r}")
        )
        return
    v = float(value)
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
        problems.append(
            Problem(f"parameter {name!r}", f"must be {' and '.join(p for p in (lo, hi) if p)}, got {value!r}")
        )


def check_choice(problems: list[Problem], name: str, value: Any, choices: Sequence[Any]) -> None:
    """Append a Problem unless ``value`` is one of ``choices`` (compared by type and value)."""
    try:
        ok = any(type(value) is type(c) and value == c for c in choices)
    except (TypeError, ValueError):  # arrays and other values without a plain ==
        ok = False
    if not ok:
        problems.append(
            Problem(f"parameter {name!r}", f"must be one of {', '.join(map(repr, choices))}; got {value!r}")
        )


def check_column_names(problems: list[Problem], **names: Any) -> None:
    """Append a Problem for every column-name argument that is not a string."""
    for arg, value in names.items():
        if value is not None and not isinstance(value, str):
            hint = " (one column per argument)" if isinstance(value, (list, tuple, set, pd.Index)) else ""
            problems.append(
                Problem(f"parameter {arg!r}", f"must be a column name (a string), got {value!r}{hint}")
            )


# --------------------------------------------------------------------------
# what a table holds


@dataclass(frozen=True)
class Layout:
    """The columns of a long table a rule reads.

    Attributes
    ----------
    client, session : str
        Client id and session number columns.
    values : tuple of (name, column)
        The value columns: ``(("score", "wai"),)`` for a score rule, or the
        questionnaire items ``(("rupture", "q1"), ...)``. Names are what the
        rule and the output tables call them; columns are the input's.
    score : str or None
        The name in ``values`` that is the session score; None when the
        rule derives the score from the values (``observed="any"``).
    group : str or None
        Column whose values split a client into separate courses (a rater);
        reported in every table under ``group_name``.
    group_name : str
        Output name of the grouping column.
    ranges : tuple of (name, ScoreRange)
        Allowed range of values (closed); values outside are problems.
    observed : {"score", "any"}
        A row is an observed session when its score is present, or when any
        value is present.
    unit : str
        What an observed row is called in messages (``"observed scores"``).
    missing : tuple of float
        Declared missing-data codes: values equal to one are missed sessions.
    check_codes : bool
        Look for values that look like undeclared missing codes
        (:mod:`alliance_ts.codes`); set when no range and no codes are declared.
    keep : tuple of str
        Client-level columns (one value per client) carried into the results.
    session_every : pandas.Timedelta or None
        With date sessions: the step that numbers them (gaps become missed
        sessions); None numbers them by date order.
    segments : alliance_ts.segments.Segments or None
        Rows are segments of sessions (observer codes): validation checks
        them and makes one row per session holding ``values``
        (:mod:`alliance_ts.segments`).
    """

    client: str
    session: str
    values: tuple[tuple[str, str], ...]
    score: str | None = "score"
    group: str | None = None
    group_name: str = "rater"
    ranges: tuple[tuple[str, ScoreRange], ...] = ()
    observed: str = "score"
    unit: str = "observed scores"
    value_word: str = "score"
    hints: tuple[str, ...] = field(default=())
    missing: tuple[float, ...] = ()
    check_codes: bool = False
    keep: tuple[str, ...] = ()
    session_every: Any = None
    segments: Any = None

    @property
    def columns(self) -> list[str]:
        """Every input column read, in order, without repeats."""
        cols = [self.client, *([self.group] if self.group is not None else []), self.session]
        cols += self.segments.columns if self.segments is not None else [c for _, c in self.values]
        cols += list(self.keep)
        return list(dict.fromkeys(cols))

    @property
    def score_column(self) -> str | None:
        """The input column of the session score (None when the rule derives it)."""
        return dict(self.values).get(self.score) if self.score is not None else None


def score_layout(client: str, session: str, score: str, scale: Any = None) -> tuple[Layout, list[Problem]]:
    """The layout of a score table (and the problem with ``scale``, if any)."""
    score_range, msg = resolve_scale(scale)
    problems = [Problem("parameter 'scale'", msg)] if msg else []
    ranges = (("score", score_range),) if score_range is not None else ()
    return Layout(client=client, session=session, values=(("score", score),), ranges=ranges), problems


def read_panel(
    data: object,
    *,
    client: str,
    session: str,
    score: str,
    scale: object = None,
) -> tuple[Panel | None, list[Problem]]:
    """Validate a table of scores (or one client's scores) and build a :class:`Panel`.

    Returns ``(panel, [])`` or ``(None, problems)``.
    """
    problems: list[Problem] = []
    check_column_names(problems, client=client, session=session, score=score)
    if problems:
        return None, problems
    layout, problems = score_layout(client, session, score, scale)
    frame, frame_problems = as_long_frame(data, client, session, score)
    problems += frame_problems
    if frame is None:
        return None, problems
    panel, found = validate(frame, layout)
    return (panel if not problems else None), problems + found


def validate(frame: pd.DataFrame, layout: Layout) -> tuple[Panel | None, list[Problem]]:
    """Check ``frame`` against ``layout``; ``(panel, [])`` or ``(None, problems)``."""
    if layout.segments is not None:
        from .segments import validate_segments

        return validate_segments(frame, layout)
    problems = _column_problems(frame, layout)
    if problems:
        return None, problems
    if len(frame) == 0:
        return None, [Problem("data", "the table has no rows")]
    index = frame.index
    client_col = frame[layout.client]
    group_col = frame[layout.group] if layout.group is not None else None

    before = len(problems)
    client_ids = _ids(problems, client_col, layout.client, "client id", index)
    group_ids = (
        _ids(problems, group_col, layout.group, layout.group_name, index, client_col)
        if group_col is not None and layout.group is not None
        else None
    )
    ids_unclear = any("cannot be told apart" in p.message or "not a single value" in p.message
                      or "True/False" in p.message for p in problems[before:])
    client_null = client_ids.codes < 0
    group_null = group_ids.codes < 0 if group_ids is not None else np.zeros(len(frame), dtype=bool)

    # --- session numbers --------------------------------------------------
    sess_col = frame[layout.session]
    row_date = None
    if _special_kind(sess_col) == "dates (datetime values)":
        sess_float, sess_ok, sessions_valid, row_date = _date_sessions(
            problems, sess_col, layout, index, client_col, client_ids.codes)
    else:
        sess_float, sess_ok, sessions_valid = _session_problems(problems, sess_col, layout.session, index, client_col)
        if layout.session_every is not None and sessions_valid:  # text that is not numbers: said above
            problems.append(Problem("parameter 'session_every'", f"numbers sessions from their dates, but column "
                                    f"{layout.session!r} does not hold dates; drop session_every (--session-every)"))

    # --- values -------------------------------------------------------------
    value_arrays: dict[str, np.ndarray] = {}
    ranges = dict(layout.ranges)
    missing_counts: dict[float, int] = {c: 0 for c in layout.missing}
    for name, col in layout.values:
        if name in value_arrays:
            continue
        value_arrays[name] = _value_problems(
            problems, frame[col], col, ranges.get(name), index, client_col, sess_col, layout.value_word,
            layout.missing, missing_counts,
        )

    ids_ok = not (client_null.any() or group_null.any())
    if not ids_ok or not sessions_valid:
        # Still report duplicates among the rows whose ids and session are fine.
        usable = ~client_null & ~group_null & sess_ok
        parts = {"c": client_col.to_numpy()[usable], "s": sess_float[usable]}
        if group_col is not None:
            parts["g"] = group_col.to_numpy()[usable]
        dup = np.zeros(len(frame), dtype=bool)
        dup[np.flatnonzero(usable)] = pd.DataFrame(parts).duplicated(keep=False).to_numpy()
        if dup.any():
            problems.append(_duplicate_problem(dup, index, client_col, sess_col, group_col, layout))
        return None, problems

    # --- units, sort, then duplicates ------------------------------------------
    if ids_unclear:  # ids that cannot be told apart: no duplicates can be counted
        return None, problems
    sess = sess_float.astype(np.int64)  # a copy: never shares memory with the input
    codes, unit_clients, unit_groups = _unit_codes(client_ids, group_ids)
    order = _sort_order(codes, sess)
    codes_s, sess_s = (codes, sess) if order is None else (codes[order], sess[order])
    dup_next = (codes_s[1:] == codes_s[:-1]) & (sess_s[1:] == sess_s[:-1])
    if dup_next.any():
        dup_sorted = np.zeros(codes_s.size, dtype=bool)
        dup_sorted[1:] |= dup_next
        dup_sorted[:-1] |= dup_next
        dup_rows = dup_sorted if order is None else _unsort(dup_sorted, order)
        if row_date is None:
            problems.append(_duplicate_problem(dup_rows, index, client_col, sess_col, group_col, layout))
        else:
            problems.append(_date_duplicate_problem(dup_rows, index, client_col, row_date, sess_float, layout))
    covariates = _covariates(problems, frame, layout, codes_s, order, len(unit_clients), unit_clients)
    if problems:
        return None, problems

    values_s = {k: (v.copy() if order is None else v[order]) for k, v in value_arrays.items()}
    panel = _build_panel(layout, values_s, codes_s, sess_s, unit_clients, unit_groups, client_col, order)
    date_s = None if row_date is None else (row_date if order is None else row_date[order])
    stats: dict[str, Any] = {"n_rows": len(frame), "missing_counts": missing_counts}
    if layout.score is not None and panel.obs_values.size:
        stats["low"], stats["high"] = float(panel.obs_values.min()), float(panel.obs_values.max())
    if layout.check_codes:
        stats["scan"] = _scan(panel, order, index, client_col, sess_col, frame[layout.score_column or layout.session])
    return dataclasses.replace(panel, covariates=covariates, row_date=date_s, stats=stats), []


def _scan(panel: Panel, order, index, client_col, sess_col, value_col):
    """The missing-code statistics of a panel's observed scores (see :mod:`alliance_ts.codes`)."""
    from .codes import scan

    sorted_rows = np.flatnonzero(panel.row_observed) if not panel.all_observed else None
    obs_rows = np.arange(panel.obs_values.size) if sorted_rows is None else sorted_rows
    position = obs_rows if order is None else order[obs_rows]
    obs_codes = np.repeat(np.arange(panel.n_clients), panel.n_obs)

    def example(i: int) -> str:
        r = int(position[i])
        label = index[r]
        label = label.item() if isinstance(label, np.generic) else label
        return (f"row {label!r} (client {plain(client_col.iloc[r])}, session {plain(sess_col.iloc[r])}, "
                f"value {plain(value_col.iloc[r])})")

    return scan(panel.obs_values, obs_codes, example, position)


def _covariates(problems, frame, layout: Layout, codes_s, order, n_units, unit_clients) -> pd.DataFrame | None:
    """One row per unit with the value of each kept column (constant within client), or None."""
    if not layout.keep:
        return None
    out = {}
    starts = np.searchsorted(codes_s, np.arange(n_units))
    for col in layout.keep:
        series = frame[col]
        values = series.to_numpy() if order is None else series.to_numpy()[order]
        codes, uniques = pd.factorize(pd.Series(values, dtype=series.dtype), use_na_sentinel=True)
        present = codes >= 0
        big = np.where(present, codes, -1)
        small = np.where(present, codes, np.iinfo(np.int64).max)
        hi = np.maximum.reduceat(big, starts) if codes.size else big
        lo = np.minimum.reduceat(small, starts) if codes.size else small
        varies = (hi >= 0) & (lo != hi)
        if varies.any():
            shown = []
            for u in np.flatnonzero(varies)[:MAX_EXAMPLES]:
                stop = starts[u + 1] if u + 1 < n_units else codes.size
                vals = [plain(v) for v in pd.unique(pd.Series(values[starts[u]:stop]).dropna())[:3]]
                shown.append(f"client {plain(unit_clients[u])}: {', '.join(vals)}")
            problems.append(Problem(
                f"column {col!r}",
                f"holds more than one value within {int(varies.sum())} client(s), so it cannot be kept as a client "
                f"covariate (a column to keep must hold one value per client; missing cells are fine)",
                tuple(shown),
            ))
            continue
        first = np.where(hi >= 0, hi, -1)  # the code of the client's one value; -1: all missing
        if len(uniques) == 0:
            out[col] = series.iloc[:0].reindex(range(n_units)).reset_index(drop=True)
            continue
        taken = pd.Series(uniques.take(np.maximum(first, 0)))
        out[col] = taken if bool((first >= 0).all()) else taken.where(pd.Series(first >= 0))
    return pd.DataFrame(out)


def _build_panel(layout, values_s, codes_s, sess_s, unit_clients, unit_groups, client_col, order) -> Panel:
    if layout.score is not None:
        score_s = values_s[layout.score]
        observed = ~np.isnan(score_s)
        items: dict[str, np.ndarray] = {}
    else:
        items = values_s
        observed = np.zeros(codes_s.size, dtype=bool)
        for v in items.values():
            observed |= ~np.isnan(v)
        score_s = np.full(codes_s.size, np.nan)  # filled by the rule's session score
    n_units = len(unit_clients)
    if observed.all():
        # every row is observed: the observed arrays are the row arrays
        obs_values, obs_sessions, obs_codes = score_s, sess_s, codes_s
        obs_items = dict(items)
    else:
        obs_values, obs_sessions, obs_codes = score_s[observed], sess_s[observed], codes_s[observed]
        obs_items = {k: v[observed] for k, v in items.items()}
    obs_offsets = np.searchsorted(obs_codes, np.arange(n_units + 1)).astype(np.int64)
    return Panel(
        client_ids=unit_clients,
        row_client=codes_s,
        row_session=sess_s,
        row_score=score_s,
        obs_values=obs_values,
        obs_sessions=obs_sessions,
        obs_offsets=obs_offsets,
        # A shallow pandas copy: copy-on-write keeps the caller's frame and
        # the result tables independent without copying the ids.
        row_client_values=client_col.reset_index(drop=True) if order is None and unit_groups is None else None,
        group_ids=unit_groups,
        row_items=items,
        obs_items=obs_items,
        observed_rows=None if observed.all() else observed,
    )


# --------------------------------------------------------------------------
# columns


def _column_problems(frame: pd.DataFrame, layout: Layout) -> list[Problem]:
    problems: list[Problem] = []
    needed = layout.columns
    roles = {layout.client: "client", layout.session: "session"}
    if layout.group is not None:
        roles[layout.group] = layout.group_name
    clash = [c for c, n in _counts([layout.client, layout.session, *([layout.group] if layout.group else [])]).items()
             if n > 1]
    value_cols = {c for _, c in layout.values}
    clash += [c for c in value_cols if c in roles]
    if clash:
        problems.append(
            Problem("columns", "the client, session"
                    + (f", {layout.group_name}" if layout.group else "")
                    + " and value columns must be different columns; used twice: "
                    + ", ".join(repr(c) for c in dict.fromkeys(clash)))
        )
    cols = list(frame.columns)
    missing = [c for c in needed if c not in cols]
    if missing:
        available = ", ".join(repr(c) for c in cols[:20]) + (", ..." if len(cols) > 20 else "")
        hint = "; ".join(layout.hints) or (
            "name yours with client=, session=, score=; on the command line --client, --session, --score"
        )
        if any(c in layout.keep for c in missing):
            hint += "; covariates to keep are named with keep= (--keep)"
        problems.append(
            Problem(
                "columns",
                f"{len(missing)} required column(s) not found: " + ", ".join(repr(c) for c in missing)
                + "; available: " + (available or "(none)") + f" ({hint})",
            )
        )
    repeated = {c: n for c, n in _counts(cols).items() if n > 1 and c in needed}
    for col, n in repeated.items():
        positions = [i + 1 for i, c in enumerate(cols) if c == col]
        problems.append(
            Problem(f"column {col!r}", f"appears {n} times in the table (columns {', '.join(map(str, positions))}); "
                    "rename or drop the copies so that it names one column")
        )
    return problems


def _counts(values: list[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for v in values:
        try:
            out[v] = out.get(v, 0) + 1
        except TypeError:  # an unhashable column label
            continue
    return out


# --------------------------------------------------------------------------
# ids


@dataclass(frozen=True)
class _Ids:
    """Codes of an id column in sorted id order (-1 where missing) and the sorted unique ids."""

    codes: np.ndarray
    uniques: pd.Index


def _ids(
    problems: list[Problem],
    col: pd.Series,
    name: str,
    what: str,
    index: pd.Index,
    client_col: pd.Series | None = None,
) -> _Ids:
    """Type and code an id column (client or group), appending its problems.

    Ids keep their type. Missing markers and empty (or blank) text are
    missing ids. A column mixing numbers and text is sorted numbers first;
    ids that differ in type but print the same (``1`` and ``"1"``) cannot be
    told apart in a written table and are an input error. Type checks run on
    the unique ids, not on every row.
    """
    where = f"column {name!r}"
    n = len(col)
    if pd.api.types.is_bool_dtype(col.dtype):
        problems.append(Problem(where, f"holds True/False values, not {what}s"))
        return _Ids(np.zeros(n, dtype=np.int64), pd.Index([0]))
    values = None
    if col.dtype.kind in "iuf" and n and not bool(col.isna().any()):
        numpy_dtype = getattr(col.dtype, "numpy_dtype", None)  # nullable integers: their numpy type
        values = col.to_numpy(dtype=numpy_dtype)
        if not bool(np.all(values[1:] >= values[:-1])):
            values = None
    if values is not None:
        # plain numbers already in ascending order, none missing (the common case
        # for large files): the codes come from the change points, without hashing
        change = values[1:] != values[:-1]
        codes = np.zeros(values.size, dtype=np.int64)
        np.cumsum(change, out=codes[1:])
        starts = np.r_[0, np.flatnonzero(change) + 1]
        return _Ids(codes, pd.Index(values[starts], dtype=col.dtype))
    try:
        codes, uniques = pd.factorize(col, sort=False, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts)
        bad = np.fromiter((not _hashable(v) for v in col.to_numpy(dtype=object)), dtype=bool, count=n)
        problems.append(_problem_rows(where, f"with a {what} that is not a single value", bad, index,
                                      client_col, None, col))
        return _Ids(np.where(bad, -1, 0).astype(np.int64), pd.Index([0]))
    codes = codes.astype(np.int64, copy=False)
    uniques = pd.Index(uniques)
    if uniques.dtype == object or pd.api.types.is_string_dtype(uniques.dtype):
        # vectorised over the unique ids (a million text ids is common); non-text ids are never blank
        try:
            blank = (pd.Series(uniques, dtype=object).str.strip() == "").fillna(False).to_numpy(dtype=bool)
        except AttributeError:  # an object column holding no text at all (numbers beside missing markers)
            blank = np.zeros(len(uniques), dtype=bool)
        if blank.any():
            keep = np.flatnonzero(~blank)
            remap = np.full(len(uniques), -1, dtype=np.int64)
            remap[keep] = np.arange(keep.size)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
            uniques = uniques.take(keep)
    if uniques.dtype == object:
        text = [str(v) for v in uniques]
        if len(set(text)) < len(text):
            seen: dict[str, Any] = {}
            clashes: list[str] = []
            for v, t in zip(uniques, text):
                if t in seen and len(clashes) < MAX_EXAMPLES:
                    clashes.append(f"{seen[t]!r} and {v!r}")
                seen.setdefault(t, v)
            problems.append(Problem(
                where,
                f"{what}s of different types print the same, so they cannot be told apart in the "
                f"results: {'; '.join(clashes)}; make every id text (or every id a number)",
            ))
    missing = codes < 0
    if missing.any():
        problems.append(_problem_rows(where, f"with a missing {what}", missing, index, client_col, None, None))
    order = _id_order(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = np.where(missing, -1, rank[np.maximum(codes, 0)]) if len(order) else codes
    return _Ids(codes.astype(np.int64, copy=False), uniques.take(order))


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _unit_codes(clients: _Ids, groups: _Ids | None) -> tuple[np.ndarray, pd.Index, pd.Index | None]:
    """Integer codes of the units (client, or client x group) in sorted order."""
    if groups is None:
        return clients.codes, clients.uniques, None
    width = max(len(groups.uniques), 1)
    combined = clients.codes * width + groups.codes
    ucodes, inverse = np.unique(combined, return_inverse=True)
    return (
        inverse.astype(np.int64).reshape(-1),
        clients.uniques.take(ucodes // width),
        groups.uniques.take(ucodes % width),
    )


def _id_order(uniques: pd.Index) -> np.ndarray:
    """Sorting permutation of unique ids; numbers before text when a column mixes them."""
    try:
        return np.asarray(uniques.argsort(), dtype=np.int64)
    except TypeError:
        keys = [(0, v, "") if isinstance(v, (int, float, np.number)) else (1, 0, str(v)) for v in uniques]
        return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


# --------------------------------------------------------------------------
# sessions and values


def _session_problems(problems, sess_col, name, index, client_col):
    """Float session numbers, the mask of usable ones, and whether all are valid."""
    n = len(sess_col)
    where = f"column {name!r}"
    kind = _special_kind(sess_col)
    if kind is not None:
        problems.append(
            Problem(where, f"holds {kind}, not session numbers; number each client's sessions 1, 2, 3, ... "
                    f"(for example {'from the dates in order' if kind.startswith('date') else 'in time order'})")
        )
        return np.full(n, np.nan), np.zeros(n, dtype=bool), False
    if pd.api.types.is_integer_dtype(sess_col.dtype) and not isinstance(sess_col.dtype,
                                                                        pd.api.extensions.ExtensionDtype):
        # plain numpy integers: nothing can be missing or fractional
        sess_float = sess_col.to_numpy().astype(np.float64) if np.abs(sess_col.to_numpy()).max() <= 2**52 else None
        if sess_float is not None:
            return sess_float, np.ones(n, dtype=bool), True
    sess_float, bad_value = _numeric(sess_col)
    if bad_value.any():
        looks_dated = sess_col[bad_value].head(50).astype(str).str.fullmatch(r"\s*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}.*")
        hint = (" (dates? convert them with pandas.to_datetime(..., format='%d.%m.%Y'); on the command line "
                "--date-format %d.%m.%Y)" if bool(looks_dated.all()) else "")
        problems.append(_problem_rows(where, f"with a non-numeric session number{hint}", bad_value, index,
                                      client_col, None, sess_col))
    missing = np.isnan(sess_float) & ~bad_value
    if missing.any():
        problems.append(_problem_rows(where, "with a missing session number", missing, index, client_col, None, None))
    finite = np.isfinite(sess_float)
    with np.errstate(invalid="ignore"):
        non_int = (np.isinf(sess_float)) | (finite & ((np.floor(sess_float) != sess_float)
                                                      | (np.abs(sess_float) > 2**52)))
    if non_int.any():
        problems.append(_problem_rows(where, "with a session number that is not a whole number", non_int, index,
                                      client_col, None, sess_col))
    ok = finite & ~non_int
    return sess_float, ok, not (bad_value.any() or missing.any() or non_int.any())


def _date_sessions(problems, sess_col, layout: Layout, index, client_col, client_codes):
    """Session numbers from session dates: by date order within each client, or by ``session_every`` steps.

    Returns the float session numbers, the mask of usable rows, whether all
    are valid, and the dates (datetime64[ns], input order).
    """
    n = len(sess_col)
    where = f"column {layout.session!r}"
    try:
        dates = pd.to_datetime(sess_col)
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
        date_values = dates.to_numpy(dtype="datetime64[ns]")
    except (TypeError, ValueError, OverflowError) as err:
        problems.append(Problem(where, f"holds dates that cannot be read as one date type ({err})"))
        return np.full(n, np.nan), np.zeros(n, dtype=bool), False, None
    missing = np.isnat(date_values)
    if missing.any():
        problems.append(_problem_rows(where, "with a missing session date", missing, index, client_col, None, None))
    usable = ~missing & (client_codes >= 0)
    numbers = np.full(n, np.nan)
    if usable.any():
        rows = np.flatnonzero(usable)
        ns = date_values[rows].astype(np.int64)
        codes = client_codes[rows]
        order = np.lexsort((ns, codes))
        c_s, d_s = codes[order], ns[order]
        new_client = np.r_[True, c_s[1:] != c_s[:-1]]
        if layout.session_every is None:
            # dense rank of the date within the client (the same date twice: a duplicate session)
            step = np.r_[1, ((d_s[1:] != d_s[:-1]) | new_client[1:]).astype(np.int64)]
            run = np.cumsum(step)
            first_run = np.maximum.accumulate(np.where(new_client, run, 0))
            num = (run - first_run + 1).astype(float)
        else:
            every = int(pd.Timedelta(layout.session_every).value)
            first_date = np.maximum.accumulate(np.where(new_client, np.arange(d_s.size), 0))
            num = np.floor((d_s - d_s[first_date]) / every + 0.5) + 1
        sorted_numbers = np.empty(rows.size)
        sorted_numbers[order] = num
        numbers[rows] = sorted_numbers
    return numbers, usable, not missing.any(), date_values


def _value_problems(problems, col, name, score_range, index, client_col, sess_col, word, missing=(),
                    missing_counts=None) -> np.ndarray:
    """Float values of a value column (NaN when missing), appending its problems."""
    where = f"column {name!r}"
    kind = _special_kind(col)
    if kind is not None:
        problems.append(Problem(where, f"holds {kind}, not {word}s"))
        return np.full(len(col), np.nan)
    values, bad = _numeric(col)
    if missing:
        from .codes import recode

        values, counts = recode(values, missing)
        if missing_counts is not None:
            for code, n in counts.items():
                missing_counts[code] = missing_counts.get(code, 0) + n
    if bad.any():
        hint = _decimal_hint(col, bad)
        problems.append(_problem_rows(where, f"with a non-numeric {word}{hint}", bad, index, client_col, sess_col, col))
    inf = np.isinf(values)
    if inf.any():
        problems.append(_problem_rows(where, f"with an infinite {word}", inf, index, client_col, sess_col, col))
    with np.errstate(invalid="ignore"):
        huge = np.isfinite(values) & (np.abs(values) > HUGE)
    if huge.any():
        problems.append(_problem_rows(where, f"with a {word} too large to compute with (larger than {HUGE:g} in "
                                      "size)", huge, index, client_col, sess_col, col))
    if score_range is not None:
        with np.errstate(invalid="ignore"):
            outside = np.isfinite(values) & ((values < score_range.low) | (values > score_range.high))
        if outside.any():
            named = "" if score_range.label.startswith("(") else f"{score_range.label} "
            from .codes import code_like

            codes = sorted({float(v) for v in np.unique(values[outside]) if code_like(float(v))})
            shown = ",".join(str(int(c)) for c in codes[:5])
            hint = (f" (missing-data codes? declare them with missing=[{shown}]; on the command line "
                    f"--missing={shown})" if codes else "")
            problems.append(
                _problem_rows(
                    where,
                    f"with a {word} outside the {'scale ' if word == 'score' else 'range '}{named}"
                    f"[{score_range.low:g}, {score_range.high:g}]{hint}",
                    outside, index, client_col, sess_col, col,
                )
            )
    return values


def _special_kind(col: pd.Series) -> str | None:
    """'dates', 'durations', 'complex numbers', ... for dtypes that are not plain numbers."""
    dtype = col.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "dates (datetime values)"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "durations (timedelta values)"
    if pd.api.types.is_complex_dtype(dtype):
        return "complex numbers"
    if dtype == np.dtype(object) and len(col):
        head = col.dropna().head(1000)
        if len(head) and all(isinstance(v, (pd.Timestamp, np.datetime64)) or _is_date(v) for v in head):
            return "dates (datetime values)"
        if len(head) and all(isinstance(v, (pd.Timedelta, np.timedelta64)) or _is_duration(v) for v in head):
            return "durations (timedelta values)"
    return None


def _is_date(v: Any) -> bool:
    import datetime as dt

    return isinstance(v, (dt.date, dt.datetime))


def _is_duration(v: Any) -> bool:
    import datetime as dt

    return isinstance(v, dt.timedelta)


def _numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values of a column and a mask of the entries that are not real numbers.

    Numbers (including numeric strings such as ``"4.5"``) convert; missing
    markers (None, NaN, pandas NA) become NaN and are *not* flagged; anything
    else (``"n/a"``, ``"x"``, booleans, complex numbers, dates) is flagged.
    """
    if pd.api.types.is_bool_dtype(col.dtype):
        return np.full(len(col), np.nan), col.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_complex_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(col), dtype=bool)
    if col.dtype == object:
        odd = np.fromiter(
            (isinstance(v, (bool, np.bool_, complex, np.complexfloating)) or _is_date(v) or _is_duration(v)
             or isinstance(v, (pd.Timestamp, pd.Timedelta, np.datetime64, np.timedelta64)) for v in col.to_numpy()),
            dtype=bool, count=len(col),
        )
    else:
        odd = np.zeros(len(col), dtype=bool)
    source = col.where(~odd) if odd.any() else col
    try:
        converted = pd.to_numeric(source, errors="coerce")
        if pd.api.types.is_complex_dtype(converted.dtype):  # complex text such as "1+2j"
            converted = pd.Series(np.where(np.imag(converted.to_numpy()) == 0, np.real(converted.to_numpy()), np.nan))
        values = converted.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        values = np.array([_to_float(v) for v in source.to_numpy()], dtype=float)
    bad = (np.isnan(values) & col.notna().to_numpy()) | odd
    values = np.where(odd, np.nan, values)
    return values, bad


def _to_float(v: Any) -> float:
    try:
        return float(v) if not isinstance(v, (bool, np.bool_)) else math.nan
    except (TypeError, ValueError):
        return math.nan


def _decimal_hint(col: pd.Series, bad: np.ndarray) -> str:
    """A hint when the non-numeric values are numbers with a decimal comma ("4,5")."""
    sample = col[bad].head(50)
    if len(sample) and all(isinstance(v, str) and re.fullmatch(r"\s*-?\d+,\d+\s*", v) for v in sample):
        return " (numbers written with a decimal comma: pass decimal=',' when reading; on the command line --decimal ,)"
    return ""


# --------------------------------------------------------------------------
# sorting, duplicates and messages


def _sort_order(codes: np.ndarray, sess: np.ndarray) -> np.ndarray | None:
    """Permutation sorting rows by (code, session); None if already sorted."""
    if codes.size < 2:
        return None
    dc = codes[1:] - codes[:-1]
    if np.all((dc > 0) | ((dc == 0) & (sess[1:] >= sess[:-1]))):
        return None
    smin = int(sess.min())
    span = int(sess.max()) - smin + 1
    n_codes = int(codes.max()) + 1
    if span * n_codes < 2**62:
        return np.argsort(codes * span + (sess - smin), kind="stable")
    return np.lexsort((sess, codes))


def _date_duplicate_problem(dup_rows, index, client_col, row_date, numbers, layout: Layout) -> Problem:
    """Rows whose session dates give the same session number (the same date, or the same step)."""
    n_pairs = len(pd.DataFrame({"c": client_col.to_numpy()[dup_rows], "s": numbers[dup_rows]}).drop_duplicates())
    text = pd.Series([_Raw(f"{int(k)} ({_date_text(d)})") for d, k in zip(row_date, numbers)], index=client_col.index,
                     dtype=object)
    if layout.session_every is None:
        what = "share their client and session date with another row"
    else:
        from .pipeline import _duration_text

        what = (f"fall in the same {_duration_text(pd.Timedelta(layout.session_every))} step from their client's "
                "first date as another row, so they would be the same session")
    return _problem_rows(
        f"columns {layout.client!r} x {layout.session!r}",
        f"{what} ({n_pairs} duplicated session(s))",
        dup_rows, index, client_col, text, None,
    )


class _Raw(str):
    """Text shown in a message without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _date_text(value: Any) -> str:
    """A date without a midnight time (2024-03-01), or with its time."""
    stamp = pd.Timestamp(value)
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat(sep=" ")


def _duplicate_problem(dup_rows, index, client_col, session_col, group_col, layout: Layout) -> Problem:
    parts = {"c": client_col.to_numpy()[dup_rows], "s": session_col.to_numpy()[dup_rows]}
    if group_col is not None:
        parts["g"] = group_col.to_numpy()[dup_rows]
    n_pairs = len(pd.DataFrame(parts).drop_duplicates())
    cols = [layout.client] + ([layout.group] if layout.group is not None else []) + [layout.session]
    what = " x ".join(repr(c) for c in cols)
    return _problem_rows(
        f"columns {what}",
        f"share their {' and '.join(['client'] + ([layout.group_name] if layout.group else []) + ['session'])} "
        f"with another row ({n_pairs} duplicated {'pair' if group_col is None else 'combination'}(s))",
        dup_rows, index, client_col, session_col, None,
    )


def _unsort(mask_sorted: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.zeros(mask_sorted.size, dtype=bool)
    out[order] = mask_sorted
    return out


def _problem_rows(
    where: str,
    what: str,
    mask: np.ndarray,
    index: pd.Index,
    client_col: pd.Series | None,
    session_col: pd.Series | None,
    value_col: pd.Series | None,
) -> Problem:
    """A Problem naming the count and the first few offending rows."""
    count = int(np.count_nonzero(mask))
    rows = np.flatnonzero(mask)[:MAX_EXAMPLES]
    examples = []
    for r in rows:
        label = index[r]
        parts = [f"row {(label.item() if isinstance(label, np.generic) else label)!r}"]
        if client_col is not None:
            parts.append(f"client {plain(client_col.iloc[r])}")
        if session_col is not None:
            parts.append(f"session {plain(session_col.iloc[r])}")
        if value_col is not None:
            parts.append(f"value {plain(value_col.iloc[r])}")
        examples.append(" ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else ""))
    plural = "s" if count != 1 else ""
    return Problem(where, f"{count} row{plural} {what}", tuple(examples))


def plain(value: object) -> str:
    """A value as a message shows it: text quoted, whole floats without ``.0``, missing as <missing>."""
    try:
        missing = value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))
    except (TypeError, ValueError):
        missing = False
    if missing:
        return "<missing>"
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(float(value)) < 1e15:
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}" if abs(float(value)) >= 1e15 else repr(float(value))
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def merge_problems(problems: list[Problem]) -> list[Problem]:
    """Merge the same problem found in several pieces: add the counts, keep the 5 first rows as examples.

    The leading row count and a count in parentheses (``(3 duplicated
    pair(s))``) are added up; the rest of the message must be the same.
    """
    merged: dict[tuple[str, str], list] = {}
    inner = re.compile(r"\((\d+) ")
    for p in problems:
        m = re.match(r"^(\d+) (rows? )(.*)$", p.message)
        text = m.group(3) if m else p.message
        n_inner = [int(k) for k in inner.findall(text)]
        key = (p.where, inner.sub("(# ", text))
        if key in merged:
            merged[key][0] += int(m.group(1)) if m else 0
            merged[key][1] += list(p.examples)
            merged[key][3] = [a + b for a, b in zip(merged[key][3], n_inner)]
        else:
            merged[key] = [int(m.group(1)) if m else 0, list(p.examples), bool(m), n_inner, text]
    out = []
    for (where, _), (count, examples, counted, n_inner, text) in merged.items():
        text = _fill_counts(inner, text, n_inner)
        message = f"{count} row{'s' if count != 1 else ''} {text}" if counted else text
        out.append(Problem(where, message, tuple(sorted(dict.fromkeys(examples), key=_row_number)[:MAX_EXAMPLES])))
    return out


def _fill_counts(pattern: re.Pattern, text: str, counts: list[int]) -> str:
    """``text`` with each match of ``pattern`` (``"(12 "``) holding the next of ``counts``."""
    numbers = iter(counts)
    return pattern.sub(lambda _: f"({next(numbers)} ", text)


def _row_number(example: str) -> float:
    """Sort key of an example: its row number ("row 12 (...)"), others last in their order."""
    m = re.match(r"^row (\d+)\b", example)
    return int(m.group(1)) if m else math.inf
