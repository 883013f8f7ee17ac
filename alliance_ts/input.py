"""Accepted input shapes, and the conversion of wide tables to long format.

The canonical input is a long table: one row per client x session, with a
client id column, a session number column and a score column. A single
client's scores may be passed as an array, a list or a pandas Series.
Wide tables (one column per session) are converted explicitly with
:func:`to_long`; :func:`alliance_ts.detect` never guesses a layout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem

__all__ = ["to_long"]


def as_long_frame(
    data: object, client: str, session: str, score: str
) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Return ``data`` as a long DataFrame, or the problems that prevent it.

    A DataFrame is returned unchanged (no copy). A 1-D array-like or Series
    becomes one client (id 0) with sessions 1..n, or the Series' index as
    session numbers.
    """
    if isinstance(data, pd.DataFrame):
        return data, []
    if _is_dask_frame(data):
        return None, [
            Problem(
                "data",
                "a Dask DataFrame needs the distributed engine, which is not part of "
                "this version; call .compute() first",
            )
        ]
    if isinstance(data, pd.Series):
        return (
            pd.DataFrame(
                {client: 0, session: data.index.to_numpy(), score: data.to_numpy()}
            ),
            [],
        )
    if isinstance(data, (str, bytes)) or data is None or np.isscalar(data):
        return None, [
            Problem(
                "data",
                f"expected a long DataFrame or a 1-D sequence of scores, got "
                f"{type(data).__name__}",
            )
        ]
    try:
        arr = np.asarray(data, dtype=object)
    except (TypeError, ValueError) as exc:  # ragged nested lists, etc.
        return None, [Problem("data", f"cannot read as a sequence of scores ({exc})")]
    if arr.ndim != 1:
        return None, [
            Problem(
                "data",
                f"a {arr.ndim}-D array cannot be read as one client's scores; pass a "
                "long DataFrame (client, session, score), or convert a wide table "
                "with alliance_ts.to_long()",
            )
        ]
    values = arr.tolist()
    return (
        pd.DataFrame(
            {
                client: np.zeros(len(values), dtype=np.int64),
                session: np.arange(1, len(values) + 1),
                score: pd.Series(values, dtype=object).infer_objects(),
            }
        ),
        [],
    )


def _is_dask_frame(data: object) -> bool:
    module = type(data).__module__ or ""
    return module.startswith("dask") and hasattr(data, "npartitions")


def to_long(
    wide: pd.DataFrame,
    *,
    client: str = "client",
    columns: Sequence[str] | str | None = None,
    sessions: Sequence[int] | None = None,
    pattern: str = r"(\d+)\s*$",
    session_name: str = "session",
    score_name: str = "score",
    dropna: bool = False,
    keep: Sequence[str] | None = None,
) -> pd.DataFrame:
    r"""Convert a wide table (one row per client, one column per session) to long format.

    Parameters
    ----------
    wide : pandas.DataFrame
        One row per client.
    client : str, default "client"
        The client id column.
    columns : list of str, or str, optional
        The session (score) columns: a list of names in any order; a range
        of neighbouring columns written ``"wai_1..wai_20"`` (from the first
        to the last, in the table's column order); or a regular expression
        that the whole column name must match (``r"wai_\d+"``). Default: the
        columns whose name ends in a number (``pattern``), which must share
        one prefix (``wai_1``, ``wai_2``, ...).
    sessions : sequence of int, optional
        Session number of each column in ``columns``. Default: the number
        captured by ``pattern`` in each column name (``"wai_s3"`` -> 3).
    pattern : str, default ``r"(\d+)\s*$"``
        Regular expression whose first group is the session number.
    session_name, score_name : str
        Names of the output columns.
    dropna : bool, default False
        Drop every cell without a score. By default the empty cells before a
        client's last score are kept as rows with a NaN score (missed
        sessions, which :func:`alliance_ts.detect` treats exactly like absent
        rows) and the empty cells after it are dropped: a course that ended
        is not a run of missed sessions. A client without any score keeps
        one row, so that it is reported.
    keep : list of str, optional
        The other columns to carry along, repeated on each of the client's
        rows (therapist, site, arm, ...); pass them to ``detect(keep=...)``.
        Default: every column that is neither the id nor a session column.

    Returns
    -------
    pandas.DataFrame
        Columns ``client`` (named as in the input), the kept columns,
        ``session`` and ``score``, sorted by client and session. Each row's
        index label is the label of its row in ``wide``, so that input errors
        name the rows of the sheet.

    Raises
    ------
    InvalidInputError
        If the client column is missing, no session column is found, the
        numbered columns have several prefixes, a column name carries no
        session number, two columns map to the same session, a cell is not
        a number, or ``sessions`` does not match ``columns``.

    Examples
    --------
    >>> import pandas as pd, alliance_ts as at
    >>> wide = pd.DataFrame({"id": ["a", "b"], "site": ["X", "Y"],
    ...                      "wai_s1": [50, 41], "wai_s2": [None, 40], "wai_s3": [48, None]})
    >>> at.to_long(wide, client="id")
      id site  session  score
    0  a    X        1   50.0
    0  a    X        2    NaN
    0  a    X        3   48.0
    1  b    Y        1   41.0
    1  b    Y        2   40.0
    """
    context = "alliance_ts.to_long()"
    problems: list[Problem] = []
    if not isinstance(wide, pd.DataFrame):
        raise InvalidInputError([Problem("wide", f"expected a DataFrame, got {type(wide).__name__}")], context)
    if client not in wide.columns:
        problems.append(
            Problem(
                f"column {client!r}",
                "client id column not found; available columns: "
                + ", ".join(map(repr, wide.columns[:20])),
            )
        )
    cols = session_columns(wide, columns, client, pattern, problems)
    numbers: list[int] = []
    if sessions is not None:
        numbers = list(sessions)
        if len(numbers) != len(cols):
            problems.append(Problem("sessions", f"{len(numbers)} session numbers for {len(cols)} columns"))
    else:
        rx = re.compile(pattern)
        bad = []
        for c in cols:
            m = rx.search(str(c))
            if m is None:
                bad.append(c)
            else:
                numbers.append(int(m.group(1)))
        if bad:
            problems.append(
                Problem(
                    "columns",
                    f"{len(bad)} column name(s) carry no session number matching "
                    f"{pattern!r}: {bad[:5]}; pass columns= or sessions=",
                )
            )
    if not problems and len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        problems.append(Problem("columns", f"several columns map to the same session number: {dup[:5]}"))
    others = [c for c in wide.columns if c != client and c not in cols]
    kept = others if keep is None else ([keep] if isinstance(keep, str) else list(keep))
    unknown = [c for c in kept if c not in wide.columns]
    if unknown:
        problems.append(Problem("keep", f"{len(unknown)} column(s) to keep not found: {unknown[:5]}"))
    clash = [c for c in kept if c in cols or c == client or c in (session_name, score_name)]
    if clash:
        problems.append(Problem("keep", f"{clash[:5]} are the id or session columns (or the output's session and "
                                "score names); keep names other columns"))
    if problems:
        raise InvalidInputError(problems, context)
    order = np.argsort(np.asarray(numbers, dtype=np.int64), kind="stable")
    cols = [cols[i] for i in order]
    numbers = [numbers[i] for i in order]
    block = wide[cols].to_numpy()
    n_rows, n_cols = block.shape
    flat = pd.Series(block.reshape(-1))
    scores = pd.to_numeric(flat, errors="coerce") if block.dtype == object else flat.astype(float)
    if block.dtype == object:
        bad_cells = flat.notna() & scores.isna()
        if bad_cells.any():
            raise InvalidInputError(
                [Problem("score columns", f"{int(bad_cells.sum())} non-numeric cell(s)",
                         tuple(repr(v) for v in flat[bad_cells].head(5)))],
                context,
            )
    present = scores.notna().to_numpy().reshape(n_rows, n_cols)
    if dropna:
        keep_cell = present
    else:
        # cells up to the client's last score; a client without scores keeps its first cell
        last = np.where(present.any(axis=1), n_cols - 1 - np.argmax(present[:, ::-1], axis=1), 0)
        keep_cell = np.arange(n_cols)[None, :] <= last[:, None]
    take = keep_cell.reshape(-1)
    row_of = np.repeat(np.arange(n_rows), n_cols)[take]
    # each long row keeps the label of its wide row, so that problems name the sheet's rows
    out = pd.DataFrame({client: wide[client].to_numpy()[row_of]}, index=wide.index[row_of])
    for c in kept:
        out[c] = wide[c].to_numpy()[row_of]
    out[session_name] = np.tile(np.asarray(numbers, dtype=np.int64), n_rows)[take]
    out[score_name] = scores.to_numpy(dtype=float)[take]
    for c in [client, *kept]:
        out[c] = out[c].astype(wide[c].dtype)
    return out.sort_values([client, session_name], kind="stable")


