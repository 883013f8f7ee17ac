"""Reading and writing research data files.

Formats (by file extension, or ``format=``):

- CSV (``.csv``, ``.txt``, ``.tsv``): the delimiter is detected from the first
  lines (``,`` ``;`` tab ``|``) unless given; ``encoding=`` (default UTF-8,
  with or without a byte-order mark) and ``decimal=`` (``"."``; ``","`` for
  files from a European spreadsheet) as in :func:`pandas.read_csv`;
- Parquet (``.parquet``, ``.pq``), needs ``pyarrow``;
- Excel (``.xlsx``), needs ``openpyxl``; ``sheet=`` picks a sheet;
- SPSS (``.sav``, ``.zsav``) and Stata (``.dta``), need ``pyreadstat``.

**Reading is strict.** In a CSV file the id columns (``text=``) are read as
text exactly as written: ``007``, ``7``, ``1e3`` and ``NA`` are four
different clients, and only an empty cell is a missing id. Other columns
treat the usual missing markers (empty, ``NA``, ``N/A``, ``NaN``, ``null``,
...) as missing. A row with more or fewer fields than the header, or a header
that names a column twice, is an input error naming the lines; a file that
is not in the given encoding gets a hint naming ``--encoding``.

**Ids keep their type** in typed files: integer ids in Parquet come back as
integers even when some are missing; SPSS, Stata and Excel store numbers as
floating point, so numeric ids whose values are all whole numbers come back
as integers (``12``, not ``12.0``).

SPSS and Stata: scores are read as their numeric codes (value labels are not
applied); user-defined missing values (SPSS ``MISSING VALUES``, Stata's
``.a``-``.z``) are read as missing, so they count as missed sessions. The
value labels found are reported by :func:`read_table` in its metadata (and in
the command line's manifest).

**Writing.** :func:`write_table` writes a whole file or nothing (a temporary
name in the same folder, renamed when complete), with the permissions the
umask gives. In CSV output, text cells that a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, and not a plain number such as ``-5``) are written with a leading
apostrophe (``'=HYPERLINK(...)``), the usual defence against formula
injection; ``escape_formulas=False`` writes them verbatim.

Optional libraries are imported only when needed, with an install hint.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import importlib
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem

__all__ = [
    "FORMATS",
    "check_readable",
    "csv_options",
    "escape_formulas",
    "file_sha256",
    "guess_format",
    "iter_chunks",
    "need",
    "read_table",
    "write_atomic",
    "write_table",
]

FORMATS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "excel", ".xlsm": "excel",
    ".sav": "spss", ".zsav": "spss",
    ".dta": "stata",
}
_EXTRAS = {"parquet": ("pyarrow", "parquet"), "excel": ("openpyxl", "excel"), "spss": ("pyreadstat", "spss"),
           "stata": ("pyreadstat", "spss")}

#: Cells read as missing in CSV columns other than the ids (pandas' defaults).
MISSING_MARKERS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)
DEFAULT_ENCODING = "utf-8-sig"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def need(module: str, extra: str, purpose: str = "this format") -> Any:
    """Import an optional dependency, or raise InvalidInputError with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - the all extra installs every one
        raise InvalidInputError(
            [Problem(extra, f"{purpose} needs the package {module.split('.')[0]!r}: "
                            f"pip install 'alliance_ts[{extra}]'")],
            "alliance_ts",
        ) from None


def guess_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format name for ``path`` (from ``format`` or the extension)."""
    if format:
        fmt = format.lower()
        if fmt not in set(FORMATS.values()):
            raise InvalidInputError(
                [Problem("format", f"unknown format {format!r}; known: {', '.join(sorted(set(FORMATS.values())))}")],
                "alliance_ts",
            )
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(
            [Problem("input", f"cannot tell the format of {str(path)!r} from its extension; "
                              f"use one of {', '.join(sorted(FORMATS))} or give the format "
                              "(format=, on the command line --input-format)")],
            "alliance_ts",
        )
    return FORMATS[suffix]


def check_readable(path: str | os.PathLike) -> None:
    """Raise InvalidInputError unless ``path`` is an existing, readable, non-empty file."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError([Problem("input", f"no such file: {str(path)!r}")], "alliance_ts")
    if path.is_dir():
        raise InvalidInputError([Problem("input", f"{str(path)!r} is a folder, not a file")], "alliance_ts")
    if not os.access(path, os.R_OK):
        raise InvalidInputError([Problem("input", f"cannot read {str(path)!r} (permission denied)")], "alliance_ts")
    if path.stat().st_size == 0:
        raise InvalidInputError([Problem("input", f"{str(path)!r} is empty")], "alliance_ts")


