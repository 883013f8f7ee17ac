"""The distributed engine: labelling a Dask DataFrame on a Dask cluster.

:class:`DaskSource` (reached by ``detect(ddf)``, ``detect(df, engine="dask")``
or ``alliance-ts detect --dask``) is a source of the one pipeline
(:mod:`alliance_ts.pipeline`): the steps and the chunk functions are those of
the in-memory path, run on the cluster's workers:

1. rows are shuffled so that each partition holds whole clients, and every
   partition is validated by :func:`~alliance_ts.pipeline.check_chunk` (all
   problems are raised together; example rows are numbered by their position
   in the whole table, from 0);
2. the clients the sample-wide estimates use are chosen by their data, as in
   memory (:mod:`alliance_ts.sample`), and their scores are gathered to
   prepare the rule;
3. every partition is labelled by :func:`~alliance_ts.pipeline.label_chunk`,
   and the tables are gathered and sorted.

The result is identical to ``detect()`` on the same data in memory, that is
on ``ddf.compute()``, whatever the partitioning. (Dask stores text columns as
pandas' ``"string"`` dtype by default, so string client ids come back in that
dtype; a pandas table given with ``engine="dask"`` keeps its own dtype.)

To use a real cluster, connect a client before calling::

    from dask.distributed import Client
    import dask.dataframe as dd
    client = Client("tcp://scheduler:8786")
    ddf = dd.read_parquet("/shared/trial/*.parquet")
    res = at.detect(ddf, client="pid", session="week", score="wai", scale="wai-sr")

Every worker needs alliance_ts installed. The tables come back to the calling
machine as pandas DataFrames, so they must fit in its memory.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import sample as _sample
from .errors import InvalidInputError, Problem
from .io import need
from .panel import Panel
from .pipeline import Job, Pass1, analysed_units, check_chunk, combine, label_chunk
from .result import Detection
from .rules import Rule
from .sample import concat_panels, content_hashes, copy_numbers, sample_keys, sample_step, selected
from .validation import merge_problems

__all__ = ["DaskSource", "dask_client", "detect_dask", "input_files", "read_dask"]

log = logging.getLogger(__name__)


def _dask():
    return need("dask", "dask", "the Dask engine"), need("dask.dataframe", "dask", "the Dask engine")


def _threads() -> int:
    """Threads of the connected Dask cluster (this machine's cores without one)."""
    try:
        from distributed import get_client

        return max(1, sum(get_client().nthreads().values()))
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def _check_part(pdf: pd.DataFrame, job: Job, budget: int, sampling: bool = True):
    """Pass 1 on one partition: problems, analysed scores, their content hashes, and (if small) their scores."""
    pdf = pdf.sort_index(kind="stable")  # examples name the first rows, as in memory
    if len(pdf) == 0:
        return [], 0, 0, np.zeros(0, dtype=np.uint64), None, None
    panel, problems = check_chunk(pdf, job)
    if panel is None:
        return problems, len(pdf), 0, np.zeros(0, dtype=np.uint64), None, None
    scan = panel.stats.get("scan")
    units = analysed_units(panel, job)
    if not sampling:
        return [], len(pdf), 0, np.zeros(0, dtype=np.uint64), None, scan
    total = int(panel.n_obs[units].sum())
    return ([], len(pdf), total, content_hashes(panel, units), (panel.subset(units) if total <= budget else None),
            scan)


def _sample_part(pdf: pd.DataFrame, job: Job, keep: np.ndarray) -> Panel | None:
    """The scores of one partition's sampled units (``keep`` over its analysed units)."""
    if len(pdf) == 0 or not keep.any():
        return None
    panel, _ = check_chunk(pdf.sort_index(kind="stable"), job)
    if panel is None:  # pragma: no cover - pass 1 found no problem
        return None
    return panel.subset(analysed_units(panel, job)[keep])


def _label_part(pdf: pd.DataFrame, prepared: Rule, job: Job) -> Detection | None:
    if len(pdf) == 0:
        return None
    panel, _ = check_chunk(pdf.sort_index(kind="stable"), job)
    if panel is None:  # pragma: no cover - pass 1 found no problem
        return None
    return label_chunk(panel, prepared, job)


class DaskSource:
    """A Dask DataFrame: partitions of whole clients, validated and labelled on the cluster."""

    def __init__(self, data: Any, npartitions: int | None = None) -> None:
        self.data = data
        self.npartitions = npartitions
        self._parts: list[Any] | None = None

    @classmethod
    def of(cls, data: Any, job: Job, npartitions: int | None = None) -> DaskSource:
        """A source over ``data`` (a Dask DataFrame, or a pandas one converted)."""
        dask, dd = _dask()
        problems: list[Problem] = []
        if isinstance(data, pd.DataFrame):
            # keep pandas' own string dtype, so the result equals the pandas path's exactly
            with dask.config.set({"dataframe.convert-string": False}):
                data = dd.from_pandas(data, npartitions=max(1, npartitions or 2), sort=False)
        if not hasattr(data, "npartitions"):
            problems.append(Problem("data", f"the Dask engine needs a DataFrame, got {type(data).__name__}"))
        else:
            columns = list(data.columns)
            missing = [c for c in job.columns if c not in columns]
            if missing:
                problems.append(Problem("columns", f"{len(missing)} required column(s) not found: "
                                        + ", ".join(map(repr, missing)) + "; available: "
                                        + ", ".join(map(repr, columns[:20]))))
            repeated = sorted({c for c in columns if columns.count(c) > 1 and c in job.columns})
            for c in repeated:
                problems.append(Problem(f"column {c!r}", f"appears {columns.count(c)} times in the table"))
        if problems:
            raise InvalidInputError(problems, job.context)
        return cls(data, npartitions)

    def _partitions(self, job: Job) -> list[Any]:
        if self._parts is None:
            ddf = self.data[job.columns]
            # whole clients per partition (rows without an id go together to one of
            # them and are reported there); kept in the workers' memory for the passes
            n_out = self.npartitions or max(ddf.npartitions, 2 * _threads())
            self._ddf = ddf
            self._n_out = n_out
            self._parts = ddf.shuffle(on=job.layout.client, npartitions=n_out).persist().to_delayed()
        return self._parts

    def check(self, job: Job) -> Pass1:
        dask, _ = _dask()
        t0 = time.perf_counter()
        parts = self._partitions(job)
        budget = _sample.SAMPLE_SCORES
        sampling = job.rule.needs_sample()
        checked = dask.compute(*[dask.delayed(_check_part)(p, job, budget, sampling) for p in parts])
        if any(c[0] for c in checked) or job.code_problems([c[5] for c in checked]):
            return Pass1(self._problems_by_position(job), 0)
        n_rows = sum(c[1] for c in checked)
        if n_rows == 0:
            return Pass1([Problem("data", "the table has no rows")], 0)
        total = sum(c[2] for c in checked)
        step = sample_step(total, budget)
        if step == 1 and all(c[4] is not None or c[3].size == 0 for c in checked):
            panels = [c[4] for c in checked if c[4] is not None]
        else:
            # copy numbers in partition order (identical courses are interchangeable)
            hashes = [c[3] for c in checked]
            allh = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
            keep_all = selected(sample_keys(allh, copy_numbers(allh)), step)
            bounds = np.cumsum([0] + [h.size for h in hashes])
            keeps = [keep_all[bounds[i]:bounds[i + 1]] for i in range(len(hashes))]
            panels = [p for p in dask.compute(*[
                dask.delayed(_sample_part)(part, job, keep) for part, keep in zip(parts, keeps)
            ]) if p is not None]
        sample = concat_panels(panels)
        log.debug("validated and sampled in %.1f s", time.perf_counter() - t0)
        return Pass1([], n_rows, sample, np.arange(sample.n_clients, dtype=np.int64))

    def label(self, job: Job, prepared: Rule) -> Iterator[Detection]:
        dask, _ = _dask()
        parts = self._partitions(job)
        labelled = [r for r in dask.compute(*[dask.delayed(_label_part)(p, prepared, job) for p in parts])
                    if r is not None]
        if labelled:
            yield combine(labelled, job.layout.group_name if job.layout.group is not None else None)

    def _problems_by_position(self, job: Job) -> list[Problem]:
        """Validate again with rows numbered by their position in the whole table.

        Only run when the data have problems: an input read from files numbers
        its rows within each partition, so the examples are renumbered 0, 1, ...
        over the whole table (as the in-memory path numbers a table read from a
        file) before the problems are reported.
        """
        dask, dd = _dask()
        ddf = self._ddf
        lengths = dask.compute(*[dask.delayed(len)(p) for p in ddf.to_delayed()])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        renumbered = dd.from_delayed([dask.delayed(_numbered)(p, int(o)) for p, o in zip(ddf.to_delayed(), offsets)],
                                     meta=ddf._meta, verify_meta=False)
        parts = renumbered.shuffle(on=job.layout.client, npartitions=self._n_out).to_delayed()
        checked = dask.compute(*[dask.delayed(_check_part)(p, job, 0) for p in parts])
        found = merge_problems([p for part in checked for p in part[0]])
        return found or job.code_problems([part[5] for part in checked])


def _read_csv(dd: Any, path: str | os.PathLike, sep: str | None, text: tuple[str, ...], encoding: str,
              decimal: str) -> Any:
    from .io import check_text_options, csv_options, csv_problems, decode_problems, read_header, sniff_delimiter

    problems = check_text_options(encoding, decimal, sep)
    if problems:
        raise InvalidInputError(problems, "alliance_ts")
    files = input_files(path)
    if files:  # local files: the checks of the in-memory reader, on every file
        sep = sep or sniff_delimiter(files[0], encoding)
        header = read_header(files[0], sep, encoding)
        for f in files:
            found = decode_problems(f, encoding)
            if not found:
                this = read_header(f, sep, encoding)
                if this != header:
                    found = [Problem("input", f"{str(f)!r} has the columns {this}, but {str(files[0])!r} has "
                                     f"{header}; every file must have the same header")]
                else:
                    found = csv_problems(f, sep, encoding, header)
            problems += found
        if problems:
            raise InvalidInputError(problems, "alliance_ts")
    else:  # remote files: the header of the first one, for the missing markers of each column
        import fsspec

        sep = sep or ","
        with fsspec.open_files(str(path), mode="rt", encoding=encoding)[0] as fh:
            import csv

            header = next(csv.reader(fh, delimiter=sep), [])
    return dd.read_csv(str(path), sep=sep, blocksize="64MB",
                       **csv_options([c for c in text if c in header], encoding, decimal, header))


def detect_dask(
    data: Any,
    rule: Any = None,
    *,
    client: str = "client",
    session: str = "session",
    score: str = "score",
    scale: Any = None,
    min_sessions: int = 3,
    npartitions: int | None = None,
    **params: Any,
) -> Detection:
    """Label a Dask DataFrame (or a pandas one, converted) on the current Dask scheduler.

    The same as ``alliance_ts.detect(data, rule, engine="dask", ...)``, plus
    ``npartitions``: the partitions after the shuffle by client (default:
    the input's, and at least two per worker thread). Results equal
    ``detect()`` in memory, whatever the partitioning.
    """
    from .pipeline import DetectionSink, plan, run

    job, problems, _ = plan(rule, params, client=client, session=session, score=score, scale=scale,
                            min_sessions=min_sessions)
    if problems or job is None:
        raise InvalidInputError(problems, "alliance_ts.detect()")
    sink = DetectionSink(job.layout.group_name if job.layout.group is not None else None)
    run(DaskSource.of(data, job, npartitions), job, sink)
    return sink.result()


def _numbered(pdf: pd.DataFrame, offset: int) -> pd.DataFrame:
    return pdf.set_axis(pd.RangeIndex(offset, offset + len(pdf)), axis=0)


@contextmanager
def dask_client(address: str, workers: int | None = None) -> Iterator[Any]:
    """Connect to a Dask scheduler for the duration of a ``with`` block.

    ``address="local"`` starts a :class:`distributed.LocalCluster` on this
    machine with ``workers`` single-threaded worker processes (default: one
    per core) and stops it afterwards; any other value is a scheduler address
    such as ``"tcp://scheduler:8786"``.
    """
    distributed = need("distributed", "dask", "the Dask engine")
    if address == "local":
        n = int(workers or os.cpu_count() or 1)
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None,
                                                         silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise InvalidInputError(
            [Problem("dask", f"cannot reach the Dask scheduler at {address!r}: {err}")], "alliance_ts"
        ) from None
    with client:
        yield client


def input_files(path: str | os.PathLike) -> list[Path] | None:
    """The local files behind a file, folder or glob pattern (sorted); None for URLs.

    Raises InvalidInputError when a local path matches no file.
    """
    text = str(path)
    if "://" in text:
        return None
    p = Path(text)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith((".", "_")))
    elif glob.has_magic(text):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
    else:
        files = [p] if p.is_file() else []
    if not files:
        raise InvalidInputError([Problem("input", f"no file matches {text!r}")], "alliance_ts")
    return files