def session_columns(
    wide: pd.DataFrame, columns: Sequence[str] | str | None, client: str, pattern: str, problems: list[Problem]
) -> list[str]:
    """The session columns of a wide table named by a list, a range ``a..b``, a regex, or by default."""
    names = [c for c in wide.columns if c != client]
    if columns is None:
        rx = re.compile(pattern)
        found = [c for c in names if isinstance(c, str) and rx.search(c)]
        prefixes = list(dict.fromkeys(rx.sub("", c) for c in found))
        if not found:
            problems.append(Problem("columns", "no column name ends in a session number (wai_1, wai_2, ...); "
                                    "name the session columns with columns= (command line: --sessions)"))
        elif len(prefixes) > 1:
            problems.append(Problem("columns", "the columns ending in a number have several prefixes ("
                                    + ", ".join(repr(p) for p in prefixes[:5]) + "); name the session columns "
                                    "with columns= (command line: --sessions), e.g. a range 'wai_1..wai_20'"))
            return []
        return found
    if isinstance(columns, str):
        first, sep, last = columns.partition("..")
        if sep and first.strip() in wide.columns and last.strip() in wide.columns:
            all_cols = list(wide.columns)
            i, j = all_cols.index(first.strip()), all_cols.index(last.strip())
            if i > j:
                problems.append(Problem("columns", f"the range {columns!r} runs backwards: {first.strip()!r} comes "
                                        f"after {last.strip()!r} in the table"))
                return []
            return [c for c in all_cols[i:j + 1] if c != client]
        if sep:
            missing = [p.strip() for p in (first, last) if p.strip() not in wide.columns]
            problems.append(Problem("columns", f"the range {columns!r} names column(s) not in the table: {missing}"))
            return []
        try:
            rx = re.compile(columns)
        except re.error as err:
            problems.append(Problem("columns", f"{columns!r} is neither a range 'a..b' nor a regular expression "
                                    f"({err})"))
            return []
        found = [c for c in names if isinstance(c, str) and rx.fullmatch(c)]
        if not found:
            problems.append(Problem("columns", f"no column name matches {columns!r}"))
        return found
    cols = list(columns)
    missing = [c for c in cols if c not in wide.columns]
    if missing:
        problems.append(Problem("columns", f"{len(missing)} score column(s) not found: {missing[:5]}"))
    if not cols:
        problems.append(Problem("columns", "no score columns to convert"))
    return [c for c in cols if c not in missing]
