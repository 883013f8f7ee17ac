"""Reading and writing research data files.

Formats (by file extension, or ``format=``):

- CSV (``.csv``, ``.txt``, ``.tsv``): the delimiter is detected from the first
  lines (``,`` ``;`` tab ``|``) unless given;
- Parquet (``.parquet``, ``.pq``), needs ``pyarrow``;
- Excel (``.xlsx``), needs ``openpyxl``; ``sheet=`` picks a sheet;
- SPSS (``.sav``, ``.zsav``) and Stata (``.dta``), need ``pyreadstat``.

SPSS and Stata: scores are read as their numeric codes (value labels are not
applied); user-defined missing values (SPSS ``MISSING VALUES``, Stata's
``.a``-``.z``) are read as missing, so they count as missed sessions. The
value labels found are reported by :func:`read_table` in its metadata (and in
the command line's manifest).

Optional libraries are imported only when needed, with an install hint.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InvalidInputError, Problem

__all__ = ["FORMATS", "check_readable", "file_sha256", "guess_format", "iter_chunks", "need", "read_table", "write_atomic",
           "write_table"]

FORMATS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "excel", ".xlsm": "excel",
    ".sav": "spss", ".zsav": "spss",
    ".dta": "stata",
}
_EXTRAS = {"parquet": ("pyarrow", "parquet"), "excel": ("openpyxl", "excel"), "spss": ("pyreadstat", "spss"), "stata": ("pyreadstat", "spss")}


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


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a text table, from its first 64 kB (``,`` when unsure)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        sample = fh.read(65536)
    if path.suffix.lower() == ".tsv":
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def read_table(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    sheet: str | int | None = None,
    sep: str | None = None,
    columns: list[str] | None = None,
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
        Read only these columns (Parquet, SPSS, Stata; CSV filters after
        reading the header).

    Returns
    -------
    (DataFrame, dict)
        The table and metadata: ``format``, ``sep`` (CSV), ``value_labels``
        (SPSS/Stata: column -> {code: label}) and ``missing_ranges`` (SPSS
        user-defined missing values).

    Raises
    ------
    InvalidInputError
        Unknown format, missing or unreadable file, a file that is not a
        table of that format, or missing requested columns.
    """
    path = Path(path)
    check_readable(path)
    fmt = guess_format(path, format)
    meta: dict[str, Any] = {"format": fmt}
    try:
        if fmt == "csv":
            delim = sep or sniff_delimiter(path)
            meta["sep"] = delim
            df = pd.read_csv(path, sep=delim, usecols=lambda c: columns is None or c in columns,
                             encoding="utf-8-sig", low_memory=False)
        elif fmt == "parquet":
            need(*_EXTRAS["parquet"])
            df = pd.read_parquet(path, columns=columns)
        elif fmt == "excel":
            need(*_EXTRAS["excel"])
            df = pd.read_excel(path, sheet_name=0 if sheet is None else sheet)
            if columns is not None:
                df = df[[c for c in df.columns if c in columns]]
        else:
            pyreadstat = need(*_EXTRAS[fmt])
            reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
            df, info = reader(str(path), usecols=columns, apply_value_formats=False, user_missing=False)
            meta["value_labels"] = {
                col: {str(k): str(v) for k, v in labels.items()}
                for col, labels in (getattr(info, "variable_value_labels", None) or {}).items()
            }
            meta["missing_ranges"] = {
                col: [{k: _plain_json(v) for k, v in r.items()} for r in ranges]
                for col, ranges in (getattr(info, "missing_ranges", None) or {}).items()
            }
    except InvalidInputError:
        raise
    except Exception as err:  # a file that is not what its name says
        raise InvalidInputError(
            [Problem("input", f"cannot read {str(path)!r} as {fmt}: {type(err).__name__}: {err}")], "alliance_ts"
        ) from None
    return df, meta


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
) -> Iterator[pd.DataFrame]:
    """Read a CSV or Parquet file in pieces of about ``chunk_rows`` rows.

    Each piece's index holds the file's row numbers (0-based), so problems
    can name rows of the whole file. Parquet is read by record batches (row
    groups); CSV by ``pandas.read_csv(chunksize=...)``.
    """
    path = Path(path)
    check_readable(path)
    fmt = guess_format(path, format)
    offset = 0
    if fmt == "csv":
        delim = sep or sniff_delimiter(path)
        for chunk in pd.read_csv(path, sep=delim, chunksize=chunk_rows, encoding="utf-8-sig",
                                 usecols=lambda c: columns is None or c in columns, low_memory=False):
            chunk.index = pd.RangeIndex(offset, offset + len(chunk))
            offset += len(chunk)
            yield chunk
    elif fmt == "parquet":
        need(*_EXTRAS["parquet"])
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(offset, offset + len(chunk))
                offset += len(chunk)
                yield chunk
    else:
        raise InvalidInputError(
            [Problem("format", f"streaming reads CSV or Parquet, not {fmt}; drop the streaming option")], "alliance_ts"
        )


def write_table(df: pd.DataFrame, path: str | os.PathLike, format: str = "csv") -> None:
    """Write ``df`` atomically (to a temporary file, then renamed)."""
    fmt = format.lower()
    if fmt not in ("csv", "parquet"):
        raise InvalidInputError([Problem("format", f"output format must be 'csv' or 'parquet', got {format!r}")], "alliance_ts")
    if fmt == "parquet":
        need(*_EXTRAS["parquet"])
    with write_atomic(path) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


class write_atomic:
    """Context manager: a temporary path next to ``path``, renamed onto it on success.

    An interrupted write leaves no half-written file under the final name.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

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

