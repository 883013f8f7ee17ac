"""Segment-level codes read into one row per session.

Observers code a session in segments (commonly five minutes): one row per
client x session x segment, with counts or presence marks of rupture markers
and resolution strategies, significance ratings per segment, and global
ratings that belong to the whole session. A rule that reads such a table
declares a :class:`Segments` in its :meth:`~alliance_ts.rules.Rule.reads`;
validation (:func:`alliance_ts.validation.validate`) then checks the
segment rows -- every problem at once, naming input rows -- and hands the
rest of the pipeline one row per session, so that coded sessions, missed
sessions, coders and chunks behave exactly as for questionnaire answers.

How a session row is made from its segment rows:

- a *coded* segment is a row with at least one code cell (a marker or a
  strategy) filled in; in a coded segment an empty code cell counts as
  "not marked" (0), because coders leave absent markers blank; rows with
  every code cell empty are not coded (they count for nothing), and a
  significance rating on such a row, or a session-level rating of a
  session without any coded segment, is an input error (was nothing seen,
  or was it not coded?);
- each *sum* (``withdrawal``, ``confrontation``, ``resolution``) adds its
  columns over the coded segments (presence marks 0/1 or counts);
- ``segments`` is the number of coded segments; a session with none is not
  observed ("not coded", never "no rupture");
- each *peak* (a significance rating per segment) is the highest rating of
  the session's coded segments;
- each *constant* (a global rating of the session) must hold one value per
  session (written on every segment row or on one of them);
- the *late* count adds the resolution strategies coded in the last segment
  with a rupture marker or after it (NaN for sessions without a marker).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import Problem

if TYPE_CHECKING:
    from .panel import Panel
    from .validation import Layout

__all__ = ["Segments", "validate_segments"]


@dataclass(frozen=True)
class Segments:
    """How segment rows become one row per session.

    Attributes
    ----------
    column : str or None
        Column of the segment number within the session (order of the
        segments); None when each row is already a whole session.
    sums : tuple of (name, tuple of str)
        Counts added over columns and coded segments, by output name.
    peaks : tuple of (name, str)
        Ratings whose highest value over the session's segments is kept.
    constants : tuple of (name, str)
        Session-level ratings: one value per session.
    rating_range : (float, float)
        Lowest and highest valid rating (peaks and constants).
    markers : tuple of str
        The sums that are rupture markers (they define the last marked
        segment for ``late``).
    late : (name, str) or None
        Output name and source sum of the count of strategies at or after
        the last marked segment.
    coded : str
        Output name of the number of coded segments.
    """

    column: str | None
    sums: tuple[tuple[str, tuple[str, ...]], ...]
    peaks: tuple[tuple[str, str], ...] = ()
    constants: tuple[tuple[str, str], ...] = ()
    rating_range: tuple[float, float] = (1.0, 5.0)
    markers: tuple[str, ...] = ()
    late: tuple[str, str] | None = None
    coded: str = "segments"

    @property
    def columns(self) -> list[str]:
        """Every input column read, without repeats (segment column first)."""
        cols = [self.column] if self.column is not None else []
        for _, group in self.sums:
            cols += list(group)
        cols += [c for _, c in self.peaks] + [c for _, c in self.constants]
        return list(dict.fromkeys(cols))

    @property
    def names(self) -> list[str]:
        """The session-level values made, in order."""
        out = [name for name, _ in self.sums]
        if self.late is not None:
            out.append(self.late[0])
        out.append(self.coded)
        out += [name for name, _ in self.peaks] + [name for name, _ in self.constants]
        return out


def validate_segments(frame: pd.DataFrame, layout: Layout) -> tuple[Panel | None, list[Problem]]:
    """Validate segment rows and build the panel of their sessions (``validate`` for segment layouts)."""
    from .validation import _column_problems, _problem_rows, _value_problems, validate

    spec: Segments = layout.segments
    raw = dataclasses.replace(layout, segments=None, values=tuple((c, c) for c in spec.columns))
    problems = _column_problems(frame, raw)
    if problems:
        return None, problems
    if len(frame) == 0:
        return None, [Problem("data", "the table has no rows")]
    index = frame.index
    client_col, sess_col = frame[layout.client], frame[layout.session]
    missing_counts: dict[float, int] = {c: 0 for c in layout.missing}

    def read(col: str, word: str) -> np.ndarray:
        series = frame[col]
        if pd.api.types.is_bool_dtype(series.dtype):  # presence marks written True/False
            series = series.astype("Float64")
        elif series.dtype == object:  # an empty text cell is an empty cell
            series = series.mask(series.map(lambda v: isinstance(v, str) and not v.strip()))
        return _value_problems(problems, series, col, None, index, client_col, sess_col, word,
                               layout.missing, missing_counts)

    # --- the cells -------------------------------------------------------------
    counts: dict[str, np.ndarray] = {}
    for _, group in spec.sums:
        for col in group:
            if col in counts:
                continue
            v = read(col, "marker count")
            with np.errstate(invalid="ignore"):
                negative = v < 0
                fraction = np.isfinite(v) & ~negative & (v != np.round(v))
            if negative.any():
                problems.append(_problem_rows(f"column {col!r}", "with a negative count (a marker or strategy is "
                                              "marked 0/1 or counted 0, 1, 2, ...)", negative, index, client_col,
                                              sess_col, frame[col]))
            if fraction.any():
                problems.append(_problem_rows(f"column {col!r}", "with a count that is not a whole number",
                                              fraction, index, client_col, sess_col, frame[col]))
            counts[col] = np.where(negative | fraction, np.nan, v)
    low, high = spec.rating_range
    ratings: dict[str, np.ndarray] = {}
    for _, col in (*spec.peaks, *spec.constants):
        if col in ratings:
            continue
        v = read(col, "rating")
        with np.errstate(invalid="ignore"):
            outside = np.isfinite(v) & ((v < low) | (v > high))
        if outside.any():
            problems.append(_problem_rows(f"column {col!r}", f"with a rating outside the range [{low:g}, {high:g}] "
                                          "(set the rule's rating_low= and rating_high=)", outside, index,
                                          client_col, sess_col, frame[col]))
        ratings[col] = np.where(outside, np.nan, v)

    marker_cols = [c for _, group in spec.sums for c in group]
    coded = np.zeros(len(frame), dtype=bool)
    for col in dict.fromkeys(marker_cols):
        coded |= ~np.isnan(counts[col])
    row_sums = {name: np.where(coded, sum(np.nan_to_num(counts[c]) for c in group), np.nan)
                for name, group in spec.sums}

    keys = [layout.client, *([layout.group] if layout.group is not None else []), layout.session]
    seg: np.ndarray | None = None
    if spec.column is not None:
        seg = read(spec.column, "segment number")
        with np.errstate(invalid="ignore"):
            unnumbered = coded & frame[spec.column].isna().to_numpy()  # (text that is not a number: said above)
            fraction = np.isfinite(seg) & (seg != np.round(seg))
        if unnumbered.any():
            problems.append(_problem_rows(f"column {spec.column!r}", "with codes but no segment number",
                                          unnumbered, index, client_col, sess_col, None))
        if fraction.any():
            problems.append(_problem_rows(f"column {spec.column!r}", "with a segment number that is not a whole "
                                          "number", fraction, index, client_col, sess_col, frame[spec.column]))
        numbered = ~np.isnan(seg)
        dup = np.zeros(len(frame), dtype=bool)
        parts = {k: frame[k].to_numpy()[numbered] for k in keys}
        dup[np.flatnonzero(numbered)] = pd.DataFrame({**parts, "_seg": seg[numbered]}).duplicated(keep=False)
        if dup.any():
            what = " x ".join(repr(k) for k in [*keys, spec.column])
            problems.append(_problem_rows(f"columns {what}", "repeat a segment of the same session (each segment "
                                          "is coded once per coder)", dup, index, client_col, sess_col, None))

    # --- one row per session ------------------------------------------------------
    group_of: np.ndarray
    if spec.column is None:
        group_of = np.arange(len(frame))
        first = group_of
    else:
        group_of = frame[keys].groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
        first = np.unique(group_of, return_index=True)[1]
    n_groups = first.size
    for name, col in spec.constants:
        values = ratings[col]
        if spec.column is None:
            continue
        s = pd.Series(values)
        spread = s.groupby(group_of).transform("max") - s.groupby(group_of).transform("min")
        varies = spread.to_numpy() > 0
        if varies.any():
            problems.append(_problem_rows(
                f"column {col!r}",
                f"hold different {name} ratings within {np.unique(group_of[varies]).size} session(s) (a session-level "
                "rating is written on every segment row of its session or on one row)",
                varies, index, client_col, sess_col, frame[col]))

    out: dict[str, Any] = {k: frame[k].iloc[first].reset_index(drop=True) for k in keys}
    n_coded = np.bincount(group_of, weights=coded, minlength=n_groups)
    has = n_coded > 0
    rating_cols = list(dict.fromkeys(c for _, c in (*spec.peaks, *spec.constants)))
    rated = np.zeros(len(frame), dtype=bool)
    for _, col in spec.constants:
        rated |= ~np.isnan(ratings[col])
    orphan = rated & ~has[group_of]
    for _, col in spec.peaks:  # a segment's own rating needs that segment's codes
        orphan |= ~np.isnan(ratings[col]) & ~coded
    if orphan.any():
        # a rating of a session or segment whose codes are all empty: "no rupture" or "not coded"? the coder must say
        problems.append(_problem_rows(
            "columns " + ", ".join(map(repr, rating_cols)),
            f"hold ratings of {np.unique(group_of[orphan]).size} session(s) in rows whose code cells are all empty "
            "(a segment or session without codes is not coded); fill in the markers seen (0 when none) or leave "
            "the ratings empty", orphan, index, client_col, sess_col, None))
    for name, _ in spec.sums:
        total = np.bincount(group_of, weights=np.nan_to_num(row_sums[name]), minlength=n_groups)
        out[name] = np.where(has, total, np.nan)
    if spec.late is not None:
        late_name, source = spec.late
        marks = sum(np.nan_to_num(row_sums[m]) for m in spec.markers) if spec.markers else np.zeros(len(frame))
        order_key = seg if seg is not None else np.zeros(len(frame))
        marked_at = np.where(coded & (marks > 0), order_key, -np.inf)
        last_mark = pd.Series(marked_at).groupby(group_of).max().to_numpy()
        with np.errstate(invalid="ignore"):
            late_rows = coded & (order_key >= last_mark[group_of])
        late = np.bincount(group_of, weights=np.where(late_rows, np.nan_to_num(row_sums[source]), 0.0),
                           minlength=n_groups)
        out[late_name] = np.where(np.isfinite(last_mark) & has, late, np.nan)
    out[spec.coded] = np.where(has, n_coded, np.nan)
    for name, col in spec.peaks:
        out[name] = pd.Series(np.where(coded, ratings[col], np.nan)).groupby(group_of).max().to_numpy()
    for name, col in spec.constants:
        out[name] = pd.Series(ratings[col]).groupby(group_of).max().to_numpy()
    for col in layout.keep:
        out[col] = frame[col].iloc[first].reset_index(drop=True)
    sessions = pd.DataFrame(out)
    sessions.index = index[first]

    plain_layout = dataclasses.replace(
        layout, segments=None, values=tuple((n, n) for n in spec.names), ranges=(), missing=(), check_codes=False)
    panel, found = validate(sessions, plain_layout)
    problems += found
    if problems or panel is None:
        return None, problems
    stats = {**panel.stats, "n_rows": len(frame), "missing_counts": missing_counts}
    return dataclasses.replace(panel, stats=stats), []
