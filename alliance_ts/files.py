"""Label whole data files: in memory, or streaming in bounded memory.

:func:`detect_file` reads a file, labels it and writes ``episodes``,
``sessions`` and ``clients`` tables plus a ``manifest.json`` into a folder.
With ``stream=True`` a CSV or Parquet file is read twice in pieces of whole
clients, so memory stays bounded whatever the file size:

1. every piece is validated (all problems are collected and raised together
   before anything is written), the observed scores of analysed clients are
   counted, and the rows of the clients the sample-wide estimates use are
   kept (selected by a hash of the client id, exactly as in memory);
2. the rule's sample-wide parameters are estimated from those rows, then
   every piece is labelled by the same function as in memory
   (:func:`alliance_ts.detect.label_panel`) and appended to the outputs.

Results are identical to the in-memory path; streaming keeps the file's
client order, where the in-memory tables are sorted by client id. Streaming
needs the rows of each client next to each other (any order within a client).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .detect import detect, label_panel, resolve_rule
from .errors import InvalidInputError, Problem
from .input import to_long
from .io import check_readable, file_sha256, guess_format, iter_chunks, read_table, write_atomic, write_table
from . import panel as _panel
from .panel import client_hashes, sample_step, select_by_hash
from .result import PATTERNS, Detection
from .rules._base import check_number
from .validation import merge_problems, read_panel

__all__ = ["detect_file", "json_safe"]

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
    wide: Mapping[str, Any] | None = None,
    stream: bool = False,
    chunk_rows: int = 500_000,
    progress: bool = False,
    dask: str | None = None,
    workers: int | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Label a data file and write the result tables and a manifest.

    Parameters
    ----------
    path : path
        CSV, Parquet, Excel, SPSS or Stata file (see :mod:`alliance_ts.io`).
    out_dir : path
        Folder for ``episodes.<fmt>``, ``sessions.<fmt>``, ``clients.<fmt>`` and
        ``manifest.json`` (created if needed). Every file is written to a
        temporary name and renamed when complete.
    rule, params, client, session, score, scale, min_sessions
        As for :func:`alliance_ts.detect`.
    in_format : str, optional
        Input format (default: from the extension).
    out_format : {"csv", "parquet"}
    sheet, sep
        Excel sheet; CSV delimiter (default: detected).
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
        Unreadable input, bad parameters, or invalid data (every problem, once).
    """
    raw = os.fspath(path)  # may be a glob or a URL for the Dask engine
    path = Path(path)
    out_dir = Path(out_dir)
    problems: list[Problem] = []
    if out_format not in ("csv", "parquet"):
        problems.append(Problem("parameter 'out_format'", f"must be 'csv' or 'parquet', got {out_format!r}"))
    check_number(problems, "chunk_rows", chunk_rows, low=1, integer=True)
    if stream and wide:
        problems.append(Problem("parameter 'wide'", "streaming reads long files; convert wide files in memory"))
    if dask is not None and (stream or wide):
        problems.append(Problem("parameter 'dask'", "the Dask engine reads long CSV or Parquet files; drop streaming and wide"))
    if workers is not None:
        check_number(problems, "workers", workers, low=1, integer=True)
    if problems:
        raise InvalidInputError(problems, "alliance_ts")
    if dask is not None:
        from .distributed import input_files

        files = input_files(raw)
        fmt = guess_format(files[0] if files else raw, in_format)
    else:
        check_readable(path)
        files = [path]
        fmt = guess_format(path, in_format)
    started = _dt.datetime.now(_dt.timezone.utc)
    if dask is not None:
        from .distributed import dask_client, detect_dask, read_dask

        with dask_client(dask, workers):
            res = detect_dask(read_dask(raw, format=fmt, sep=sep), rule, client=client, session=session,
                              score=score, scale=scale, min_sessions=min_sessions, **dict(params or {}))
        read_meta = {"format": fmt}
        counts, det_meta = _write_result(res, out_dir, out_format)
    elif stream:
        det_meta, counts = _detect_streaming(
            path, out_dir, fmt, rule, dict(params or {}), client, session, score, scale, min_sessions,
            out_format, sep, chunk_rows, progress,
        )
        read_meta = {"format": fmt}
    else:
        bar = _bar(progress, "reading", 3, unit="step")
        try:
            frame, read_meta = read_table(path, format=fmt, sheet=sheet, sep=sep)
            if wide:
                frame = to_long(frame, session_name=session, score_name=score, **dict(wide))
                client = dict(wide).get("client", "client")
            _step(bar, "labelling")
            try:
                res = detect(frame, rule, client=client, session=session, score=score, scale=scale,
                             min_sessions=min_sessions, **dict(params or {}))
            except InvalidInputError as err:
                raise _with_delimiter_hint(err, frame, read_meta) from None
            del frame
            _step(bar, "writing")
            counts, det_meta = _write_result(res, out_dir, out_format)
            _step(bar, "done")
        finally:
            if bar is not None:
                bar.close()
    manifest = {
        "alliance_ts": __version__,
        "created": started.isoformat(timespec="seconds"),
        "command": command,
        "input": {
            "path": raw,
            "format": fmt,
            "sha256": file_sha256(path) if files == [path] else None,
            **({"files": [{"path": str(f), "sha256": file_sha256(f)} for f in files]}
               if files is not None and files != [path] else {}),
            "columns": {"client": client, "session": session, "score": score},
            **({"sep": read_meta["sep"]} if "sep" in read_meta else {}),
            **({"value_labels": read_meta["value_labels"]} if read_meta.get("value_labels") else {}),
            **({"missing_ranges": read_meta["missing_ranges"]} if read_meta.get("missing_ranges") else {}),
        },
        "mode": "streaming" if stream else f"dask ({dask})" if dask is not None else "in memory",
        "rule": det_meta["rule"],
        "params": det_meta["params"],
        "counts": counts,
        "outputs": [f"{name}.{out_format}" for name in TABLES],
    }
    with write_atomic(out_dir / "manifest.json") as tmp:
        tmp.write_text(json.dumps(json_safe(manifest), indent=2) + "\n")
    return json_safe(manifest)


