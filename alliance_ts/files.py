"""Label whole data files: in memory, streaming in bounded memory, or on a Dask cluster.

:func:`detect_file` reads a file, labels it and writes ``episodes``,
``sessions`` and ``clients`` tables plus a ``manifest.json`` into a folder,
through the one pipeline of :mod:`alliance_ts.pipeline`:

- in memory (default): the file is read whole (:func:`alliance_ts.io.read_table`)
  and labelled as :func:`alliance_ts.detect` labels a DataFrame;
- ``stream=True``: a CSV or Parquet file is read twice in pieces of whole
  clients (:class:`~alliance_ts.pipeline.ChunkSource`), so memory stays
  bounded whatever the file size: pass 1 validates every piece and draws the
  sample for sample-wide parameters; pass 2 labels every piece and appends
  its tables to the outputs;
- ``dask=...``: partitions on a Dask cluster (:mod:`alliance_ts.distributed`).

Results are identical in every mode; streaming keeps the file's client order,
where the other modes sort the tables by client id. Streaming needs the rows
of each client next to each other (any order within a client).

The output folder is written whole or not at all (:mod:`alliance_ts.output`):
an interrupted run leaves the previous outputs untouched, and ``--out`` is
checked before the input is read.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .errors import InvalidInputError, Problem
from .input import to_long
from .io import (
    DEFAULT_ENCODING,
    check_readable,
    check_text_options,
    csv_quoting,
    escape_formulas,
    file_sha256,
    guess_format,
    iter_chunks,
    read_header,
    read_table,
    sniff_delimiter,
)
from .output import OutputFolder
from .pipeline import ChunkSource, FrameSource, Job, _check_keep, merge_info, plan, run, whole_clients
from .result import PATTERNS, Detection, group_column
from .validation import check_number

__all__ = ["FolderSink", "detect_file", "json_safe", "load_frame", "user_names"]

TABLES = ("episodes", "sessions", "clients", "by_client")
#: Output formats of :func:`detect_file` (see :mod:`alliance_ts.export`).
OUT_FORMATS = ("csv", "parquet", "sav", "dta", "xlsx")


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy (tuples -> lists, NaN -> None, numpy -> Python)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def detect_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rule: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: str = "client",
    session: str = "session",
    score: str = "score",
    scale: Any = None,
    min_sessions: int = 3,
    missing: Any = None,
    check_codes: bool = True,
    keep: Any = None,
    session_every: Any = None,
    date_format: str | None = None,
    in_format: str | None = None,
    out_format: str = "csv",
    sheet: str | int | None = None,
    sep: str | None = None,
    encoding: str = DEFAULT_ENCODING,
    decimal: str = ".",
    wide: Mapping[str, Any] | None = None,
    stream: bool = False,
    chunk_rows: int = 500_000,
    progress: bool = False,
    dask: str | None = None,
    workers: int | None = None,
    escape_formulas: bool = True,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Label a data file and write the result tables and a manifest.

    Parameters
    ----------
    path : path
        CSV, Parquet, Excel, SPSS or Stata file (see :mod:`alliance_ts.io`).
    out_dir : path
        Folder for ``episodes.<fmt>``, ``sessions.<fmt>``, ``clients.<fmt>`` and
        ``manifest.json``: created, or replaced as a whole when it holds a
        previous output of alliance-ts (see :mod:`alliance_ts.output`).
    rule, params, client, session, score, scale, min_sessions, missing, check_codes, keep, session_every
        As for :func:`alliance_ts.detect`.
    date_format : str, optional
        How the session dates of a CSV file are written (``"%d.%m.%Y"``);
        by default a session column written entirely as ISO dates
        (``2024-03-01``, with or without a time) is read as dates.
    in_format : str, optional
        Input format (default: from the extension).
    out_format : {"csv", "parquet", "sav", "dta", "xlsx"}
        ``sav``/``dta`` write SPSS/Stata files with variable and value labels
        (:mod:`alliance_ts.export`); ``xlsx`` writes one workbook
        ``results.xlsx`` with a sheet per table and the manifest. These three
        hold the tables in memory until the end (also when streaming).
    sheet, sep
        Excel sheet; CSV delimiter (default: detected).
    encoding, decimal : str
        CSV text encoding (default UTF-8) and decimal mark (default ``"."``).
    wide : mapping, optional
        The input is wide: keyword arguments of :func:`alliance_ts.to_long`
        (e.g. ``{"client": "id", "columns": "wai_1..wai_20"}``); then
        ``session`` and ``score`` name the produced columns, and every column
        that is neither the id nor a session column is kept as a client
        covariate (unless ``keep`` names them).
    stream : bool, default False
        Read a CSV or Parquet file twice in pieces of whole clients (bounded
        memory; see the module docstring).
    chunk_rows : int
        Rows per piece when streaming.
    progress : bool
        Show a progress bar (tqdm) when standard error is a terminal.
    dask : str, optional
        Label on a Dask cluster: ``"local"`` starts a local cluster of
        ``workers`` processes; otherwise a scheduler address such as
        ``"tcp://scheduler:8786"``. ``path`` may then be a Parquet file, a
        folder of Parquet files, or a glob of CSV or Parquet files, on storage
        every worker can read. Results are identical to the in-memory path.
    workers : int, optional
        Workers of the local cluster (default: one per core).
    escape_formulas : bool, default True
        Write CSV text cells that a spreadsheet would run as formulas with a
        leading apostrophe (see :func:`alliance_ts.io.escape_formulas`).
    command : list of str, optional
        The command line, recorded in the manifest.

    Returns
    -------
    dict
        The manifest: input (path, format, SHA-256, rows), rule and every
        parameter used, library version, counts, output files. The folder
        also holds ``by_client.<fmt>`` (:meth:`Detection.by_client`) and
        ``methods.md`` (:meth:`Detection.methods`). Output columns carry the
        input's own names for the client id, session and score columns.

    Raises
    ------
    InvalidInputError
        An unusable output folder, unreadable input, bad parameters, or
        invalid data (every problem, once).
    """
    raw = os.fspath(path)  # may be a glob or a URL for the Dask engine
    path = Path(path)
    problems: list[Problem] = []
    if out_format not in OUT_FORMATS:
        problems.append(Problem("parameter 'out_format'", f"must be one of {', '.join(OUT_FORMATS)}; got "
                                f"{out_format!r}"))
    check_number(problems, "chunk_rows", chunk_rows, low=1, integer=True)
    if stream and wide:
        problems.append(Problem("parameter 'wide'", "streaming reads long files; convert wide files in memory"))
    if dask is not None and (stream or wide):
        problems.append(Problem("parameter 'dask'",
                                "the Dask engine reads long CSV or Parquet files; drop streaming and wide"))
    if dask is not None and date_format is not None:
        problems.append(Problem("parameter 'date_format'", "the Dask engine reads numbered sessions or typed dates "
                                "(Parquet); convert the dates first"))
    if workers is not None:
        check_number(problems, "workers", workers, low=1, integer=True)
    problems += check_text_options(encoding, decimal, sep)
    id_column = dict(wide).get("client", client) if wide else client
    job, found, _ = plan(rule, dict(params or {}), client=id_column, session=session, score=score, scale=scale,
                         min_sessions=min_sessions, missing=missing, check_codes=check_codes,
                         keep=None if wide else keep, session_every=session_every, context="alliance_ts")
    problems += found
    if problems or job is None:
        raise InvalidInputError(problems, "alliance_ts")
    if dask is not None:
        from .distributed import input_files

        files = input_files(raw)
        fmt = guess_format(files[0] if files else raw, in_format)
    else:
        check_readable(path)
        files = [path]
        fmt = guess_format(path, in_format)
    text = tuple(c for c in (job.layout.client, job.layout.group) if c is not None)
    started = _dt.datetime.now(_dt.UTC)
    read_meta: dict[str, Any] = {"format": fmt}
    with OutputFolder(out_dir, inputs=files or []) as folder:
        sink = FolderSink(folder, out_format, escape=escape_formulas,
                          group=job.layout.group_name if job.layout.group is not None else None)
        try:
            if dask is not None:
                from .distributed import DaskSource, dask_client, read_dask

                with dask_client(dask, workers):
                    ddf = read_dask(raw, format=fmt, sep=sep, text=text, encoding=encoding, decimal=decimal)
                    run(DaskSource.of(ddf, job), job, sink)
            elif stream:
                bar = _bar(progress, "checking", None)
                if fmt == "csv":
                    read_meta.update(sep=sep or sniff_delimiter(path, encoding), encoding=encoding, decimal=decimal)

                id_col = job.layout.client

                def pieces():
                    chunks = iter_chunks(path, format=fmt, sep=sep, chunk_rows=chunk_rows, text=text,
                                         encoding=encoding, decimal=decimal)
                    return whole_clients((session_dates(c, session, date_format) for c in chunks), id_col)

                try:
                    run(ChunkSource(pieces, progress=bar.update if bar is not None else None), job, sink)
                finally:
                    if bar is not None:
                        bar.close()
            else:
                bar = _bar(progress, "reading", 3, unit="step")
                try:
                    frame, read_meta, job = load_frame(path, job, fmt=fmt, sheet=sheet, sep=sep, encoding=encoding,
                                                       decimal=decimal, wide=wide, keep=keep, date_format=date_format)
                    _step(bar, "labelling")
                    run(FrameSource(frame), job, sink)
                    del frame
                    _step(bar, "writing")
                finally:
                    if bar is not None:
                        bar.close()
        except InvalidInputError as err:
            raise _with_delimiter_hint(err, path, fmt, sep, encoding) from None
        finally:
            sink.close()
        manifest: dict[str, Any] = {
            "alliance_ts": __version__,
            "created": started.isoformat(timespec="seconds"),
            "command": command,
            "input": {
                "path": raw,
                "format": fmt,
                "sha256": file_sha256(path) if files == [path] else None,
                **({"files": [{"path": str(f), "sha256": file_sha256(f)} for f in files]}
                   if files is not None and files != [path] else {}),
                "columns": {"client": id_column, "session": session, "score": score},
                **({"keep": list(job.layout.keep)} if job.layout.keep else {}),
                **({"missing_codes": {_code(k): n for k, n in sink.info.get("missing_counts", {}).items()}}
                   if job.layout.missing else {}),
                **({"observed_range": sink.info.get("observed_range")}
                   if sink.info.get("observed_range") and scale is None else {}),
                **({"dates": True, "session_every": sink.info.get("session_every")} if sink.info.get("dates")
                   else {}),
                **{k: read_meta[k] for k in ("sep", "encoding", "decimal") if k in read_meta},
                **({"value_labels": read_meta["value_labels"]} if read_meta.get("value_labels") else {}),
                **({"missing_ranges": read_meta["missing_ranges"]} if read_meta.get("missing_ranges") else {}),
                **({"missing_recoded": read_meta["missing_recoded"]} if read_meta.get("missing_recoded") else {}),
            },
            "mode": "streaming" if stream else f"dask ({dask})" if dask is not None else "in memory",
            "rule": job.rule_name,
            "params": sink.params,
            "counts": sink.counts,
            "escape_formulas": bool(escape_formulas),
            "outputs": sink.outputs(),
        }
        manifest = json_safe(manifest)
        sink.input_labels = (read_meta.get("variable_labels") or {}, read_meta.get("value_labels") or {})
        if read_meta.get("missing_ranges"):
            sink.extra_info["file_missing"] = {
                col: {"ranges": spans, "cells": read_meta.get("missing_recoded", {}).get(col, 0)}
                for col, spans in read_meta["missing_ranges"].items()
            }
        sink.finish(manifest)
        folder.commit(manifest)
    return manifest


