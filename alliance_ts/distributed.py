"""The distributed engine: labelling a Dask DataFrame on a Dask cluster.

:func:`detect_dask` (also reached by ``detect(ddf)`` or
``detect(df, engine="dask")``) runs the same steps as the in-memory path,
spread over the cluster's workers:

1. rows are shuffled so that each partition holds whole clients, and every
   partition is validated (all problems are raised together; example rows
   are numbered by their position in the whole table, from 0);
2. the clients the sample-wide estimates use are selected by a hash of their
   id (exactly as in memory), their rows are gathered and the rule's
   sample-wide parameters are estimated from them;
3. every partition is labelled by :func:`alliance_ts.detect.label_panel`, the
   function the in-memory path runs, and the tables are gathered and sorted.

The result is identical to ``detect()`` on the same data in memory, that is
on ``ddf.compute()``. (Dask stores text columns as pandas' ``"string"``
dtype by default, so string client ids come back in that dtype; a pandas
table given with ``engine="dask"`` keeps its own dtype.)

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .detect import label_panel, resolve_rule
from .errors import InvalidInputError, Problem
from .io import need
from .panel import client_hashes, sample_step, select_by_hash
from .result import Detection
from .rules._base import check_number
from .validation import merge_problems, read_panel

__all__ = ["dask_client", "detect_dask", "input_files", "read_dask"]

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


def _validate_part(pdf: pd.DataFrame, client: str, session: str, score: str, scale: Any, min_sessions: int):
    """Problems, analysed observed-score total and per-client (hash, n_obs) of one partition."""
    pdf = pdf.sort_index(kind="stable")  # examples name the first rows, as in memory
    panel, problems = read_panel(pdf, client=client, session=session, score=score, scale=scale) if len(pdf) else (None, [])
    if panel is None:
        return problems, 0, np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    n_obs = panel.n_obs
    analysed = n_obs >= int(min_sessions)
    return problems, int(n_obs[analysed].sum()), client_hashes(panel.client_ids)[analysed], n_obs[analysed]


def _problems_by_position(dask, dd, ddf, client, session, score, scale, n_out) -> list[Problem]:
    """Validate again with rows numbered by their position in the whole table.

    Only run when the data have problems: an input read from files numbers
    its rows within each partition, so the examples are renumbered 0, 1, ...
    over the whole table (as the in-memory path numbers a table read from a
    file) before the problems are reported.
    """
    lengths = dask.compute(*[dask.delayed(len)(p) for p in ddf.to_delayed()])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def numbered(pdf, offset):
        return pdf.set_axis(pd.RangeIndex(offset, offset + len(pdf)), axis=0)

    renumbered = dd.from_delayed([dask.delayed(numbered)(p, int(o)) for p, o in zip(ddf.to_delayed(), offsets)],
                                 meta=ddf._meta, verify_meta=False)
    parts = renumbered.shuffle(on=client, npartitions=n_out).to_delayed()
    checked = dask.compute(*[dask.delayed(_validate_part)(p, client, session, score, scale, 1) for p in parts])
    return merge_problems([p for part in checked for p in part[0]])


def _label_part(pdf: pd.DataFrame, rule, rule_name, client, session, score, scale, min_sessions):
    if len(pdf) == 0:
        return None
    panel, _ = read_panel(pdf, client=client, session=session, score=score, scale=scale)
    return label_panel(panel, rule, rule_name, int(min_sessions), scale)


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

    Parameters are those of :func:`alliance_ts.detect`, plus ``npartitions``
    (partitions after the shuffle by client; default: the input's, and at
    least two per worker thread). Results equal ``detect()`` in memory,
    whatever the partitioning.
    """
    dask, dd = _dask()
    problems: list[Problem] = []
    rule_obj, rule_name, rule_problems = resolve_rule(rule, params)
    problems += rule_problems
    check_number(problems, "min_sessions", min_sessions, low=1, integer=True)
    if rule_obj is not None and rule_obj.input != "scores":
        problems.append(Problem("engine", f"rule {rule_name!r} reads questionnaire answers and runs in memory "
                                "(engine='pandas')"))
    if isinstance(data, pd.DataFrame):
        # keep pandas' own string dtype, so the result equals the pandas path's exactly
        with dask.config.set({"dataframe.convert-string": False}):
            data = dd.from_pandas(data, npartitions=max(1, npartitions or 2), sort=False)
    if not hasattr(data, "npartitions"):
        problems.append(Problem("data", f"the Dask engine needs a DataFrame, got {type(data).__name__}"))
    else:
        missing = [c for c in (client, session, score) if c not in data.columns]
        if missing:
            problems.append(Problem("columns", f"{len(missing)} required column(s) not found: "
                                    + ", ".join(map(repr, missing)) + "; available: "
                                    + ", ".join(map(repr, list(data.columns)[:20]))))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.detect()")

    t0 = time.perf_counter()
    ddf = data[[client, session, score]]
    # whole clients per partition (rows without an id go together to one of
    # them and are reported there); kept in the workers' memory for three passes
    n_out = npartitions or max(ddf.npartitions, 2 * _threads())
    shuffled = ddf.shuffle(on=client, npartitions=n_out).persist()
    parts = shuffled.to_delayed()
    log.debug("shuffling into %d partitions", len(parts))

    # 1. validate every partition; count analysed scores
    checked = dask.compute(*[
        dask.delayed(_validate_part)(p, client, session, score, scale, min_sessions) for p in parts
    ])
    if any(part[0] for part in checked):
        raise InvalidInputError(_problems_by_position(dask, dd, ddf, client, session, score, scale, n_out),
                                "alliance_ts.detect()")
    total = sum(part[1] for part in checked)
    log.debug("validated in %.1f s", time.perf_counter() - t0)

    # 2. the sample of clients for sample-wide estimates, by id hash
    step = sample_step(total)

    def sample_rows(pdf):
        if step == 1 or len(pdf) == 0:
            return pdf
        return pdf[select_by_hash(client_hashes(pdf[client]), step)]

    sample = pd.concat(dask.compute(*[dask.delayed(sample_rows)(p) for p in parts]))
    if len(sample):
        sample_panel, _ = read_panel(sample, client=client, session=session, score=score, scale=scale)
        codes = np.flatnonzero(sample_panel.n_obs >= int(min_sessions))
        prepared = rule_obj.prepare(sample_panel, codes)
    else:
        prepared = rule_obj
    log.debug("sample-wide estimates from %d rows in %.1f s", len(sample), time.perf_counter() - t0)

    # 3. label every partition with the same function as in memory
    labelled = [r for r in dask.compute(*[
        dask.delayed(_label_part)(p, prepared, rule_name, client, session, score, scale, min_sessions)
        for p in parts
    ]) if r is not None]
    if not labelled:
        raise InvalidInputError([Problem("data", "the table has no rows")], "alliance_ts.detect()")
    log.debug("labelled and gathered in %.1f s", time.perf_counter() - t0)
    result = _combine(labelled)
    log.debug("combined in %.1f s", time.perf_counter() - t0)
    return result