def check_text_options(encoding: str, decimal: str, sep: str | None) -> list[Problem]:
    """Problems with the CSV options (an unknown encoding, a decimal mark that is not one character)."""
    problems = []
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        problems.append(Problem("encoding", f"unknown text encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)"))
    if not (isinstance(decimal, str) and len(decimal) == 1):
        problems.append(Problem("decimal", f"the decimal mark must be one character ('.' or ','), got {decimal!r}"))
    if sep is not None and not (isinstance(sep, str) and len(sep) == 1):
        problems.append(Problem("sep", f"the delimiter must be one character, got {sep!r}"))
    if sep is not None and sep == decimal:
        problems.append(Problem("sep", f"the delimiter and the decimal mark are both {sep!r}"))
    return problems


def sniff_delimiter(path: Path, encoding: str = DEFAULT_ENCODING) -> str:
    """The delimiter of a text table, from its first 64 kB (``,`` when unsure)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        sample = fh.read(65536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def csv_options(text: Sequence[str], encoding: str = DEFAULT_ENCODING, decimal: str = ".",
                header: Sequence[str] | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`pandas.read_csv` for strict reading.

    The ``text`` columns are read as text exactly as written (no missing
    markers: an empty cell is read as ``""``, which the validator reports as
    a missing id); every other column of ``header`` treats
    :data:`MISSING_MARKERS` as missing.
    """
    others = [c for c in (header or []) if c not in text]
    return {
        "encoding": encoding,
        "decimal": decimal,
        "dtype": {c: str for c in text},
        "keep_default_na": False,
        "na_values": {c: list(MISSING_MARKERS) for c in others},
    }


def read_header(path: Path, sep: str, encoding: str) -> list[str]:
    """The header row of a CSV file."""
    try:
        with open(path, newline="", encoding=encoding) as fh:
            return next(csv.reader(fh, delimiter=sep), [])
    except UnicodeDecodeError as err:
        raise InvalidInputError([_decode_problem(path, encoding, err)], "alliance_ts") from None


def _decode_problem(path: Path, encoding: str, err: UnicodeDecodeError) -> Problem:
    byte = err.object[err.start:err.start + 1].hex() if isinstance(err.object, (bytes, bytearray)) else "?"
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:  # pragma: no cover - the file was just read
        head = b""
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return Problem("input", f"{str(path)!r} is UTF-16 text (Excel's 'Unicode text'): give the encoding "
                       "(encoding=, on the command line --encoding utf-16)")
    return Problem(
        "input",
        f"{str(path)!r} is not {encoding!r} text (byte 0x{byte} at position {err.start}); files saved by Excel "
        "on Windows are often cp1252 or latin-1: give the encoding (encoding=, on the command line --encoding "
        "cp1252)",
    )