def _write_result(res: Detection, out_dir: Path, out_format: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for name in TABLES:
        write_table(getattr(res, name), out_dir / f"{name}.{out_format}", out_format)
    return _counts(res), {"rule": res.rule, "params": res.params, "version": res.version}


def _with_delimiter_hint(err: InvalidInputError, frame: pd.DataFrame, meta: dict) -> InvalidInputError:
    """Add a hint when a CSV was split on the wrong delimiter (one column named 'a;b;c')."""
    hint = _delimiter_problem(frame, meta.get("format", ""))
    return InvalidInputError(err.problems + hint, "alliance_ts") if hint else err


def _delimiter_problem(frame: pd.DataFrame, fmt: str) -> list[Problem]:
    if fmt != "csv" or len(frame.columns) != 1:
        return []
    name = str(frame.columns[0])
    other = next((d for d in (";", "\t", "|", ",") if d in name), None)
    if not other:
        return []
    shown = "\\t" if other == "\t" else other
    return [Problem("input", f"the file was read as one column {name!r}: is the delimiter {shown!r}? (--sep '{shown}')")]


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


class _Appender:
    """Appends DataFrames to one CSV or Parquet file under a temporary name."""

    def __init__(self, target: Path, fmt: str) -> None:
        self.target, self.fmt = target, fmt
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        self.tmp = Path(name)
        self.writer = None
        self.first = True

    def add(self, df: pd.DataFrame) -> None:
        if self.fmt == "csv":
            df.to_csv(self.tmp, index=False, mode="w" if self.first else "a", header=self.first)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, table.schema)
            self.writer.write_table(table.cast(self.writer.schema))
        self.first = False

    def close(self, ok: bool) -> None:
        if self.writer is not None:
            self.writer.close()
        if ok:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


def _whole_clients(chunks: Iterator[pd.DataFrame], client: str) -> Iterator[pd.DataFrame]:
    """Regroup pieces so that each holds only whole clients (rows grouped by client)."""
    carry: pd.DataFrame | None = None
    for chunk in chunks:
        df = chunk if carry is None else pd.concat([carry, chunk])
        if client not in df.columns or len(df) == 0:
            carry = None
            yield df
            continue
        ids = df[client].to_numpy()
        last = ids[-1]
        same = pd.isna(ids) if pd.isna(last) else (ids == last)
        # the final run of the last client may continue in the next piece
        start = len(df)
        while start > 0 and bool(same[start - 1]):
            start -= 1
        carry = df.iloc[start:]
        if start:
            yield df.iloc[:start]
    if carry is not None and len(carry):
        yield carry


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


