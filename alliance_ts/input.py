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
    columns: Sequence[str] | None = None,
    sessions: Sequence[int] | None = None,
    pattern: str = r"(\d+)\s*$",
    session_name: str = "session",
    score_name: str = "score",
    dropna: bool = False,
) -> pd.DataFrame:
    """Convert a wide table (one column per session) to long format.

    Parameters
    ----------
    wide : pandas.DataFrame
        One row per client.
    client : str, default "client"
        The client id column.
    columns : sequence of str, optional
        The score columns, in any order. Default: every column but ``client``.
    sessions : sequence of int, optional
        Session number of each column in ``columns``. Default: the number
        captured by ``pattern`` in each column name (``"wai_s3"`` -> 3).
    pattern : str, default ``r"(\\d+)\\s*$"``
        Regular expression whose first group is the session number.
    session_name, score_name : str
        Names of the output columns.
    dropna : bool, default False
        Drop cells without a score. By default they are kept as rows with a
        NaN score (a missed session), which :func:`alliance_ts.detect` treats
        exactly like an absent row.

    Returns
    -------
    pandas.DataFrame
        Columns ``client`` (named as in the input), ``session`` and
        ``score``, sorted by client and session.

    Raises
    ------
    InvalidInputError
        If the client column is missing, a column name carries no session
        number, two columns map to the same session, or ``sessions`` does not
        match ``columns``.

    Examples
    --------
    >>> import pandas as pd, alliance_ts as at
    >>> wide = pd.DataFrame({"id": ["a", "b"], "wai_s1": [50, 41], "wai_s2": [48, None]})
    >>> at.to_long(wide, client="id")
      id  session  score
    0  a        1   50.0
    1  a        2   48.0
    2  b        1   41.0
    3  b        2    NaN
    """
    problems: list[Problem] = []
    if not isinstance(wide, pd.DataFrame):
        raise InvalidInputError(
            [Problem("wide", f"expected a DataFrame, got {type(wide).__name__}")],
            "alliance_ts.to_long()",
        )
    if client not in wide.columns:
        problems.append(
            Problem(
                f"column {client!r}",
                "client id column not found; available columns: "
                + ", ".join(map(repr, wide.columns[:20])),
            )
        )
    cols = list(columns) if columns is not None else [c for c in wide.columns if c != client]
    missing = [c for c in cols if c not in wide.columns]
    if missing:
        problems.append(
            Problem("columns", f"{len(missing)} score column(s) not found: {missing[:5]}")
        )
    if not cols:
        problems.append(Problem("columns", "no score columns to convert"))
    numbers: list[int] = []
    if sessions is not None:
        numbers = list(sessions)
        if len(numbers) != len(cols):
            problems.append(
                Problem(
                    "sessions",
                    f"{len(numbers)} session numbers for {len(cols)} columns",
                )
            )
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
        problems.append(
            Problem("columns", f"several columns map to the same session number: {dup[:5]}")
        )
    if problems:
        raise InvalidInputError(problems, "alliance_ts.to_long()")
    block = wide[cols].to_numpy()
    n_rows, n_cols = block.shape
    out = pd.DataFrame(
        {
            client: np.repeat(wide[client].to_numpy(), n_cols),
            session_name: np.tile(np.asarray(numbers, dtype=np.int64), n_rows),
            score_name: pd.to_numeric(pd.Series(block.reshape(-1)), errors="coerce")
            if block.dtype == object
            else block.reshape(-1).astype(float),
        }
    )
    if block.dtype == object:
        orig = pd.Series(block.reshape(-1))
        bad_cells = orig.notna() & out[score_name].isna()
        if bad_cells.any():
            raise InvalidInputError(
                [
                    Problem(
                        "score columns",
                        f"{int(bad_cells.sum())} non-numeric cell(s)",
                        tuple(repr(v) for v in orig[bad_cells].head(5)),
                    )
                ],
                "alliance_ts.to_long()",
            )
    out[client] = out[client].astype(wide[client].dtype)
    if dropna:
        out = out[out[score_name].notna()]
    return out.sort_values([client, session_name], kind="stable").reset_index(drop=True)
