"""Result tables in the files researchers use: CSV, Parquet, SPSS, Stata, Excel.

:func:`write_frame` writes one table (``result.episodes``,
``result.sessions``, ``result.clients`` or any other DataFrame) as CSV,
Parquet, SPSS ``.sav``, Stata ``.dta`` or Excel ``.xlsx``;
:func:`write_workbook` writes several tables, and a manifest, as the sheets of
one Excel workbook. Both write the whole file or nothing: a temporary file in
the same folder, renamed onto the final name when complete (see
:class:`alliance_ts.io.write_atomic`), so an error leaves neither a partial
file under the final name nor a temporary file. Every problem that would make
a format refuse or silently alter the table (a column name Stata cannot hold,
a number SPSS cannot store exactly, a cell longer than Excel allows) is found
before anything is written and reported at once, naming the columns, as an
:class:`~alliance_ts.errors.InvalidInputError`.

SPSS and Stata files carry the labels those programs show: a label for each
column (:data:`COLUMN_LABELS` for the library's columns, or your own), and
value labels for the categorical columns (``label``, ``status``,
``pattern``, ``phase``, ``rule``), stored as the codes 1, 2, ... in category
order, and for yes/no columns (0 = no, 1 = yes).

SPSS, Stata and Excel need the optional packages ``pyreadstat``
(``pip install 'alliance_ts[spss]'``) and ``openpyxl``
(``pip install 'alliance_ts[excel]'``); Parquet needs ``pyarrow``
(``pip install 'alliance_ts[parquet]'``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem
from .io import csv_quoting, escape_formulas, need, write_atomic

__all__ = [
    "COLUMN_LABELS",
    "EXCEL_MAX_ROWS",
    "EXTENSIONS",
    "FORMATS",
    "write_frame",
    "write_workbook",
]

#: The formats :func:`write_frame` writes.
FORMATS = ("csv", "parquet", "sav", "dta", "xlsx")
#: The usual file extension of each format.
EXTENSIONS = {"csv": ".csv", "parquet": ".parquet", "sav": ".sav", "dta": ".dta", "xlsx": ".xlsx"}

#: Column labels written to SPSS and Stata files for the library's columns
#: (at most 80 characters, Stata's limit).
COLUMN_LABELS = {
    "client": "Client id",
    "rater": "Rater id",
    "coder": "Coder id",
    "session": "Session number",
    "score": "Alliance score",
    "label": "Session label (none, rupture, repair, unresolved)",
    "episode": "Episode number within the client",
    "rule": "Detection rule",
    "start": "Session of the rupture onset",
    "trough": "Session of the lowest score of the episode",
    "end": "Session of the repair (missing if unresolved)",
    "status": "Episode status (repaired or unresolved)",
    "depth": "Depth of the rupture: pre-rupture level minus trough score",
    "pre": "Pre-rupture reference level (score units)",
    "trough_score": "Score at the trough",
    "post": "Score at the repair (missing if unresolved)",
    "phase": "Third of treatment of the rupture onset (early, middle, late)",
    "n_sessions": "Number of observed sessions",
    "included": "Client analysed",
    "reason": "Reason the client was not analysed",
    "n_ruptures": "Number of rupture episodes",
    "n_repaired": "Number of repaired episodes",
    "n_unresolved": "Number of unresolved episodes",
    "pattern": "Client pattern (no_rupture, repaired, unresolved, mixed)",
    "date": "Session date",
    "start_date": "Date of the rupture onset",
    "trough_date": "Date of the trough",
    "end_date": "Date of the repair",
    "offset": "Session relative to the rupture onset",
    "observed": "Score observed in this session",
    "sd": "SD used for the threshold (score units)",
    "threshold": "Drop threshold (score units)",
    "noise": "Client's session-to-session noise SD used by the rule",
    "z": "Largest test statistic of the client (rule-specific)",
    "magnitude": "Size of the drop (score units)",
    "sudden_loss": "Sudden loss at this interval (1 yes, 0 no)",
    "n_intervals": "Intervals tested for a sudden loss",
    "n_tested": "Intervals tested",
    "n_untestable": "Intervals that could not be tested",
    "n_segments": "Number of constant-mean segments",
    "type": "Rupture type (confrontation, withdrawal, both)",
    "intensity": "Rupture intensity (self-report)",
    "resolved_within": "Resolved within the session it began",
    "n_confrontation": "Episodes with confrontation markers",
    "n_withdrawal": "Episodes with withdrawal markers",
    "withdrawal": "Withdrawal (item answer, or markers coded in the session)",
    "confrontation": "Confrontation markers coded in the session",
    "resolution": "Resolution strategies coded in the session",
    "resolution_late": "Resolution strategies at or after the last rupture marker",
    "segments": "Segments coded in the session",
    "minutes_coded": "Minutes of the session coded (segments x segment length)",
    "significance": "Highest rupture significance rating",
    "resolved": "Resolution rating (resolved by the end of the session)",
    "contribution": "Therapist contribution rating",
    "resolved_in_session": "Rupture resolved within this session (observer)",
    "rupture": "Rupture item answer (PSQ), or the session has a rupture (observer)",
    "frequency": "Highest rupture markers per coded segment (observer)",
}

#: Most data rows of an Excel sheet (1,048,576 rows, one of them the header).
EXCEL_MAX_ROWS = 1_048_575
#: Most columns of an Excel sheet.
EXCEL_MAX_COLUMNS = 16_384
#: Most characters in an Excel cell.
EXCEL_MAX_CELL = 32_767

_CONTEXT = "alliance_ts"
_NAMES = {"csv": "CSV", "parquet": "Parquet", "sav": "SPSS", "dta": "Stata", "xlsx": "Excel"}
_OTHER_FORMATS = {"sav": "csv, parquet or xlsx", "dta": "csv, parquet or xlsx", "parquet": "csv, sav or xlsx",
                  "csv": "parquet or xlsx", "xlsx": "csv, parquet or sav"}
_EXACT = 2**53  # integers up to this size are exact as double-precision numbers
_STATA_MAX = 8.988465674311579e307  # the largest number a Stata double holds
_SPSS_MAX_STRING = 32_767  # bytes
_SPSS_RESERVED = frozenset({"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"})
_STATA_RESERVED = frozenset({
    "_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int", "long", "_n", "_N", "_pi",
    "_pred", "_rc", "_skip", "strL", "using", "with",
})
_STATA_STR = re.compile(r"str\d+")
# characters an .xlsx file cannot hold (as openpyxl's ILLEGAL_CHARACTERS_RE)
_EXCEL_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_LABEL_LIMITS = {"sav": (256, 120), "dta": (80, 32_000)}  # (column label, value label), UTF-8 bytes
_NO_YES: dict[int | float, str] = {0: "no", 1: "yes"}


def write_frame(
    df: pd.DataFrame,
    path: str | os.PathLike,
    fmt: str,
    *,
    escape: bool = True,
    labels: Mapping[str, str] | None = None,
    value_labels: Mapping[str, Mapping[Any, str]] | None = None,
) -> None:
    """Write one table as a CSV, Parquet, SPSS, Stata or Excel file, whole or not at all.

    Parameters
    ----------
    df : pandas.DataFrame
        The table, e.g. ``result.episodes``. The index is not written
        (``df.reset_index()`` first to keep it).
    path : path
        The file to write (replaced if it exists; its folder is created).
    fmt : {"csv", "parquet", "sav", "dta", "xlsx"}
        The format (see :data:`FORMATS`); the extension of ``path`` is not
        consulted (:data:`EXTENSIONS` gives the usual one).
    escape : bool, default True
        CSV and Excel: write text cells that a spreadsheet would run as a
        formula (``=HYPERLINK(...)``, ``@cmd``, ...) with a leading apostrophe
        (see :func:`alliance_ts.io.escape_formulas`). ``False`` writes them
        verbatim (in Excel as text cells, never as formulas).
    labels : mapping of str to str, optional
        SPSS and Stata: column labels, ``{column: label}``, taking precedence
        over :data:`COLUMN_LABELS`; columns in neither get no label. Keys that
        are not columns of ``df`` are ignored, so one mapping can serve
        several tables. Stata labels hold at most 80 characters, SPSS labels
        256 bytes.
    value_labels : mapping, optional
        SPSS and Stata: value labels of number columns ``{column: {code:
        label}}`` (codes as numbers or their text, as
        :func:`alliance_ts.io.read_table` reports an input file's labels), for
        columns carried over from the input; the library's categorical and
        yes/no columns get theirs anyway.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) listing every problem at once, before anything is
        written: an unknown format; a duplicated column name; column names the
        format cannot hold (Stata: at most 32 characters, letters, digits and
        underscores, not starting with a digit, not a reserved word such as
        ``in`` or ``int``; SPSS: at most 64 bytes, starting with a letter,
        letters, digits and ``_ . $ # @``, not ending with a period, not a
        reserved word such as ``BY``, unique ignoring case; Parquet: text);
        integers beyond 2**53 (SPSS, Stata, Excel store numbers as doubles);
        infinite numbers (Stata); text with a NUL character (SPSS, Stata) or
        longer than 32,767 bytes (SPSS); labels that are too long; an Excel
        table too large for a sheet (see :func:`write_workbook`); a missing
        optional package (with the install hint).

    Notes
    -----
    **CSV** (:func:`pandas.DataFrame.to_csv`): missing values are empty
    cells; a text cell holding a carriage return makes every text cell quoted
    (see :func:`alliance_ts.io.csv_quoting`). **Parquet** keeps every pandas
    type (categories, nullable integers, text ids); an object column that
    mixes text with other values is written as text.

    **SPSS and Stata** hold numbers (doubles) and text, so columns are
    converted:

    - categorical columns (and text categories) become the codes 1..k in
      category order with value labels ``{1: first category, ...}``; a
      missing category is system-missing (SPSS measure: nominal, or ordinal
      for ordered categories);
    - yes/no columns (``bool``, ``boolean``) become 0/1 with value labels
      ``{0: "no", 1: "yes"}``;
    - integer columns, nullable ones (``Int64``, ``<NA>`` becomes
      system-missing) included, and number columns holding only whole
      numbers, are numbers displayed without decimals (SPSS ``F8.0``, Stata
      ``%9.0f``, wider for longer numbers), so an id 12 shows as 12 and reads
      back through :func:`alliance_ts.io.read_table` as the integer 12;
      other numbers (``Float64`` included) are doubles, ``<NA>`` and NaN
      system-missing;
    - text columns stay text, exactly as written (``"007"`` keeps its zero);
      a missing text cell becomes the empty text ``""`` (neither format has
      missing text); Stata writes text longer than 2,045 bytes as ``strL``;
    - dates stay dates: a datetime column whose values all fall at midnight is
      written as dates (SPSS ``DATE11``, Stata ``%td``), any other as
      date-times (``DATETIME20``, ``%tc``); a time zone is dropped (the local
      clock time is kept);
    - durations become numbers of days;
    - an object column is classified by its values: all text, all yes/no, all
      numbers and all dates are written as above; all missing is a number
      column of system-missing values; a mix (numbers and text, or values of
      other types) is written as text (``str`` of each value, missing as
      ``""``), as is any other column type.

    **Excel**: one sheet named after the file's stem (at most 31 characters,
    ``[]:*?/\\`` replaced by ``_``); the conversions of :func:`write_workbook`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> from alliance_ts.export import write_frame
    >>> episodes = pd.DataFrame({"client": ["007", "=1+1"],
    ...                          "status": pd.Categorical(["repaired", "unresolved"])})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_frame(episodes, Path(folder) / "episodes.csv", "csv")
    ...     print(Path(folder, "episodes.csv").read_text())
    client,status
    007,repaired
    '=1+1,unresolved
    <BLANKLINE>
    """
    fmt = _check_format(fmt)
    if fmt == "xlsx":
        write_workbook({_sheet_from_stem(Path(path).stem): df}, path, escape=escape)
        return
    _check_frame(df)
    if fmt == "csv":
        problems = _name_problems(df, fmt)
        if problems:
            raise InvalidInputError(problems, _CONTEXT)
        with write_atomic(path) as tmp:
            (escape_formulas(df) if escape else df).to_csv(tmp, index=False, quoting=csv_quoting(df))
    elif fmt == "parquet":
        _write_parquet(df, path)
    else:
        _write_stat(df, path, fmt, labels, value_labels)


def write_workbook(
    tables: Mapping[str, pd.DataFrame],
    path: str | os.PathLike,
    *,
    manifest: Mapping[str, Any] | None = None,
    escape: bool = True,
) -> None:
    """Write tables, and a manifest, as the sheets of one Excel workbook, whole or not at all.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Sheet name -> table, written as sheets in this order, e.g.
        ``{"episodes": res.episodes, "sessions": res.sessions, "clients":
        res.clients}``. Sheet names: 1 to 31 characters, none of
        ``[]:*?/\\``, not starting or ending with an apostrophe, not
        ``History``, unique ignoring case. Indexes are not written.
    path : path
        The ``.xlsx`` file to write (replaced if it exists).
    manifest : mapping, optional
        Written as a last sheet ``manifest`` with the columns ``key`` and
        ``value``: nested mappings flattened with dotted keys
        (``{"params": {"k": 2.0}}`` -> ``params.k``, ``2.0``), lists and
        tuples joined as text (``"1, 2"``), numbers, yes/no values and text
        as they are, ``None`` an empty cell, anything else as its text.
    escape : bool, default True
        Kept for symmetry with the CSV writer. Every text cell of a workbook
        is stored as text, never as a formula, so text that a spreadsheet
        would run (``=HYPERLINK(...)``) is neutralised without changing it:
        ids stay exactly as written and join back to the input.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) listing every problem at once, before anything is
        written: a table that is not a DataFrame, more than
        1,048,575 rows (:data:`EXCEL_MAX_ROWS`; write such a table as csv,
        parquet or sav) or 16,384 columns, an invalid or repeated sheet name
        (``manifest`` is taken when a manifest is given), a duplicated column
        name, integers beyond 2**53 (Excel stores numbers as doubles), text
        longer than 32,767 characters or holding control characters an
        ``.xlsx`` file cannot hold, nothing to write, or no ``openpyxl``
        (with the install hint).

    Notes
    -----
    Cells keep their type: numbers (integers, nullable ones included) are
    numbers, yes/no values are the booleans ``TRUE``/``FALSE``, categorical
    columns are their category text, text is text (``"007"`` keeps its
    zero), datetime columns are dates (``YYYY-MM-DD`` when every value falls
    at midnight, else ``YYYY-MM-DD HH:MM:SS``; a time zone is dropped, the
    local clock time is kept), durations are numbers of days, and values of
    other types are their text. Missing values (NaN, ``<NA>``, ``NaT``,
    ``None``) and empty text are empty cells.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> from alliance_ts.export import write_workbook
    >>> clients = pd.DataFrame({"client": [1, 12], "included": [True, False]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_workbook({"clients": clients}, Path(folder) / "result.xlsx",
    ...                    manifest={"rule": "vshape", "params": {"k": 2.5}})
    ...     sheets = pd.read_excel(Path(folder) / "result.xlsx", sheet_name=None)
    >>> list(sheets)
    ['clients', 'manifest']
    >>> sheets["manifest"].values.tolist()
    [['rule', 'vshape'], ['params.k', 2.5]]
    """
    need("openpyxl", "excel", "writing Excel files")
    problems: list[Problem] = []
    if not isinstance(tables, Mapping):
        raise InvalidInputError(
            [Problem("tables", f"must be a mapping of sheet name -> DataFrame, got {type(tables).__name__}")],
            _CONTEXT)
    sheets: list[tuple[str, pd.DataFrame]] = []
    if manifest is not None and not isinstance(manifest, Mapping):
        problems.append(Problem("manifest", f"must be a mapping (a dict), got {type(manifest).__name__}"))
    problems += _sheet_name_problems(list(tables), manifest is not None)
    for name, df in tables.items():
        if not isinstance(df, pd.DataFrame):
            problems.append(Problem(f"table {name!r}", f"must be a pandas DataFrame, got {type(df).__name__}"))
            continue
        frame, found = _excel_frame(df, str(name))
        problems += found
        sheets.append((str(name), frame))
    if manifest is not None and isinstance(manifest, Mapping):
        frame, found = _excel_frame(_manifest_frame(manifest), "manifest")
        problems += found
        sheets.append(("manifest", frame))
    if not problems and not sheets:
        problems.append(Problem("tables", "nothing to write: give at least one table or a manifest"))
    if problems:
        raise InvalidInputError(problems, _CONTEXT)
    # no apostrophes: _plain_cells stores formula-like text as text cells, which are never run
    # a file handle: pandas checks the extension of a path, and the temporary name ends in .tmp
    with write_atomic(path) as tmp, open(tmp, "wb") as fh:
        writer = pd.ExcelWriter(fh, engine="openpyxl")
        for name, frame in sheets:
            frame.to_excel(writer, sheet_name=name, index=False)
            _plain_cells(writer.sheets[name])
        writer.close()  # saves the workbook: not after an error (a context manager would save a partial one)


# --------------------------------------------------------------------------
# checks shared by the formats


def _check_format(fmt: Any) -> str:
    name = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
    if name not in FORMATS:
        raise InvalidInputError(
            [Problem("format", f"unknown output format {fmt!r}; known: {', '.join(FORMATS)}")], _CONTEXT)
    return str(name)


def _check_frame(df: Any) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError([Problem("df", f"must be a pandas DataFrame, got {type(df).__name__}")], _CONTEXT)


def _fix(fmt: str, what: str = "rename the column") -> str:
    return f"{what} or write {_OTHER_FORMATS[fmt]}"


def _name_problems(df: pd.DataFrame, fmt: str) -> list[Problem]:
    """Duplicated column names, and names the format cannot hold (one problem per column)."""
    problems: list[Problem] = []
    counts = pd.Series(list(df.columns), dtype=object).value_counts(sort=False)
    dup = [c for c, n in counts.items() if n > 1]
    if dup:
        problems.append(Problem("columns", f"{_many(len(dup), 'column name')} {_verb(len(dup), 'appears')} more "
                                "than once (a reader cannot tell them apart): " + ", ".join(map(repr, dup))
                                + "; rename them"))
    if fmt in ("sav", "dta", "parquet"):
        for col in df.columns:
            if not isinstance(col, str):
                problems.append(Problem(f"column {col!r}", f"{_NAMES[fmt]} column names must be text, got "
                                        f"{type(col).__name__}; {_fix(fmt)}"))
    if fmt == "sav":
        seen: dict[str, str] = {}
        for col in df.columns:
            if isinstance(col, str):
                reason = _spss_name_problem(col)
                if reason:
                    problems.append(Problem(f"column {col!r}", f"{reason}; {_fix(fmt)}"))
                elif col.upper() in seen and seen[col.upper()] != col:
                    problems.append(Problem(f"column {col!r}", f"SPSS ignores case in names, so it is the same as "
                                            f"{seen[col.upper()]!r}; {_fix(fmt)}"))
                else:
                    seen[col.upper()] = col
    elif fmt == "dta":
        for col in df.columns:
            if isinstance(col, str):
                reason = _stata_name_problem(col)
                if reason:
                    problems.append(Problem(f"column {col!r}", f"{reason}; {_fix(fmt)}"))
    return problems


def _spss_name_problem(name: str) -> str:
    rules = ("SPSS names have at most 64 bytes, start with a letter, hold letters, digits and _ . $ # @, "
             "and do not end with a period")
    if not name:
        return "SPSS names cannot be empty"
    if len(name.encode("utf-8")) > 64:
        return f"is {len(name.encode('utf-8'))} bytes long; {rules}"
    if not name[0].isalpha():
        return f"starts with {name[0]!r}; {rules}"
    bad = sorted({ch for ch in name if not (ch.isalnum() or ch in "_.$#@")})
    if bad:
        return f"holds {', '.join(map(repr, bad))}; {rules}"
    if name.endswith("."):
        return f"ends with a period; {rules}"
    if name.upper() in _SPSS_RESERVED:
        return f"is a reserved word in SPSS ({', '.join(sorted(_SPSS_RESERVED))})"
    return ""


def _stata_name_problem(name: str) -> str:
    rules = ("Stata names have at most 32 characters, hold letters, digits and underscores, and do not start "
             "with a digit")
    if not name:
        return "Stata names cannot be empty"
    if len(name) > 32:
        return f"is {len(name)} characters long; {rules}"
    if not (_stata_char(name[0]) and not name[0].isdigit()):
        return f"starts with {name[0]!r}; {rules}"
    bad = sorted({ch for ch in name if not _stata_char(ch)})
    if bad:
        return f"holds {', '.join(map(repr, bad))}; {rules}"
    if name in _STATA_RESERVED or _STATA_STR.fullmatch(name):
        return "is a reserved word in Stata (e.g. in, if, int, long, byte, str1)"
    return ""


def _stata_char(ch: str) -> bool:
    return ch == "_" or ("0" <= ch <= "9") or ("a" <= ch.lower() <= "z") or (not ch.isascii() and ch.isalpha())


def _many(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _cells(mask: np.ndarray, verb: str) -> str:
    """``"1 cell holds"``, ``"3 cells hold"``: the count of ``mask`` with ``verb`` agreeing."""
    return _count(mask, "cell", verb)


def _count(mask: np.ndarray, what: str, verb: str) -> str:
    n = int(mask.sum())
    return f"{_many(n, what)} {_verb(n, verb)}"


def _verb(n: int, verb: str) -> str:
    """``verb`` (third person singular: "holds", "is") agreeing with ``n``."""
    return verb if n == 1 else {"is": "are", "holds": "hold", "appears": "appear"}[verb]


def _rows(mask: np.ndarray, index: pd.Index) -> tuple[str, ...]:
    """Up to five example rows (index labels) where ``mask`` holds."""
    return tuple(f"row {_plain(index[i])!r}" for i in np.flatnonzero(mask)[:5])


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _too_big(s: pd.Series) -> np.ndarray:
    """Where an integer column holds a number beyond 2**53 (not exact as a double)."""
    if pd.api.types.is_unsigned_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.uint64, na_value=0) > _EXACT
    ints = s.to_numpy(dtype=np.int64, na_value=0)
    return (ints > _EXACT) | (ints < -_EXACT)


def _object_kind(values: np.ndarray) -> str:
    """What an object column holds: "empty", "text", "bool", "number", "date" or "mixed"."""
    present = [v for v in values if not _missing(v)]
    if not present:
        return "empty"
    if all(isinstance(v, str) for v in present):
        return "text"
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return "bool"
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
           for v in present):
        return "number"
    if all(isinstance(v, (dt.date, np.datetime64)) for v in present):
        return "date"
    return "mixed"


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    if isinstance(v, np.datetime64):
        return bool(np.isnat(v))
    return False


def _as_text(series: pd.Series) -> pd.Series:
    """Each value's text, missing values as missing (object column)."""
    values = series.to_numpy(dtype=object)
    return pd.Series([None if _missing(v) else v if isinstance(v, str) else str(v) for v in values],
                     index=series.index, dtype=object)


def _is_text(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) or dtype == np.dtype(object)


# --------------------------------------------------------------------------
# Parquet


def _write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    pyarrow = need("pyarrow", "parquet", "writing Parquet files")
    problems = _name_problems(df, "parquet")
    if problems:
        raise InvalidInputError(problems, _CONTEXT)
    out = df
    for col in df.columns:
        if df[col].dtype == np.dtype(object) and _object_kind(df[col].to_numpy()) == "mixed":
            out = df.copy() if out is df else out
            out[col] = _as_text(df[col])
    with write_atomic(path) as tmp:
        try:
            out.to_parquet(tmp, index=False)
        except pyarrow.ArrowException as err:
            raise InvalidInputError([Problem("table", f"Parquet cannot hold this table: {err}")], _CONTEXT) from None


# --------------------------------------------------------------------------
# SPSS and Stata


@dataclass
class _StatTable:
    """A table converted for pyreadstat, with its labels and display formats."""

    frame: pd.DataFrame
    index: pd.Index
    value_labels: dict[str, dict[int | float, str]] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    measures: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _write_stat(df: pd.DataFrame, path: str | os.PathLike, fmt: str, labels: Mapping[str, str] | None,
                value_labels: Mapping[str, Mapping[Any, str]] | None = None) -> None:
    pyreadstat = need("pyreadstat", "spss", f"writing {_NAMES[fmt]} files")
    problems = _name_problems(df, fmt)
    if fmt == "sav" and df.shape[1] == 0:
        problems.append(Problem("table", "an SPSS file needs at least one column; the table has none"))
    if labels is not None and not isinstance(labels, Mapping):
        problems.append(Problem("labels", f"must be a mapping of column -> label, got {type(labels).__name__}"))
        labels = None
    if problems:  # names first: the conversion below needs distinct text names
        raise InvalidInputError(problems, _CONTEXT)
    table = _stat_table(df, fmt)
    for col, codes in (value_labels or {}).items():
        if col in table.frame.columns and col not in table.value_labels \
                and pd.api.types.is_numeric_dtype(table.frame[col].dtype):
            try:
                table.value_labels[col] = {float(k): str(v) for k, v in codes.items()}
            except (TypeError, ValueError):  # codes that are not numbers: not for a number column
                continue
    column_labels = {
        col: text for col in df.columns
        if (text := (labels or {}).get(col, COLUMN_LABELS.get(col))) is not None
    }
    problems = table.problems + _label_problems(column_labels, table.value_labels, fmt)
    if problems:
        raise InvalidInputError(problems, _CONTEXT)
    with write_atomic(path) as tmp:
        try:
            if fmt == "sav":
                pyreadstat.write_sav(table.frame, str(tmp), column_labels=column_labels,
                                     variable_value_labels=table.value_labels, variable_format=table.formats,
                                     variable_measure=table.measures)
            else:
                pyreadstat.write_dta(table.frame, str(tmp), column_labels=column_labels,
                                     variable_value_labels=table.value_labels, variable_format=table.formats)
        except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as err:
            raise InvalidInputError(
                [Problem("table", f"{_NAMES[fmt]} cannot hold this table: {err}; write "
                                  f"{_OTHER_FORMATS[fmt]} instead")], _CONTEXT) from None


def _stat_table(df: pd.DataFrame, fmt: str) -> _StatTable:
    """Convert every column to numbers (doubles), dates or text, collecting labels, formats and problems."""
    table = _StatTable(pd.DataFrame(index=pd.RangeIndex(len(df))), df.index)
    for col in df.columns:
        _stat_column(table, str(col), df[col].reset_index(drop=True), fmt)
    if fmt == "dta":
        table.problems += _stata_label_set_problems(list(table.value_labels))
    return table


def _stat_column(table: _StatTable, col: str, s: pd.Series, fmt: str) -> None:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        table.frame[col] = np.where(codes < 0, np.nan, codes + 1.0)
        cats = list(dtype.categories)
        if cats:
            table.value_labels[col] = {i + 1: str(c) for i, c in enumerate(cats)}
        table.formats[col] = _int_format(1, len(cats), fmt)
        table.measures[col] = "ordinal" if dtype.ordered else "nominal"
    elif pd.api.types.is_bool_dtype(dtype):
        _stat_bool(table, col, s, fmt)
    elif isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        _stat_dates(table, col, s)
    elif pd.api.types.is_timedelta64_dtype(dtype):
        table.frame[col] = s.dt.total_seconds() / 86_400.0
        table.measures[col] = "scale"
    elif pd.api.types.is_integer_dtype(dtype):
        _stat_numbers(table, col, s.astype("Float64").to_numpy(dtype=float, na_value=np.nan), fmt, _too_big(s))
    elif pd.api.types.is_float_dtype(dtype):
        _stat_numbers(table, col, s.astype("Float64").to_numpy(dtype=float, na_value=np.nan), fmt)
    elif isinstance(dtype, pd.StringDtype):
        _stat_text(table, col, s, fmt)
    elif dtype == np.dtype(object):
        kind = _object_kind(s.to_numpy())
        if kind == "text":
            _stat_text(table, col, s, fmt)
        elif kind == "bool":
            _stat_bool(table, col, s.astype("boolean"), fmt)
        elif kind == "number":
            values = s.to_numpy()
            too_big = np.fromiter((isinstance(v, (int, np.integer)) and abs(int(v)) > _EXACT for v in values),
                                  dtype=bool, count=len(values))
            numbers = np.fromiter((np.nan if _missing(v) else float(v) for v in values), dtype=float,
                                  count=len(values))
            _stat_numbers(table, col, numbers, fmt, too_big)
        elif kind == "empty":
            table.frame[col] = np.full(len(s), np.nan)
        elif kind == "date":
            try:
                dates = pd.to_datetime(s)
            except (TypeError, ValueError):  # e.g. several time zones
                _stat_text(table, col, _as_text(s), fmt)
            else:
                _stat_dates(table, col, dates)
        else:
            _stat_text(table, col, _as_text(s), fmt)
    else:  # complex numbers, periods, intervals, ...: their text
        _stat_text(table, col, _as_text(s), fmt)


def _stat_bool(table: _StatTable, col: str, s: pd.Series, fmt: str) -> None:
    table.frame[col] = s.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    table.value_labels[col] = dict(_NO_YES)
    table.formats[col] = _int_format(0, 1, fmt)
    table.measures[col] = "nominal"


def _stat_dates(table: _StatTable, col: str, s: pd.Series) -> None:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
    present = s.dropna()
    if len(present) and bool((present == present.dt.normalize()).all()):
        # whole days: datetime.date objects, which pyreadstat writes as dates (DATE11, %td)
        table.frame[col] = pd.Series([None if v is pd.NaT else v.date() for v in s], dtype=object)
    else:
        table.frame[col] = s.to_numpy()
    table.measures[col] = "scale"


def _stat_numbers(table: _StatTable, col: str, values: np.ndarray, fmt: str,
                  too_big: np.ndarray | None = None) -> None:
    finite = np.isfinite(values)
    if too_big is None:  # doubles already: stored as they are
        too_big = np.zeros(len(values), dtype=bool)
    if too_big.any():
        table.problems.append(Problem(
            f"column {col!r}", f"{_count(too_big, 'integer', 'is')} beyond 2**53 = {_EXACT:,}, which "
            f"{_NAMES[fmt]} cannot store exactly (its numbers are doubles); convert the column to text "
            f"(df[{col!r}].astype(str)) or write {_OTHER_FORMATS[fmt]}", _rows(too_big, table.index)))
    if fmt == "dta":
        out_of_range = ~np.isnan(values) & ~(finite & (np.abs(values) <= _STATA_MAX))
        if out_of_range.any():
            table.problems.append(Problem(
                f"column {col!r}", f"{_count(out_of_range, 'value', 'is')} infinite or beyond Stata's range (about "
                "±8.99e307); replace them (e.g. with NaN) or write sav, csv or parquet",
                _rows(out_of_range, table.index)))
    table.frame[col] = values
    whole = values[finite]
    if whole.size and np.all(whole == np.floor(whole)) and np.abs(whole).max() <= _EXACT:
        table.formats[col] = _int_format(whole.min(), whole.max(), fmt)
    table.measures[col] = "nominal" if col in ("client", "rater", "coder") else "scale"


def _stat_text(table: _StatTable, col: str, s: pd.Series, fmt: str) -> None:
    text = s.astype(object).where(s.notna(), "")
    values = text.to_numpy(dtype=object)
    nul = np.fromiter(("\x00" in v for v in values), dtype=bool, count=len(values))
    if nul.any():
        table.problems.append(Problem(
            f"column {col!r}", f"{_cells(nul, 'holds')} a NUL character (\\x00), which {_NAMES[fmt]} would cut "
            "the text at; remove it or write csv or parquet", _rows(nul, table.index)))
    if fmt == "sav":
        long = np.fromiter((len(v.encode("utf-8")) > _SPSS_MAX_STRING for v in values), dtype=bool,
                           count=len(values))
        if long.any():
            table.problems.append(Problem(
                f"column {col!r}", f"{_cells(long, 'is')} longer than SPSS's {_SPSS_MAX_STRING:,} bytes; shorten "
                "them or write dta, csv or parquet", _rows(long, table.index)))
    table.frame[col] = pd.Series(values, dtype=object)
    table.measures[col] = "nominal"


def _int_format(low: float, high: float, fmt: str) -> str:
    """A display format without decimals wide enough for ``low``..``high`` (SPSS ``F8.0``, Stata ``%9.0f``)."""
    width = max(len(str(int(low))), len(str(int(high))))
    return f"F{max(width, 8)}.0" if fmt == "sav" else f"%{max(width, 9)}.0f"


def _stata_label_set_problems(columns: list[str]) -> list[Problem]:
    """Value-label set names: pyreadstat names them column + running number, and Stata limits names."""
    problems = []
    seen: set[str] = set()
    for i, col in enumerate(columns):
        name = f"{col}{i}"
        reason = _stata_name_problem(name)
        if reason or name in seen:
            problems.append(Problem(
                f"column {col!r}", f"its value labels would be stored under the name {name!r} (pyreadstat names "
                f"them after the column plus a number), which Stata cannot hold ({reason or 'a name in use'}); "
                f"a column with value labels may have at most {32 - len(str(i))} characters here; "
                f"{_fix('dta')}"))
        seen.add(name)
    return problems


def _label_problems(column_labels: Mapping[Any, Any], value_labels: Mapping[str, Mapping[int | float, str]],
                    fmt: str) -> list[Problem]:
    col_max, value_max = _LABEL_LIMITS[fmt]
    problems = []
    for col, text in column_labels.items():
        if not isinstance(text, str):
            problems.append(Problem(f"label of column {col!r}", f"must be text, got {type(text).__name__}"))
        elif (len(text) if fmt == "dta" else len(text.encode("utf-8"))) > col_max:
            unit = "characters" if fmt == "dta" else "bytes"
            problems.append(Problem(f"label of column {col!r}", f"{_NAMES[fmt]} column labels hold at most "
                                    f"{col_max} {unit}; shorten it (labels=...)"))
    for col, mapping in value_labels.items():
        long = [v for v in mapping.values() if len(v.encode("utf-8")) > value_max]
        if long:
            n = len(long)
            problems.append(Problem(
                f"column {col!r}", f"{n} categor{'y is' if n == 1 else 'ies are'} longer than the {value_max} bytes "
                f"a {_NAMES[fmt]} value label holds, e.g. {long[0][:40]!r}...; shorten the categories or convert "
                f"the column to text (df[{col!r}].astype(str))"))
    return problems


# --------------------------------------------------------------------------
# Excel


def _sheet_from_stem(stem: str) -> str:
    name = _SHEET_BAD.sub("_", stem).strip("'")[:31].strip("'")
    return name if name and name.lower() != "history" else "Sheet1"


def _sheet_name_problems(names: list[Any], with_manifest: bool) -> list[Problem]:
    """Problems with the tables' sheet names (the manifest's sheet, if any, is named ``manifest``)."""
    problems = []
    seen: dict[str, str] = {"manifest": "manifest"} if with_manifest else {}
    for name in names:
        if not isinstance(name, str):
            problems.append(Problem(f"sheet {name!r}", f"sheet names must be text, got {type(name).__name__}"))
            continue
        reason = ""
        if not 1 <= len(name) <= 31:
            reason = f"{len(name)} characters long; Excel sheet names have 1 to 31"
        elif _SHEET_BAD.search(name):
            reason = "Excel sheet names cannot hold any of [ ] : * ? / \\"
        elif name.startswith("'") or name.endswith("'"):
            reason = "Excel sheet names cannot start or end with an apostrophe"
        elif name.lower() == "history":
            reason = "'History' is reserved by Excel"
        elif name.lower() == "manifest" and with_manifest:
            reason = "the manifest is written to the sheet 'manifest'; rename the table"
        elif name.lower() in seen:
            reason = f"Excel ignores case in sheet names, so it is the same sheet as {seen[name.lower()]!r}"
        if reason:
            problems.append(Problem(f"sheet {name!r}", reason))
        seen.setdefault(name.lower(), name)
    return problems


def _excel_frame(df: pd.DataFrame, sheet: str) -> tuple[pd.DataFrame, list[Problem]]:
    """A copy of ``df`` whose cells openpyxl writes with their type, and the problems found."""
    where = f"table {sheet!r}"
    problems: list[Problem] = []
    rows, cols = df.shape
    if rows > EXCEL_MAX_ROWS:
        problems.append(Problem(where, f"{rows:,} rows, more than the {EXCEL_MAX_ROWS:,} data rows of an Excel "
                                "sheet; write it as csv, parquet or sav"))
    if cols > EXCEL_MAX_COLUMNS:
        problems.append(Problem(where, f"{cols:,} columns, more than the {EXCEL_MAX_COLUMNS:,} of an Excel sheet; "
                                "write it as csv, parquet or sav"))
    if problems:  # too big to check cell by cell
        return df, problems
    problems += [Problem(f"{where}, {p.where}", p.message, p.examples) for p in _name_problems(df, "xlsx")]
    header_bad = [c for c in df.columns if isinstance(c, str) and _EXCEL_ILLEGAL.search(c)]
    if header_bad:
        problems.append(Problem(where, "column names with control characters an .xlsx file cannot hold: "
                                + ", ".join(map(repr, header_bad)) + "; rename them"))
    columns = []
    for i, col in enumerate(df.columns):
        converted = _excel_column(df.iloc[:, i].reset_index(drop=True))
        problems += _excel_cell_problems(converted, f"{where}, column {col!r}", df.index)
        columns.append(converted)
    out = pd.concat(columns, axis=1, ignore_index=True) if columns else pd.DataFrame(index=pd.RangeIndex(rows))
    out.columns = df.columns
    return out, problems


def _excel_column(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return s.astype(object).where(s.notna(), None)
    if isinstance(dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
        dtype = s.dtype
    if pd.api.types.is_datetime64_dtype(dtype):
        present = s.dropna()
        if len(present) and bool((present == present.dt.normalize()).all()):
            return pd.Series([None if v is pd.NaT else v.date() for v in s], index=s.index, dtype=object)
        return s
    if pd.api.types.is_timedelta64_dtype(dtype):
        return s.dt.total_seconds() / 86_400.0
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype) \
            or pd.api.types.is_float_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        return s
    if dtype == np.dtype(object):
        values = s.to_numpy()
        return pd.Series([None if _missing(v) else v if isinstance(v, (str, bool, int, float, dt.date, np.bool_,
                                                                          np.integer, np.floating))
                          else str(v) for v in values], index=s.index, dtype=object)
    return _as_text(s)


def _excel_cell_problems(s: pd.Series, where: str, index: pd.Index) -> list[Problem]:
    """Integers Excel cannot store exactly, text too long or with characters an .xlsx file cannot hold."""
    problems: list[Problem] = []
    if pd.api.types.is_integer_dtype(s.dtype):
        big = _too_big(s)
    elif _is_text(s.dtype):
        values = s.to_numpy(dtype=object)
        big = np.fromiter((isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                           and abs(int(v)) > _EXACT for v in values), dtype=bool, count=len(values))
    else:
        return problems
    if big.any():
        problems.append(Problem(where, f"{_count(big, 'integer', 'is')} beyond 2**53 = {_EXACT:,}, which Excel "
                                "cannot store exactly; convert the column to text or write csv or parquet",
                                _rows(big, index)))
    if not _is_text(s.dtype):
        return problems
    text = [(i, v) for i, v in enumerate(s.to_numpy(dtype=object)) if isinstance(v, str)]
    long = np.zeros(len(s), dtype=bool)
    illegal = np.zeros(len(s), dtype=bool)
    for i, v in text:
        long[i] = len(v) > EXCEL_MAX_CELL
        illegal[i] = _EXCEL_ILLEGAL.search(v) is not None
    if long.any():
        problems.append(Problem(where, f"{_cells(long, 'is')} longer than the {EXCEL_MAX_CELL:,} characters of an "
                                "Excel cell; write csv, parquet or sav",
                                _rows(long, index)))
    if illegal.any():
        problems.append(Problem(where, f"{_cells(illegal, 'holds')} control characters an .xlsx file cannot "
                                "hold (\\x00-\\x08, \\x0b, \\x0c, \\x0e-\\x1f); remove them or write csv or "
                                "parquet", _rows(illegal, index)))
    return problems


def _plain_cells(sheet: Any) -> None:
    """Text that openpyxl took for a formula (it starts with ``=``) back to text; empty text to empty cells."""
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type == "f":
                cell.data_type = "s"
            elif cell.value == "":
                cell.value = None


def _manifest_frame(manifest: Mapping[str, Any]) -> pd.DataFrame:
    keys, values = [], []
    for key, value in _flatten(manifest, ""):
        keys.append(key)
        values.append(value)
    return pd.DataFrame({"key": pd.Series(keys, dtype=object), "value": pd.Series(values, dtype=object)})


def _flatten(mapping: Mapping[Any, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for k, v in mapping.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            if v:
                yield from _flatten(v, key)
            else:
                yield key, None
        elif isinstance(v, (list, tuple, set, frozenset)):
            yield key, ", ".join(_manifest_text(e) for e in v)
        else:
            yield key, _manifest_value(v)


def _manifest_value(v: Any) -> Any:
    if _missing(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or isinstance(v, float) and math.isfinite(v) or isinstance(v, (str, dt.date)):
        return v
    if isinstance(v, int):
        return v if abs(v) <= _EXACT else str(v)
    return _manifest_text(v)


def _manifest_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (Mapping, list, tuple)):
        return json.dumps(v, default=str)
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)