def _combine(parts: list[Detection]) -> Detection:
    """One Detection from the Detections of disjoint sets of clients, sorted by client.

    Each part's tables are already sorted by client (and session or episode),
    so the large sessions table is put in order by each row's client rank
    with one stable integer sort, instead of a two-key sort of every row.
    """
    clients = pd.concat([p.clients for p in parts], ignore_index=True)
    order = clients["client"].sort_values(kind="stable").index.to_numpy()
    rank = np.empty(len(clients), dtype=np.int64)
    rank[order] = np.arange(len(clients))
    row_rank, start = [], 0
    for p in parts:
        part_rank = rank[start:start + len(p.clients)]
        start += len(p.clients)
        codes, uniques = pd.factorize(p.sessions["client"], sort=False)
        if len(uniques) != len(p.clients):  # pragma: no cover - every client has session rows
            raise RuntimeError("a partition's sessions and clients tables disagree")
        row_rank.append(np.repeat(part_rank, np.bincount(codes, minlength=len(uniques))))
    sessions = pd.concat([p.sessions for p in parts], ignore_index=True)
    sessions = sessions.take(np.argsort(np.concatenate(row_rank), kind="stable")).reset_index(drop=True)
    episodes = pd.concat([p.episodes for p in parts], ignore_index=True)
    episodes = episodes.sort_values(["client", "episode"], kind="stable").reset_index(drop=True)
    clients = clients.take(order).reset_index(drop=True)
    first = parts[0]
    return Detection(episodes, sessions, clients, first.rule, first.params, first.version)


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


def read_dask(path: str | os.PathLike, *, format: str, sep: str | None = None) -> Any:
    """A Dask DataFrame over Parquet (a file, a folder of files or a glob) or CSV files (a glob).

    Paths may be on shared storage the workers can read (``s3://``,
    ``gs://``, a network file system), as understood by
    :func:`dask.dataframe.read_parquet` and :func:`dask.dataframe.read_csv`.
    """
    _, dd = _dask()
    try:
        if format == "parquet":
            # a partition per row group, so that even one large file is read in parallel
            return dd.read_parquet(str(path), split_row_groups=True)
        if format == "csv":
            if sep is None:
                from .io import sniff_delimiter

                files = input_files(path)
                sep = sniff_delimiter(files[0]) if files else ","
            return dd.read_csv(str(path), sep=sep, encoding="utf-8-sig", blocksize="64MB")
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