def _code(value: float) -> str:
    """A missing-data code as the manifest shows it (999, not 999.0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def load_frame(
    path: Path,
    job: Job,
    *,
    fmt: str,
    sheet: Any = None,
    sep: str | None = None,
    encoding: str = DEFAULT_ENCODING,
    decimal: str = ".",
    wide: Mapping[str, Any] | None = None,
    keep: Any = None,
    date_format: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], Job]:
    """Read a whole file as the long table ``job`` reads: wide sheets converted, session dates parsed.

    For a wide sheet, the job is returned with the kept covariates (every
    column that is neither the id nor a session column, or ``keep``).
    """
    layout = job.layout
    text = tuple(c for c in (layout.client, layout.group) if c is not None)
    frame, meta = read_table(path, format=fmt, sheet=sheet, sep=sep, text=text, encoding=encoding, decimal=decimal)
    if wide:
        options = dict(wide)
        frame = to_long(frame, session_name=layout.session, score_name=layout.score_column or "score",
                        keep=keep, **options)
        kept = [c for c in frame.columns if c not in (layout.client, layout.session, layout.score_column)]
        problems: list[Problem] = []
        names = _check_keep(problems, kept, layout.client, layout.session, layout.score_column)
        if problems:
            raise InvalidInputError(
                [Problem(p.where, p.message + " (--keep chooses the columns of a wide sheet to carry)") for p in
                 problems], "alliance_ts")
        job = dataclasses.replace(job, layout=dataclasses.replace(layout, keep=names))
    return session_dates(frame, layout.session, date_format), meta, job


_ISO_DATE = r"^\s*\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*$"


def session_dates(frame: pd.DataFrame, session: str, date_format: str | None = None) -> pd.DataFrame:
    """The table with a text session column of dates read as dates.

    With ``date_format`` (``"%d.%m.%Y"``), the column is parsed with it and
    a cell that does not match is an input error naming the rows. Without
    it, a column written entirely as ISO dates (``2024-03-01``, optionally
    with a time) is read as dates; any other text is left for the
    validator to report.
    """
    if session not in frame.columns or isinstance(frame[session], pd.DataFrame):
        return frame
    col = frame[session]
    if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
        return frame
    present = col.notna() & (col.astype(str).str.strip() != "")
    if date_format is None:
        if not bool(present.any()) or not bool(col[present].astype(str).str.match(_ISO_DATE).all()):
            return frame
        parsed = pd.to_datetime(col.where(present), format="ISO8601", errors="coerce")
    else:
        parsed = pd.to_datetime(col.where(present), format=date_format, errors="coerce")
    bad = present & parsed.isna()
    if bool(bad.any()):
        rows = [f"row {i!r} (value {v!r})" for i, v in col[bad].head(5).items()]
        raise InvalidInputError([Problem(
            f"column {session!r}",
            f"{int(bad.sum())} row(s) with a session date not written as {date_format or 'YYYY-MM-DD'}",
            tuple(rows),
        )], "alliance_ts")
    out = frame.copy(deep=False)
    out[session] = parsed
    return out


def own_labels(info: Mapping[str, Any]) -> dict[str, str]:
    """Variable labels for the columns :func:`user_names` renames (SPSS, Stata)."""
    from .export import COLUMN_LABELS

    names = info.get("names") or {}
    generic = {"client": "client", "score": "score", ("date" if info.get("dates") else "session"): "session"}
    out = {}
    for label_of, role in generic.items():
        own = names.get(role)
        if own and label_of in COLUMN_LABELS:
            out[own] = COLUMN_LABELS[label_of]
    if names and names.get("score") is None:  # a rule that derives the session score from answers or codes
        out["score"] = "Session score by the rule (psq: higher rupture answer; observer: markers per segment)"
    return out


def write_result(res: Detection, path: str | os.PathLike, format: str | None = None, *, table: str | None = None,
                 escape: bool = True) -> list[str]:
    """Write a result as files (see :meth:`Detection.to_file`); returns the files written."""
    from .export import EXTENSIONS, FORMATS, write_frame, write_workbook

    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    fmt = (format or (suffix if suffix in FORMATS else "csv")).lower()
    problems: list[Problem] = []
    if fmt not in FORMATS:
        problems.append(Problem("parameter 'format'", f"must be one of {', '.join(FORMATS)}; got {format!r}"))
    if table is not None and table not in TABLES:
        problems.append(Problem("parameter 'table'", f"must be one of {', '.join(TABLES)}; got {table!r}"))
    if table is None and suffix in FORMATS and suffix != "xlsx":
        problems.append(Problem("parameter 'path'", f"{str(target)!r} names one .{suffix} file, but the result has "
                                f"{len(TABLES)} tables: give table= ({', '.join(map(repr, TABLES))}) to write one of "
                                f"them, or a folder name with format={suffix!r} to write them all"))
    if problems:
        raise InvalidInputError(problems, "Detection.to_file()")
    tables = {name: user_names(res.by_client() if name == "by_client" else getattr(res, name), res.info)
              for name in TABLES if table is None or name == table}
    labels = own_labels(res.info)
    manifest = json_safe({"alliance_ts": res.version, "rule": res.rule, "params": res.params,
                          "info": {k: v for k, v in res.info.items() if k != "missing_counts"},
                          "missing_counts": {str(k): v for k, v in res.info.get("missing_counts", {}).items()}})
    if table is not None:
        write_frame(tables[table], target, fmt, escape=escape, labels=labels)
        return [str(target)]
    if fmt == "xlsx" and suffix == "xlsx":
        write_workbook(tables, target, manifest=manifest, escape=escape)
        return [str(target)]
    written = []
    with OutputFolder(target, option="path") as folder:
        if fmt == "xlsx":  # one workbook, as the command line writes it
            write_workbook(tables, folder.path("results.xlsx"), manifest=manifest, escape=escape)
            written.append("results.xlsx")
        else:
            for name, t in tables.items():
                write_frame(t, folder.path(f"{name}{EXTENSIONS[fmt]}"), fmt, escape=escape, labels=labels)
                written.append(f"{name}{EXTENSIONS[fmt]}")
        with open(folder.path("methods.md"), "w", encoding="utf-8") as fh:
            fh.write("# Methods\n\n" + res.methods() + "\n")
        written.append("methods.md")
        folder.commit({**manifest, "outputs": written})
    return [str(target / name) for name in [*written, "manifest.json"]]


def user_names(table: pd.DataFrame, info: Mapping[str, Any]) -> pd.DataFrame:
    """``table`` with the generic ``client``/``session``/``score`` columns named as in the input.

    With date sessions, the ``date`` column takes the input's session column
    name and the numbered ``session`` keeps its name. A name that another
    column of the table already has is left generic.
    """
    names = info.get("names") or {}
    wanted = {"client": names.get("client"), "score": names.get("score")}
    if info.get("dates"):
        wanted["date"] = names.get("session")
    else:
        wanted["session"] = names.get("session")
    rename: dict[str, str] = {}
    for generic, own in wanted.items():
        if own and own != generic and generic in table.columns and own not in table.columns \
                and own not in rename.values():
            rename[generic] = own
    return table.rename(columns=rename) if rename else table


class FolderSink:
    """Writes each labelled chunk's tables into an output folder and counts them.

    CSV and Parquet tables are appended chunk by chunk (bounded memory);
    SPSS, Stata and Excel files are written at the end from the held
    chunks. :meth:`finish` writes those and ``methods.md``.
    """

    def __init__(self, folder: OutputFolder, fmt: str, *, escape: bool = True, group: str | None = None) -> None:
        self.folder, self.fmt, self.escape, self.group = folder, fmt, escape, group
        self.appending = fmt in ("csv", "parquet")
        self.writers = ({name: _Appender(folder.path(f"{name}.{fmt}"), fmt, escape) for name in TABLES}
                        if self.appending else {})
        self.held: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
        self.summaries: list[Detection] = []
        self.extra_info: dict[str, Any] = {}
        # the input file's variable and value labels (SPSS, Stata), for the columns carried over
        self.input_labels: tuple[dict[str, str], dict[str, dict[str, str]]] = ({}, {})
        self.params: dict[str, Any] = {}
        self.counts: dict[str, Any] = {
            "rows": 0, "clients": 0, "included": 0, "not_included": 0, "episodes": 0,
            "repaired": 0, "unresolved": 0, "patterns": {p: 0 for p in PATTERNS},
        }

    def add(self, part: Detection) -> None:
        tables = {"episodes": part.episodes, "sessions": part.sessions, "clients": part.clients,
                  "by_client": part.by_client()}
        for name, table in tables.items():
            table = user_names(table, part.info)
            if self.appending:
                self.writers[name].add(table)
            else:
                self.held[name].append(table)
        # what the Methods paragraph needs, compactly (copies: a slice would keep the chunk's tables alive)
        ids = [c for c in ("client", "rater", "coder") if c in part.clients.columns]
        brief = part.clients[[*ids, "included"]].copy()
        brief["reason"] = pd.Categorical(part.clients["reason"])
        self.summaries.append(Detection(part.episodes.iloc[:0].copy(), part.sessions.iloc[:0].copy(), brief,
                                        part.rule, part.params, part.version, part.info))
        self.params = part.params
        for k, v in _counts(part).items():
            if k == "patterns":
                for p, n in v.items():
                    self.counts["patterns"][p] += n
            elif k in ("raters", "coders"):
                raters = self.counts.setdefault(k, {})
                for r, n in v.items():
                    raters[r] = raters.get(r, 0) + n
            else:
                self.counts[k] = self.counts.get(k, 0) + v

    @property
    def info(self) -> dict[str, Any]:
        """The merged ``Detection.info`` of the chunks."""
        return merge_info([p.info for p in self.summaries])

    def outputs(self) -> list[str]:
        """The files written (besides manifest.json)."""
        tables = ["results.xlsx"] if self.fmt == "xlsx" else [f"{name}.{self.fmt}" for name in TABLES]
        return [*tables, "methods.md"]

    def summary(self) -> Detection:
        """The clients' inclusion and reasons of every chunk: enough for :meth:`Detection.methods`."""
        parts = self.summaries
        first = parts[0]
        return Detection(pd.concat([p.episodes for p in parts], ignore_index=True), first.sessions,
                         pd.concat([p.clients for p in parts], ignore_index=True), first.rule, first.params,
                         first.version, {**self.info, **self.extra_info})

    def close(self) -> None:
        for w in self.writers.values():
            w.close()

    def finish(self, manifest: Mapping[str, Any]) -> None:
        """Write the held tables (SPSS, Stata, Excel) and ``methods.md``."""
        from .export import write_frame, write_workbook

        if not self.appending:
            tables = {name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
                      for name, parts in self.held.items()}
            if self.fmt == "xlsx":
                write_workbook(tables, self.folder.path("results.xlsx"), manifest=manifest, escape=self.escape)
            else:
                variable_labels, value_labels = self.input_labels
                labels = {**own_labels(self.info), **variable_labels}
                keep = set(self.info.get("keep") or [])
                for name, table in tables.items():
                    write_frame(table, self.folder.path(f"{name}.{self.fmt}"), self.fmt, escape=self.escape,
                                labels={k: v for k, v in labels.items() if k in table.columns},
                                value_labels={k: v for k, v in value_labels.items() if k in keep})
        if self.summaries:
            with open(self.folder.path("methods.md"), "w", encoding="utf-8") as fh:
                fh.write("# Methods\n\n" + self.summary().methods() + "\n")


