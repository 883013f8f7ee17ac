"""The one validator at the boundary.

:func:`read_panel` checks a long table completely before anything is
computed, collects *every* problem (missing columns, non-numeric or infinite
scores, scores outside the scale, missing or non-integer session numbers,
missing client ids, duplicate client x session rows, empty input) and
returns them together, so the caller raises one
:class:`~alliance_ts.errors.InvalidInputError` that lists them all. Each
message names the column, the number of affected rows and example rows
(index label, client, session, value).

Valid clients that cannot be analysed are *not* problems: they are reported
by the caller in ``Detection.clients`` with ``included=False``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .errors import Problem
from .input import as_long_frame
from .panel import Panel
from .scales import resolve_scale

__all__ = ["read_panel"]

MAX_EXAMPLES = 5


def read_panel(
    data: object,
    *,
    client: str,
    session: str,
    score: str,
    scale: object = None,
) -> tuple[Panel | None, list[Problem]]:
    """Validate ``data`` and build a :class:`~alliance_ts.panel.Panel`.

    Returns ``(panel, [])`` or ``(None, problems)``.
    """
    problems: list[Problem] = []
    score_range, scale_msg = resolve_scale(scale)
    if scale_msg:
        problems.append(Problem("parameter 'scale'", scale_msg))

    frame, frame_problems = as_long_frame(data, client, session, score)
    problems += frame_problems
    if frame is None:
        return None, problems

    for name, arg in ((client, "client"), (session, "session"), (score, "score")):
        if not isinstance(name, str) and not np.isscalar(name):
            problems.append(Problem(f"parameter {arg!r}", f"expected a column name, got {name!r}"))
    missing = [c for c in (client, session, score) if c not in frame.columns]
    if missing:
        problems.append(
            Problem(
                "columns",
                f"{len(missing)} required column(s) not found: "
                + ", ".join(repr(c) for c in missing)
                + "; available: "
                + (", ".join(repr(c) for c in list(frame.columns)[:20]) or "(none)")
                + " (name yours with client=, session=, score=; on the command line --client, --session, --score)",
            )
        )
        return None, problems
    if len(set((client, session, score))) < 3:
        problems.append(
            Problem("columns", f"client, session and score must be three different columns, got {client!r}, {session!r}, {score!r}")
        )
        return None, problems
    if len(frame) == 0:
        problems.append(Problem("data", "the table has no rows"))
        return None, problems

    index = frame.index
    client_col = frame[client]
    if isinstance(client_col, pd.DataFrame):
        problems.append(Problem(f"column {client!r}", "appears more than once in the table"))
        return None, problems

    # --- client ids -------------------------------------------------------
    client_null = client_col.isna().to_numpy()
    if client_null.any():
        problems.append(
            _problem_rows(
                f"column {client!r}", "with a missing client id", client_null, index, None, None, None
            )
        )

    # --- session numbers --------------------------------------------------
    sess_col = frame[session]
    if pd.api.types.is_integer_dtype(sess_col.dtype) and not isinstance(sess_col.dtype, pd.api.extensions.ExtensionDtype):
        # plain numpy integers: nothing can be missing or fractional
        sess_float = None
        sess_bad_value = np.zeros(len(frame), dtype=bool)
    else:
        sess_float, sess_bad_value = _numeric(sess_col)
    sess_ok = np.isfinite(sess_float) if sess_float is not None else np.ones(len(frame), dtype=bool)
    if sess_bad_value.any():
        problems.append(
            _problem_rows(
                f"column {session!r}", "with a non-numeric session number", sess_bad_value,
                index, client_col, None, frame[session],
            )
        )
    if sess_float is None:
        sess_int = sess_col.to_numpy()
        sess_float = sess_int  # for the range checks below (all finite)
    sess_missing = (np.isnan(sess_float) & ~sess_bad_value) if sess_float.dtype.kind == "f" else np.zeros(len(frame), dtype=bool)
    if sess_missing.any():
        problems.append(
            _problem_rows(
                f"column {session!r}", "with a missing session number", sess_missing,
                index, client_col, None, None,
            )
        )
    if sess_float.dtype.kind == "f":
        sess_inf = np.isinf(sess_float)
        with np.errstate(invalid="ignore"):
            non_int = sess_ok & (np.floor(sess_float) != sess_float)
            too_big = sess_ok & (np.abs(sess_float) > 2**52)
        non_int |= too_big
    else:
        sess_inf = non_int = np.zeros(len(frame), dtype=bool)
    if sess_inf.any() | non_int.any():
        problems.append(
            _problem_rows(
                f"column {session!r}", "with a session number that is not a whole number",
                sess_inf | non_int, index, client_col, None, frame[session],
            )
        )
    sessions_valid = not (sess_bad_value.any() or sess_missing.any() or sess_inf.any() or non_int.any())

    # --- scores -----------------------------------------------------------
    score_col = frame[score]
    values, score_bad = _numeric(score_col)
    sess_for_msg = frame[session]
    if score_bad.any():
        problems.append(
            _problem_rows(
                f"column {score!r}", "with a non-numeric score", score_bad,
                index, client_col, sess_for_msg, score_col,
            )
        )
    score_inf = np.isinf(values)
    if score_inf.any():
        problems.append(
            _problem_rows(
                f"column {score!r}", "with an infinite score", score_inf,
                index, client_col, sess_for_msg, score_col,
            )
        )
    if score_range is not None:
        with np.errstate(invalid="ignore"):
            outside = np.isfinite(values) & ((values < score_range.low) | (values > score_range.high))
        if outside.any():
            problems.append(
                _problem_rows(
                    f"column {score!r}",
                    f"with a score outside the scale {score_range.label} "
                    f"[{score_range.low:g}, {score_range.high:g}]",
                    outside, index, client_col, sess_for_msg, score_col,
                )
            )

    if client_null.any() or not sessions_valid:
        # Still report duplicates among the rows whose id and session are fine.
        usable = ~client_null & sess_ok & ~non_int
        sub = pd.DataFrame({"c": client_col.to_numpy()[usable], "s": sess_float[usable]})
        dup = np.zeros(len(frame), dtype=bool)
        dup[np.flatnonzero(usable)] = sub.duplicated(keep=False).to_numpy()
        if dup.any():
            problems.append(_duplicate_problem(dup, index, client_col, frame[session], client, session))
        return None, problems

    # --- sort, then duplicates ---------------------------------------------
    sess = sess_float.astype(np.int64)  # a copy: never shares memory with the input
    codes, client_ids = _client_codes(client_col)
    order = _sort_order(codes, sess)
    if order is not None:
        codes_s, sess_s = codes[order], sess[order]
    else:
        codes_s, sess_s = codes, sess
    dup_next = (codes_s[1:] == codes_s[:-1]) & (sess_s[1:] == sess_s[:-1])
    if dup_next.any():
        dup_sorted = np.zeros(codes_s.size, dtype=bool)
        dup_sorted[1:] |= dup_next
        dup_sorted[:-1] |= dup_next
        dup_rows = dup_sorted if order is None else _unsort(dup_sorted, order)
        problems.append(_duplicate_problem(dup_rows, index, client_col, frame[session], client, session))
    if problems:
        return None, problems

    score_s = values.copy() if order is None else values[order]
    observed = ~np.isnan(score_s)
    n_clients = len(client_ids)
    if observed.all():
        # every row has a score: the observed arrays are the row arrays
        obs_values, obs_sessions, obs_codes = score_s, sess_s, codes_s
    else:
        obs_values, obs_sessions, obs_codes = score_s[observed], sess_s[observed], codes_s[observed]
    obs_offsets = np.searchsorted(obs_codes, np.arange(n_clients + 1)).astype(np.int64)
    panel = Panel(
        client_ids=client_ids,
        row_client=codes_s,
        row_session=sess_s,
        row_score=score_s,
        obs_values=obs_values,
        obs_sessions=obs_sessions,
        obs_offsets=obs_offsets,
        # A shallow pandas copy: copy-on-write keeps the caller's frame and
        # the result tables independent without copying the ids.
        row_client_values=client_col.reset_index(drop=True) if order is None else None,
    )
    return panel, []


def _client_codes(client_col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes in sorted id order, and the sorted unique ids.

    Equivalent to ``pd.factorize(client_col, sort=True)``; when the ids are
    plain numbers already in ascending order (data sorted by client, the
    common case for large files) the codes come from the change points
    without hashing.
    """
    values = client_col.to_numpy() if client_col.dtype.kind in "iuf" else None
    if values is not None and values.size and bool(np.all(values[1:] >= values[:-1])):
        change = values[1:] != values[:-1]
        codes = np.zeros(values.size, dtype=np.int64)
        np.cumsum(change, out=codes[1:])
        starts = np.r_[0, np.flatnonzero(change) + 1]
        return codes, pd.Index(values[starts], dtype=client_col.dtype)
    codes, uniques = pd.factorize(client_col, sort=True)
    return codes.astype(np.int64, copy=False), uniques