def decode_problems(path: Path, encoding: str, block: int = 1 << 24) -> list[Problem]:
    """A problem when the file is not text in ``encoding`` (read in blocks)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(block), b""):
            try:
                decoder.decode(piece)
            except UnicodeDecodeError as err:
                shifted = UnicodeDecodeError(err.encoding, err.object, err.start, err.end, err.reason)
                problem = _decode_problem(path, encoding, shifted)
                return [Problem(problem.where, problem.message.replace(f"position {err.start}",
                                                                       f"position {offset + err.start}"))]
            offset += len(piece)
    return []


def csv_problems(path: Path, sep: str, encoding: str, header: list[str]) -> list[Problem]:
    """Duplicated header names, and rows with more or fewer fields than the header.

    Blank lines are skipped (as pandas does). Quoted fields (which may hold
    the delimiter or line breaks) are counted by the :mod:`csv` module; files
    without quotes by a fast scan of the bytes.
    """
    problems = []
    counts: dict[str, list[int]] = {}
    for i, name in enumerate(header, start=1):
        counts.setdefault(name, []).append(i)
    for name, where in counts.items():
        if len(where) > 1:
            problems.append(Problem(
                f"column {name!r}",
                f"appears {len(where)} times in the header (columns {', '.join(map(str, where))}); "
                "rename the copies so that every column has its own name",
            ))
    bad_lines, n_bad = _ragged_lines(path, sep, encoding, len(header))
    if n_bad:
        examples = tuple(f"line {line} has {n} field{'s' if n != 1 else ''}" for line, n in bad_lines)
        problems.append(Problem(
            "input",
            f"{n_bad} line{'s' if n_bad != 1 else ''} of {str(path)!r} "
            f"{'have' if n_bad != 1 else 'has'} a different number of fields than the header ({len(header)}); "
            "fix or remove them (a wrong delimiter? then give --sep)",
            examples,
        ))
    return problems


def _ascii_compatible(encoding: str) -> bool:
    name = codecs.lookup(encoding).name
    return name in ("utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15", "cp1250",
                    "iso8859-2", "mac-roman")


def _ragged_lines(path: Path, sep: str, encoding: str, expected: int, limit: int = 5):
    """(first ``limit`` (line number, fields) with a field count other than ``expected``, their count)."""
    if _ascii_compatible(encoding) and not _needs_csv_module(path):
        return _ragged_bytes(path, sep.encode("ascii"), expected, limit)
    bad: list[tuple[int, int]] = []
    n_bad = 0
    with open(path, newline="", encoding=encoding) as fh:
        reader = csv.reader(fh, delimiter=sep)
        next(reader, None)
        for row in reader:
            if not row:  # an empty line (a line of spaces is a row of one field, as in the fast scan)
                continue
            if len(row) != expected:
                n_bad += 1
                if len(bad) < limit:
                    bad.append((reader.line_num, len(row)))
    return bad, n_bad


def _needs_csv_module(path: Path, block: int = 1 << 24) -> bool:
    """Whether the file has quotes or lone carriage returns (line breaks the byte scan does not count)."""
    last = b""
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(block), b""):
            if b'"' in piece:
                return True
            data = last + piece
            lone = data.replace(b"\r\n", b"")
            if b"\r" in lone[:-1] or (lone.endswith(b"\r") and len(piece) < block):
                return True
            last = data[-1:]
    return False


def _ragged_bytes(path: Path, sep: bytes, expected: int, limit: int, block: int = 1 << 24):
    """Field counts by counting delimiter bytes per line, in blocks (no quotes in the file)."""
    bad: list[tuple[int, int]] = []
    n_bad = 0
    line_no = 0  # lines completed so far
    carry = b""
    header_done = False
    sep_byte = sep[0]
    with open(path, "rb") as fh:
        while True:
            piece = fh.read(block)
            data = carry + piece
            if not piece:
                if not data:
                    break
                data += b"\n"  # the last line without a line break
            arr = np.frombuffer(data, dtype=np.uint8)
            ends = np.flatnonzero(arr == 10)
            if ends.size == 0:
                carry = data
                continue
            last = int(ends[-1]) + 1
            body = arr[:last]
            starts = np.r_[0, ends[:-1] + 1]
            seps = np.bincount(np.searchsorted(ends, np.flatnonzero(body == sep_byte)), minlength=ends.size)
            length = ends - starts
            cr = (length > 0) & (body[np.maximum(ends - 1, 0)] == 13)
            blank = (length - cr) == 0
            fields = seps + 1
            numbers = line_no + 1 + np.arange(ends.size)
            check = ~blank
            if not header_done:
                first = int(np.flatnonzero(~blank)[0]) if (~blank).any() else None
                if first is not None:
                    check[: first + 1] = False
                    header_done = True
                else:
                    check[:] = False
            wrong = check & (fields != expected)
            n_bad += int(wrong.sum())
            for i in np.flatnonzero(wrong)[: max(0, limit - len(bad))]:
                bad.append((int(numbers[i]), int(fields[i])))
            line_no += ends.size
            carry = data[last:]
            if not piece:
                break
    return bad, n_bad


def _typed_ids(df: pd.DataFrame, text: Sequence[str]) -> pd.DataFrame:
    """Whole-number float ids (SPSS, Stata, Excel store numbers as floats) as integers.

    A column of numbers becomes a nullable integer column; in a column that
    mixes numbers and text (Excel), each whole number becomes an int and text
    stays text, and an empty text cell is a missing id.
    """
    for col in text:
        if col in df.columns and not isinstance(df[col], pd.DataFrame) and df[col].dtype == np.dtype(object):
            values = df[col].to_numpy(dtype=object)
            if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) or v is None for v in values):
                numeric = pd.to_numeric(df[col], errors="coerce")
                df[col] = numeric
            else:
                df[col] = pd.Series([_whole(v) for v in values], index=df.index, dtype=object)
                continue
        if col in df.columns and not isinstance(df[col], pd.DataFrame) and pd.api.types.is_float_dtype(df[col].dtype):
            values = df[col].to_numpy(dtype=float, na_value=np.nan)
            finite = values[np.isfinite(values)]
            if finite.size and np.all(finite == np.floor(finite)) and np.all(np.abs(finite) < 2**53):
                df[col] = df[col].astype("Int64")
    return df


def _whole(v: Any) -> Any:
    """A whole-number float as an int; empty text as missing; anything else unchanged."""
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer() and abs(float(v)) < 2**53:
        return int(v)
    if isinstance(v, str) and v == "":
        return None
    return v


def _decimal_cells(df: pd.DataFrame, decimal: str, text: Sequence[str]) -> pd.DataFrame:
    """Numbers written with ``decimal`` in columns pandas left as text because of another cell.

    pandas converts a column with a decimal comma only when every cell is a
    number; one ``"abc"`` leaves ``"45,5"`` as text too, and every score of
    the column would be reported. Here each such cell becomes its number and
    the other cells stay as written, so that the validator names only them.
    """
    if decimal == ".":
        return df
    for col in df.columns:
        if col in text or isinstance(df[col], pd.DataFrame):
            continue
        if not (df[col].dtype == np.dtype(object) or pd.api.types.is_string_dtype(df[col].dtype)):
            continue
        cells = df[col].astype(object)
        # vectorised string operations (a text covariate column can have millions of cells)
        written = cells.astype("string").str.strip().str.replace(decimal, ".", regex=False)
        numbers = pd.to_numeric(written, errors="coerce")
        # only cells written with the decimal mark: "12" stays as written (the validator reads it as a
        # number where a number is wanted; a text covariate such as a site code keeps its text)
        found = (numbers.notna() & written.str.contains(".", regex=False)).fillna(False).astype(bool)
        if bool(found.any()):
            fixed = cells.copy()
            fixed[found] = numbers[found].astype(float)
            df[col] = fixed
    return df


def _text_ids(df: pd.DataFrame, text: Sequence[str]) -> pd.DataFrame:
    """Empty id cells of a CSV file are missing ids (nothing else is)."""
    for col in text:
        if col in df.columns and not isinstance(df[col], pd.DataFrame):
            empty = df[col] == ""
            if bool(empty.any()):
                df[col] = df[col].where(~empty)
    return df


def read_table(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    sheet: str | int | None = None,
    sep: str | None = None,
    columns: list[str] | None = None,
    text: Sequence[str] = (),
    encoding: str = DEFAULT_ENCODING,
    decimal: str = ".",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a data file into a DataFrame.

    Parameters
    ----------
    path : path
    format : str, optional
        ``"csv"``, ``"parquet"``, ``"excel"``, ``"spss"`` or ``"stata"``;
        default from the extension.
    sheet : str or int, optional
        Excel sheet (default: the first).
    sep : str, optional
        CSV delimiter (default: detected).
    columns : list of str, optional
        Read only these columns (Parquet, SPSS, Stata; CSV and Excel filter
        after reading).
    text : sequence of str
        The id columns (client, rater): read as text exactly as written from
        CSV, and as integers from typed files when they are whole numbers.
    encoding : str, default "utf-8-sig"
        Text encoding of a CSV file (``"cp1252"``, ``"latin-1"``, ...).
    decimal : str, default "."
        Decimal mark of a CSV file (``","`` for ``4,5``).

    Returns
    -------
    (DataFrame, dict)
        The table and metadata: ``format``, ``sep``, ``encoding`` and
        ``decimal`` (CSV), ``value_labels`` (SPSS/Stata: column -> {code:
        label}) and ``missing_ranges`` (SPSS user-defined missing values).

    Raises
    ------
    InvalidInputError
        Unknown format, missing or unreadable file, a file that is not a
        table of that format, a CSV file with ragged rows, a duplicated
        column name or text not in ``encoding``.
    """
    path = Path(path)
    check_readable(path)
    fmt = guess_format(path, format)
    meta: dict[str, Any] = {"format": fmt}
    problems = check_text_options(encoding, decimal, sep) if fmt == "csv" else []
    if problems:
        raise InvalidInputError(problems, "alliance_ts")
    try:
        if fmt == "csv":
            delim = sep or sniff_delimiter(path, encoding)
            meta.update(sep=delim, encoding=encoding, decimal=decimal)
            header = read_header(path, delim, encoding)
            problems = csv_problems(path, delim, encoding, header)
            if problems:
                raise InvalidInputError(problems, "alliance_ts")
            df = pd.read_csv(path, sep=delim, low_memory=False, usecols=lambda c: columns is None or c in columns,
                             **csv_options([c for c in text if c in header], encoding, decimal, header))
            df = _decimal_cells(_text_ids(df, text), decimal, text)
        elif fmt == "parquet":
            need(*_EXTRAS["parquet"])
            df = _parquet_ids(pd.read_parquet(path, columns=columns), path, text)
        elif fmt == "excel":
            need(*_EXTRAS["excel"])
            _excel_duplicates(path, sheet)
            # the id columns as the cells hold them (text stays text: "007", "NA"),
            # the other columns with the usual missing markers
            header = _excel_header(path, sheet)
            df = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype={c: object for c in text},
                               keep_default_na=False,
                               na_values={c: list(MISSING_MARKERS) for c in header if c not in text})
            if columns is not None:
                df = df[[c for c in df.columns if c in columns]]
            df = _typed_ids(df, text)
        else:
            pyreadstat = need(*_EXTRAS[fmt])
            reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
            # SPSS: the declared missing values are read as they are and made missing here, so that
            # the manifest can say which were declared and how many cells each made missing
            df, info = reader(str(path), usecols=columns, apply_value_formats=False, user_missing=fmt == "spss")
            if fmt == "spss":
                meta["missing_recoded"] = _apply_missing_ranges(df, getattr(info, "missing_ranges", None) or {})
            df = _typed_ids(df, text)
            meta["value_labels"] = {
                col: {str(k): str(v) for k, v in labels.items()}
                for col, labels in (getattr(info, "variable_value_labels", None) or {}).items()
            }
            meta["variable_labels"] = {
                col: str(label) for col, label in (getattr(info, "column_names_to_labels", None) or {}).items()
                if label
            }
            meta["missing_ranges"] = {
                col: [{k: _plain_json(v) for k, v in r.items()} for r in ranges]
                for col, ranges in (getattr(info, "missing_ranges", None) or {}).items()
            }
    except InvalidInputError:
        raise
    except UnicodeDecodeError as err:
        raise InvalidInputError([_decode_problem(path, encoding, err)], "alliance_ts") from None
    except Exception as err:  # a file that is not what its name says
        raise InvalidInputError(
            [Problem("input", f"cannot read {str(path)!r} as {fmt}: {type(err).__name__}: {err}")], "alliance_ts"
        ) from None
    return df, meta