class _Appender:
    """Appends DataFrames to one CSV or Parquet file (inside the temporary output folder)."""

    def __init__(self, target: Path, fmt: str, escape: bool) -> None:
        self.target, self.fmt, self.escape = target, fmt, escape
        self.writer: Any = None
        self.first = True
        self.empty: pd.DataFrame | None = None

    def add(self, df: pd.DataFrame) -> None:
        if self.fmt == "csv":
            (escape_formulas(df) if self.escape else df).to_csv(
                self.target, index=False, mode="w" if self.first else "a", header=self.first, quoting=csv_quoting(df))
            self.first = False
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if len(df) == 0 and self.writer is None:
            self.empty = df  # a schema from an empty table can lack types: wait for rows
            return
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.target, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        elif self.fmt == "parquet" and self.empty is not None and not self.target.exists():
            self.empty.to_parquet(self.target, index=False)


def _with_delimiter_hint(err: InvalidInputError, path: Path, fmt: str, sep: str | None,
                         encoding: str) -> InvalidInputError:
    """Add a hint when a CSV was split on the wrong delimiter (one column named 'a;b;c')."""
    if fmt != "csv" or not any(p.where == "columns" for p in err.problems):
        return err
    try:
        header = read_header(path, sep or sniff_delimiter(path, encoding), encoding)
    except (InvalidInputError, OSError):
        return err
    hint = _delimiter_problem(pd.DataFrame(columns=header), fmt)
    return InvalidInputError(err.problems + hint, "alliance_ts") if hint else err