def _detect_streaming(path, out_dir, fmt, rule, params, client, session, score, scale, min_sessions,
                      out_format, sep, chunk_rows, progress):
    problems: list[Problem] = []
    rule_obj, rule_name, rule_problems = resolve_rule(rule, params)
    problems += rule_problems
    check_number(problems, "min_sessions", min_sessions, low=1, integer=True)
    if rule_obj is not None and rule_obj.input != "scores":
        problems.append(Problem("parameter 'stream'", f"rule {rule_name!r} reads questionnaire answers in memory; "
                                "drop the streaming option"))
    if problems:
        raise InvalidInputError(problems, "alliance_ts")
    columns = [client, session, score]

    def pieces():
        return _whole_clients(iter_chunks(path, format=fmt, sep=sep, chunk_rows=chunk_rows), client)

    # pass 1: validate, count, keep the sample's rows
    seen: set = set()
    found: list[Problem] = []
    total_scores = 0
    step_kept = 1
    kept: list[pd.DataFrame] = []
    kept_scores = 0
    n_rows = 0
    bar = _bar(progress, "checking", None)
    for piece in pieces():
        n_rows += len(piece)
        if bar is not None:
            bar.update(len(piece))
        missing = [c for c in columns if c not in piece.columns]
        if missing:
            raise InvalidInputError(
                [Problem("columns", f"{len(missing)} required column(s) not found: "
                         + ", ".join(map(repr, missing)) + "; available: "
                         + ", ".join(map(repr, list(piece.columns)[:20])))]
                + _delimiter_problem(piece, fmt),
                "alliance_ts",
            )
        panel, piece_problems = read_panel(piece[columns], client=client, session=session, score=score, scale=scale)
        if piece_problems:
            found += piece_problems
            continue
        ids = panel.client_ids
        again = [cid for cid in ids if cid in seen]
        if again:
            raise InvalidInputError(
                [Problem(f"column {client!r}",
                         f"streaming needs the rows of each client together; {len(again)} client(s) "
                         "appear again after other clients",
                         tuple(repr(v) for v in again[:5]) + ("sort the file by client, or do not stream",))],
                "alliance_ts",
            )
        seen.update(ids.tolist())
        n_obs = panel.n_obs
        analysed = n_obs >= int(min_sessions)
        total_scores += int(n_obs[analysed].sum())
        hashes = client_hashes(ids)
        pick = analysed & select_by_hash(hashes, step_kept)
        if pick.any():
            chosen = set(np.asarray(ids[pick], dtype=object).tolist())
            rows = piece[columns][piece[client].isin(chosen)].copy()
            rows["_hash"] = client_hashes(rows[client])
            kept.append(rows)
            kept_scores += int(n_obs[pick].sum())
            while kept_scores > 4 * _panel.SAMPLE_SCORES:  # keep the candidate sample bounded
                step_kept *= 2
                kept = [k[select_by_hash(k["_hash"].to_numpy(np.uint64), step_kept)] for k in kept]
                kept_scores = sum(int(k[score].notna().sum()) for k in kept)
    if bar is not None:
        bar.close()
    if found:
        raise InvalidInputError(merge_problems(found), "alliance_ts")
    if n_rows == 0:
        raise InvalidInputError([Problem("data", "the table has no rows")], "alliance_ts")

    step = sample_step(total_scores)
    if step < step_kept:  # pragma: no cover - needs a sample far denser than the budget
        raise RuntimeError("streaming sample selection was too sparse; rerun without --stream")
    sample = pd.concat(kept) if kept else pd.DataFrame(columns=columns + ["_hash"])
    sample = sample[select_by_hash(sample["_hash"].to_numpy(np.uint64), step)].drop(columns="_hash")
    sample_panel, _ = read_panel(sample if len(sample) else pd.DataFrame({client: [0], session: [1], score: [np.nan]}),
                                 client=client, session=session, score=score)
    sample_codes = np.flatnonzero(sample_panel.n_obs >= int(min_sessions)) if len(sample) else np.zeros(0, dtype=np.int64)
    prepared = rule_obj.prepare(sample_panel, sample_codes)

    # pass 2: label piece by piece, append to the outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {name: _Appender(out_dir / f"{name}.{out_format}", out_format) for name in TABLES}
    counts = {"rows": 0, "clients": 0, "included": 0, "not_included": 0, "episodes": 0,
              "repaired": 0, "unresolved": 0, "patterns": {p: 0 for p in PATTERNS}}
    used = None
    ok = False
    bar = _bar(progress, "labelling", n_rows)
    try:
        for piece in pieces():
            panel, _ = read_panel(piece[columns], client=client, session=session, score=score, scale=scale)
            res = label_panel(panel, prepared, rule_name, int(min_sessions), scale)
            used = res.params
            for name in TABLES:
                writers[name].add(getattr(res, name))
            part = _counts(res)
            for k, v in part.items():
                if k == "patterns":
                    for p, n in v.items():
                        counts["patterns"][p] += n
                else:
                    counts[k] += v
            if bar is not None:
                bar.update(len(piece))
        ok = True
    finally:
        for w in writers.values():
            w.close(ok)
        if bar is not None:
            bar.close()
    if used is None:  # pragma: no cover - no piece at all was caught above
        used = {}
    return {"rule": rule_name, "params": used}, counts