def read_dask(path: str | os.PathLike, *, format: str, sep: str | None = None, text: tuple[str, ...] = (),
              encoding: str = "utf-8-sig", decimal: str = ".") -> Any:
    """A Dask DataFrame over Parquet (a file, a folder of files or a glob) or CSV files (a glob).

    Paths may be on shared storage the workers can read (``s3://``,
    ``gs://``, a network file system), as understood by
    :func:`dask.dataframe.read_parquet` and :func:`dask.dataframe.read_csv`.
    CSV files are read as strictly as in memory (:func:`alliance_ts.io.read_table`):
    the columns named in ``text`` (the ids) as text exactly as written, the
    usual missing markers elsewhere, and local files are checked first for
    ragged rows, repeated column names, headers that differ between files and
    text that is not in ``encoding``. Integer ids in Parquet become nullable
    integers, as in memory.
    """
    _, dd = _dask()
    try:
        if format == "parquet":
            # a partition per row group, so that even one large file is read in parallel
            ddf = dd.read_parquet(str(path), split_row_groups=True)
            # integer ids as in memory (alliance_ts.io): nullable integers, whatever a partition holds
            for col in text:
                if col in ddf.columns and pd.api.types.is_integer_dtype(ddf.dtypes[col]):
                    ddf[col] = ddf[col].astype(pd.Int64Dtype())
            return ddf
        if format == "csv":
            return _read_csv(dd, path, sep, text, encoding, decimal)
    except InvalidInputError:
        raise
    except Exception as err:
        raise InvalidInputError(
            [Problem("input", f"cannot read {str(path)!r} as {format} with Dask: {type(err).__name__}: {err}")],
            "alliance_ts",
        ) from None
    raise InvalidInputError(
        [Problem("format", f"the Dask engine reads CSV or Parquet, not {format}")], "alliance_ts"
    )