def _delimiter_problem(frame: pd.DataFrame, fmt: str) -> list[Problem]:
    if fmt != "csv" or len(frame.columns) != 1:
        return []
    name = str(frame.columns[0])
    other = next((d for d in (";", "\t", "|", ",") if d in name), None)
    if not other:
        return []
    shown = "\\t" if other == "\t" else other
    return [Problem("input",
                    f"the file was read as one column {name!r}: is the delimiter {shown!r}? (--sep '{shown}')")]


def _counts(res: Detection) -> dict[str, Any]:
    c = res.clients
    e = res.episodes
    patterns = c["pattern"].value_counts().reindex(list(PATTERNS), fill_value=0)
    counts = {
        "rows": int(len(res.sessions)),
        "clients": int(len(c)),
        "included": int(c["included"].sum()),
        "not_included": int((~c["included"]).sum()),
        "episodes": int(len(e)),
        "repaired": int((e["status"] == "repaired").sum()),
        "unresolved": int((e["status"] == "unresolved").sum()),
        "patterns": {k: int(v) for k, v in patterns.items()},
    }
    key = group_column(c)
    if key is not None:  # psq/observer: one clients row per client and rater (coder); the counts above are of those
        counts["clients"] = int(c["client"].nunique())
        counts[f"client_{key}_rows"] = int(len(c))
        counts[f"{key}s"] = {str(r): int(n) for r, n in c[key].value_counts(sort=False).items()}
    return counts


def _bar(progress: bool, desc: str, total: int | None, unit: str = "rows"):
    """A tqdm progress bar on standard error, silent when it is not a terminal."""
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - the cli extra installs it
        return None
    return tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(), leave=False)


def _step(bar, desc: str) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_description(desc)
