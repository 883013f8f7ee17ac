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
                + " (name yours with client=, session=, score=)",
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
    sess_float, sess_bad_value = _numeric(frame[session])
    sess_ok = np.isfinite(sess_float)
    if sess_bad_value.any():
        problems.append(
            _problem_rows(
                f"column {session!r}", "with a non-numeric session number", sess_bad_value,
                index, client_col, None, frame[session],
            )
        )
    sess_missing = np.isnan(sess_float) & ~sess_bad_value
    if sess_missing.any():
        problems.append(
            _problem_rows(
                f"column {session!r}", "with a missing session number", sess_missing,
                index, client_col, None, None,
            )
        )
    sess_inf = np.isinf(sess_float)
    with np.errstate(invalid="ignore"):
        non_int = sess_ok & (np.floor(sess_float) != sess_float)
        too_big = sess_ok & (np.abs(sess_float) > 2**52)
    non_int |= too_big
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
        usable = ~client_null & np.isfinite(sess_float) & ~non_int
        sub = pd.DataFrame({"c": client_col.to_numpy()[usable], "s": sess_float[usable]})
        dup = np.zeros(len(frame), dtype=bool)
        dup[np.flatnonzero(usable)] = sub.duplicated(keep=False).to_numpy()
        if dup.any():
            problems.append(_duplicate_problem(dup, index, client_col, frame[session], client, session))
        return None, problems

    # --- sort, then duplicates ---------------------------------------------
    codes, client_ids = pd.factorize(client_col, sort=True)
    codes = codes.astype(np.int64, copy=False)
    sess = sess_float.astype(np.int64)
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

    score_s = values if order is None else values[order]
    observed = ~np.isnan(score_s)
    n_clients = len(client_ids)
    obs_counts = np.bincount(codes_s[observed], minlength=n_clients)
    obs_offsets = np.zeros(n_clients + 1, dtype=np.int64)
    np.cumsum(obs_counts, out=obs_offsets[1:])
    panel = Panel(
        client_ids=client_ids,
        row_client=codes_s,
        row_session=sess_s,
        row_score=score_s,
        obs_values=score_s[observed],
        obs_sessions=sess_s[observed],
        obs_offsets=obs_offsets,
    )
    return panel, []


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
    smin = int(sess.min())
    span = int(sess.max()) - smin + 1
    n_codes = int(codes.max()) + 1
    if span * n_codes < 2**62:
        key = codes * span + (sess - smin)
        if np.all(key[1:] >= key[:-1]):
            return None
        return np.argsort(key, kind="stable")
    if np.all((codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (sess[1:] >= sess[:-1]))):
        return None
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
        parts = [f"row {index[r]!r}"]
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
