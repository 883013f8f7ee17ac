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
from .pipeline import ChunkSource, FrameSource, plan, run, whole_clients
from .result import PATTERNS, Detection
from .validation import check_number

__all__ = ["FolderSink", "detect_file", "json_safe"]

TABLES = ("episodes", "sessions", "clients")


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
    rule, params, client, session, score, scale, min_sessions
        As for :func:`alliance_ts.detect`.
    in_format : str, optional
        Input format (default: from the extension).
    out_format : {"csv", "parquet"}
    sheet, sep
        Excel sheet; CSV delimiter (default: detected).
    encoding, decimal : str
        CSV text encoding (default UTF-8) and decimal mark (default ``"."``).
    wide : mapping, optional
        The input is wide: keyword arguments of :func:`alliance_ts.to_long`
        (e.g. ``{"client": "id"}``); then ``session`` and ``score`` name the
        produced columns.
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
        parameter used, library version, counts, output files.

    Raises
    ------
    InvalidInputError
        An unusable output folder, unreadable input, bad parameters, or
        invalid data (every problem, once).
    """
    raw = os.fspath(path)  # may be a glob or a URL for the Dask engine
    path = Path(path)
    problems: list[Problem] = []
    if out_format not in ("csv", "parquet"):
        problems.append(Problem("parameter 'out_format'", f"must be 'csv' or 'parquet', got {out_format!r}"))
    check_number(problems, "chunk_rows", chunk_rows, low=1, integer=True)
    if stream and wide:
        problems.append(Problem("parameter 'wide'", "streaming reads long files; convert wide files in memory"))
    if dask is not None and (stream or wide):
        problems.append(Problem("parameter 'dask'",
                                "the Dask engine reads long CSV or Parquet files; drop streaming and wide"))
    if workers is not None:
        check_number(problems, "workers", workers, low=1, integer=True)
    problems += check_text_options(encoding, decimal, sep)
    id_column = dict(wide).get("client", client) if wide else client
    job, found, _ = plan(rule, dict(params or {}), client=id_column, session=session, score=score, scale=scale,
                         min_sessions=min_sessions, context="alliance_ts")
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

                def pieces():
                    return whole_clients(iter_chunks(path, format=fmt, sep=sep, chunk_rows=chunk_rows, text=text,
                                                     encoding=encoding, decimal=decimal), job.layout.client)

                try:
                    run(ChunkSource(pieces, progress=bar.update if bar is not None else None), job, sink)
                finally:
                    if bar is not None:
                        bar.close()
            else:
                bar = _bar(progress, "reading", 3, unit="step")
                try:
                    frame, read_meta = read_table(path, format=fmt, sheet=sheet, sep=sep, text=text,
                                                  encoding=encoding, decimal=decimal)
                    if wide:
                        frame = to_long(frame, session_name=session, score_name=score, **dict(wide))
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
                **{k: read_meta[k] for k in ("sep", "encoding", "decimal") if k in read_meta},
                **({"value_labels": read_meta["value_labels"]} if read_meta.get("value_labels") else {}),
                **({"missing_ranges": read_meta["missing_ranges"]} if read_meta.get("missing_ranges") else {}),
            },
            "mode": "streaming" if stream else f"dask ({dask})" if dask is not None else "in memory",
            "rule": job.rule_name,
            "params": sink.params,
            "counts": sink.counts,
            "escape_formulas": bool(escape_formulas),
            "outputs": [f"{name}.{out_format}" for name in TABLES],
        }
        manifest = json_safe(manifest)
        folder.commit(manifest)
    return manifest


class FolderSink:
    """Writes each labelled chunk's tables into an output folder (appending) and counts them."""

    def __init__(self, folder: OutputFolder, fmt: str, *, escape: bool = True, group: str | None = None) -> None:
        self.writers = {name: _Appender(folder.path(f"{name}.{fmt}"), fmt, escape) for name in TABLES}
        self.group = group
        self.params: dict[str, Any] = {}
        self.counts: dict[str, Any] = {
            "rows": 0, "clients": 0, "included": 0, "not_included": 0, "episodes": 0,
            "repaired": 0, "unresolved": 0, "patterns": {p: 0 for p in PATTERNS},
        }

    def add(self, part: Detection) -> None:
        for name in TABLES:
            self.writers[name].add(getattr(part, name))
        self.params = part.params
        for k, v in _counts(part).items():
            if k == "patterns":
                for p, n in v.items():
                    self.counts["patterns"][p] += n
            elif k == "raters":
                raters = self.counts.setdefault("raters", {})
                for r, n in v.items():
                    raters[r] = raters.get(r, 0) + n
            else:
                self.counts[k] = self.counts.get(k, 0) + v

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


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
    if "rater" in c.columns:  # psq: one clients row per client and rater; the counts above are of those rows
        counts["clients"] = int(c["client"].nunique())
        counts["client_rater_rows"] = int(len(c))
        counts["raters"] = {str(r): int(n) for r, n in c["rater"].value_counts(sort=False).items()}
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