def _apply_missing_ranges(df: pd.DataFrame, ranges: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Make the SPSS user-missing values of each numeric column missing; the cells made missing per column."""
    counts = {}
    for col, spans in ranges.items():
        if col not in df.columns or not pd.api.types.is_numeric_dtype(df[col].dtype):
            continue
        values = df[col].to_numpy(dtype=float, na_value=np.nan)
        hit = np.zeros(values.size, dtype=bool)
        for span in spans:
            try:
                lo, hi = float(span["lo"]), float(span["hi"])
            except (KeyError, TypeError, ValueError):
                continue
            with np.errstate(invalid="ignore"):
                hit |= (values >= lo) & (values <= hi)
        if hit.any():
            df[col] = df[col].mask(hit)
        counts[col] = int(hit.sum())
    return counts


def _excel_header(path: Path, sheet: str | int | None) -> list[str]:
    """The header row of an Excel sheet (empty when the sheet does not exist: pandas reports it)."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb.worksheets[sheet] if isinstance(sheet, int) else (wb[sheet] if sheet is not None else wb.worksheets[0])
        header = next(ws.iter_rows(max_row=1, values_only=True), ())
    except (KeyError, IndexError):
        return []
    finally:
        wb.close()
    return [str(h) for h in header if h is not None]


def _excel_duplicates(path: Path, sheet: str | int | None) -> None:
    """Raise when the header row of the sheet names a column twice (pandas would rename the copies)."""
    names = _excel_header(path, sheet)
    problems = [
        Problem(f"column {name!r}", f"appears {names.count(name)} times in the header row; rename the copies")
        for name in dict.fromkeys(names) if names.count(name) > 1
    ]
    if problems:
        raise InvalidInputError(problems, "alliance_ts")


def _parquet_id_types(path: Path, text: Sequence[str]) -> dict[str, Any]:
    """For each id column of a Parquet file whose type is an integer, ``"Int64"`` (nullable)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    out = {}
    for col in text:
        if col in schema.names and pa.types.is_integer(schema.field(col).type):
            out[col] = pd.Int64Dtype()
    return out


def _parquet_ids(df: pd.DataFrame, path: Path, text: Sequence[str]) -> pd.DataFrame:
    for col in _parquet_id_types(path, text):
        if col in df.columns:
            df[col] = df[col].astype(pd.Int64Dtype())
    return df


def _plain_json(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def iter_chunks(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    sep: str | None = None,
    chunk_rows: int = 500_000,
    columns: list[str] | None = None,
    text: Sequence[str] = (),
    encoding: str = DEFAULT_ENCODING,
    decimal: str = ".",
) -> Iterator[pd.DataFrame]:
    """Read a CSV or Parquet file in pieces of about ``chunk_rows`` rows.

    Each piece's index holds the file's row numbers (0-based), so problems
    can name rows of the whole file. Parquet is read by record batches;
    CSV by ``pandas.read_csv(chunksize=...)``. The ``text`` (id) columns get
    one type for the whole file, whatever each piece holds: text from CSV,
    the file's integer type (nullable) from Parquet. The CSV checks of
    :func:`read_table` (ragged rows, duplicated names, encoding) run before
    the first piece.
    """
    path = Path(path)
    check_readable(path)
    fmt = guess_format(path, format)
    offset = 0
    if fmt == "csv":
        problems = check_text_options(encoding, decimal, sep)
        if problems:
            raise InvalidInputError(problems, "alliance_ts")
        delim = sep or sniff_delimiter(path, encoding)
        header = read_header(path, delim, encoding)
        problems = csv_problems(path, delim, encoding, header)
        if problems:
            raise InvalidInputError(problems, "alliance_ts")
        options = csv_options([c for c in text if c in header], encoding, decimal, header)
        try:
            for chunk in pd.read_csv(path, sep=delim, chunksize=chunk_rows, low_memory=False,
                                     usecols=lambda c: columns is None or c in columns, **options):
                chunk.index = pd.RangeIndex(offset, offset + len(chunk))
                offset += len(chunk)
                yield _decimal_cells(_text_ids(chunk, text), decimal, text)
        except UnicodeDecodeError as err:
            raise InvalidInputError([_decode_problem(path, encoding, err)], "alliance_ts") from None
    elif fmt == "parquet":
        need(*_EXTRAS["parquet"])
        import pyarrow.parquet as pq

        id_types = _parquet_id_types(path, text)
        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
                chunk = batch.to_pandas()
                for col, dtype in id_types.items():
                    if col in chunk.columns:
                        chunk[col] = chunk[col].astype(dtype)
                chunk.index = pd.RangeIndex(offset, offset + len(chunk))
                offset += len(chunk)
                yield chunk
    else:
        raise InvalidInputError(
            [Problem("format", f"streaming reads CSV or Parquet, not {fmt}; drop the streaming option")], "alliance_ts"
        )


# --------------------------------------------------------------------------
# writing


def escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells cannot run as spreadsheet formulas.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return, unless it is a plain number (``-5``, ``+1.5e3``), gets a leading
    apostrophe. Numbers, and text columns without such cells, are unchanged.

    Examples
    --------
    >>> import pandas as pd
    >>> escape_formulas(pd.DataFrame({"client": ["=1+1", "-5", "@cmd", "P01"]}))["client"].tolist()
    ["'=1+1", '-5', "'@cmd", 'P01']
    """
    out = None
    for col in df.columns:
        series = df[col]
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            cats = pd.Index(dtype.categories)
            if cats.dtype == object or pd.api.types.is_string_dtype(cats.dtype):
                fixed = [_escape(v) for v in cats]
                if fixed != list(cats):
                    out = df.copy() if out is None else out
                    out[col] = series.cat.rename_categories(fixed)
            continue
        if not (dtype == np.dtype(object) or pd.api.types.is_string_dtype(dtype)):
            continue
        values: Any = series.to_numpy(dtype=object)
        risky = np.fromiter((isinstance(v, str) and v.startswith(_FORMULA_START) for v in values), dtype=bool,
                            count=len(values))
        if risky.any():
            out = df.copy() if out is None else out
            fixed = values.copy()
            fixed[risky] = [_escape(v) for v in values[risky]]
            out[col] = pd.Series(fixed, index=df.index, dtype=dtype)
    return df if out is None else out


def csv_quoting(df: pd.DataFrame) -> Literal[0, 2]:
    """``csv.QUOTE_MINIMAL``, or ``csv.QUOTE_NONNUMERIC`` when a text cell holds a carriage return.

    Python's CSV writer quotes cells holding the delimiter, a quote or a line
    feed but not a lone carriage return, which readers take for a line
    break; quoting every text cell keeps such a table readable.
    """
    for col in df.columns:
        series = df[col]
        if series.dtype == np.dtype(object) or pd.api.types.is_string_dtype(series.dtype):
            if any(isinstance(v, str) and "\r" in v for v in series.to_numpy(dtype=object)):
                return 2  # csv.QUOTE_NONNUMERIC
    return 0  # csv.QUOTE_MINIMAL


def _escape(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(v):
        return "'" + v
    return v


def write_table(df: pd.DataFrame, path: str | os.PathLike, format: str = "csv", *,
                escape: bool = True) -> None:
    """Write ``df`` whole or not at all (a temporary file, then renamed).

    CSV cells that would run as spreadsheet formulas are neutralised unless
    ``escape=False`` (see :func:`escape_formulas`).
    """
    fmt = format.lower()
    if fmt not in ("csv", "parquet"):
        raise InvalidInputError([Problem("format", f"output format must be 'csv' or 'parquet', got {format!r}")],
                                "alliance_ts")
    if fmt == "parquet":
        need(*_EXTRAS["parquet"])
    with write_atomic(path) as tmp:
        if fmt == "csv":
            (escape_formulas(df) if escape else df).to_csv(tmp, index=False, quoting=csv_quoting(df))
        else:
            df.to_parquet(tmp, index=False)


class write_atomic:
    """Context manager: a temporary path next to ``path``, renamed onto it on success.

    An interrupted write leaves no half-written file under the final name,
    and no temporary file. The file gets the permissions the umask gives
    (as any file a program creates), not the 0600 of :func:`tempfile.mkstemp`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            name = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:  # pragma: no cover - a clash of 32 random bits
                continue
            os.close(fd)
            self.tmp = name
            return name
        raise OSError(f"cannot create a temporary file in {str(self.path.parent)!r}")  # pragma: no cover

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(block), b""):
            digest.update(piece)
    return digest.hexdigest()