def _numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values of a column and a mask of the entries that are not numbers.

    Numbers (including numeric strings such as ``"4.5"``) convert; missing
    markers (None, NaN, pandas NA) become NaN and are *not* flagged; anything
    else (``"n/a"``, ``"x"``, booleans) is flagged.
    """
    if pd.api.types.is_bool_dtype(col.dtype):
        return np.full(len(col), np.nan), col.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(col), dtype=bool)
    converted = pd.to_numeric(col, errors="coerce")
    values = converted.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(values) & col.notna().to_numpy()
    is_bool = col.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool) if col.dtype == object else None
    if is_bool is not None and is_bool.any():
        values = np.where(is_bool, np.nan, values)
        bad |= is_bool
    return values, bad


def _sort_order(codes: np.ndarray, sess: np.ndarray) -> np.ndarray | None:
    """Permutation sorting rows by (client code, session); None if already sorted."""
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


def _duplicate_problem(dup_rows, index, client_col, session_col, client, session) -> Problem:
    pairs = pd.DataFrame({"c": client_col.to_numpy()[dup_rows], "s": session_col.to_numpy()[dup_rows]})
    n_pairs = len(pairs.drop_duplicates())
    return _problem_rows(
        f"columns {client!r} x {session!r}",
        f"share their client and session with another row ({n_pairs} duplicated pair(s))",
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
            parts.append(f"client {_plain(client_col.iloc[r])}")
        if session_col is not None:
            parts.append(f"session {_plain(session_col.iloc[r])}")
        if value_col is not None:
            parts.append(f"value {_plain(value_col.iloc[r])}")
        examples.append(" ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else ""))
    plural = "s" if count != 1 else ""
    return Problem(where, f"{count} row{plural} {what}", tuple(examples))


def _plain(value: object) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)) or value is pd.NA:
        return "<missing>"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.generic,)):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def merge_problems(problems: list[Problem]) -> list[Problem]:
    """Merge the same problem found in several pieces: add the counts, keep the 5 first rows as examples."""
    merged: dict[tuple[str, str], list] = {}
    for p in problems:
        m = re.match(r"^(\d+) (rows? )(.*)$", p.message)
        key = (p.where, m.group(3) if m else p.message)
        if key in merged:
            merged[key][0] += int(m.group(1)) if m else 0
            merged[key][1] += list(p.examples)
        else:
            merged[key] = [int(m.group(1)) if m else 0, list(p.examples), bool(m)]
    out = []
    for (where, text), (count, examples, counted) in merged.items():
        message = f"{count} row{'s' if count != 1 else ''} {text}" if counted else text
        out.append(Problem(where, message, tuple(sorted(examples, key=_row_number)[:5])))
    return out


def _row_number(example: str) -> float:
    """Sort key of an example: its row number ("row 12 (...)"), others last in their order."""
    m = re.match(r"^row (\d+)\b", example)
    return int(m.group(1)) if m else math.inf
