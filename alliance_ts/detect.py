"""``detect()``: validate once, label every client, build the result."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .errors import InvalidInputError, Problem
from .input import as_long_frame
from .pipeline import DetectionSink, FrameSource, plan, run
from .result import Detection
from .rules import Rule

__all__ = ["detect"]


def detect(
    data: Any,
    rule: str | Rule | None = None,
    *,
    client: str = "client",
    session: str = "session",
    score: str = "score",
    scale: Any = None,
    min_sessions: int = 3,
    missing: Any = None,
    check_codes: bool = True,
    keep: Any = None,
    session_every: Any = None,
    engine: str = "auto",
    **params: Any,
) -> Detection:
    """Find alliance ruptures, repairs and unresolved ruptures.

    Parameters
    ----------
    data : pandas.DataFrame or 1-D array-like or pandas.Series
        Long format: one row per client x session, rows in any order. Missed
        sessions may be absent rows or rows with a missing (NaN) score. A
        1-D array or list is one client (id 0) with sessions 1..n; a Series'
        index gives the session numbers. Wide tables: see :func:`to_long`.
    rule : str or Rule, optional
        A registered rule name (see :func:`list_rules`) or a rule object.
        Default: ``"scan"`` (see Notes). ``"recommended"``, the default
        before ``scan``, is kept unchanged.
    client, session, score : str
        Column names. Client ids may be numbers or text and are kept exactly
        as given (``"007"`` and ``"7"`` are two clients; ids of different
        types that print the same, ``1`` and ``"1"``, are an input error);
        session numbers must be whole numbers (ints or integer-valued floats)
        or dates (see ``session_every``); durations are an input error.
    scale : str or (float, float), optional
        Instrument id (``"wai-sr"``, ``"srs"``, ..., see
        :func:`list_scales`) or a ``(low, high)`` range; scores outside it
        are an input error. None: no range check, and the result records
        the observed range (``res.info["observed_range"]``). Declaring the
        scale is recommended: it is the only check that catches every
        out-of-range value.
    min_sessions : int, default 3
        Clients with fewer observed scores are not analysed (reported with
        ``included=False``). Three is the inclusion rule of the
        meta-analysis of Eubanks et al. (2018).
    missing : list of numbers, optional
        Missing-data codes (``[999, -99]``): cells holding one are missed
        sessions, counted in ``res.info["missing_counts"]``. Codes declared
        inside an SPSS or Stata file are applied when the file is read.
    check_codes : bool, default True
        When no ``scale`` is given, values that look like undeclared missing
        codes (999, -99, 9 far outside the client's other scores, or the same
        out-of-pattern value in several clients; exact criterion in
        :mod:`alliance_ts.codes`) are an input error, also beside declared
        ``missing`` codes. False turns the check off.
    keep : list of str, optional
        Client-level columns (therapist, site, arm, ...; one value per
        client, missing cells allowed) to carry into ``res.clients`` and
        :meth:`Detection.by_client`.
    session_every : str or pandas.Timedelta, optional
        For a session column of dates: without it, sessions are numbered
        1, 2, 3, ... by date order within each client, and no session can
        be missed (dates say when clients came, not when they were
        expected). With it (``"7D"`` for weekly sessions), session ``k`` is
        the one ``k - 1`` steps after the client's first date (rounded to
        the nearest step), so gaps become missed sessions. The dates are kept
        in every table (``date``, ``start_date``, ``trough_date``,
        ``end_date``).
    engine : {"auto", "pandas", "dask"}, default "auto"
        ``"auto"`` labels a Dask DataFrame on its cluster and anything else in
        memory; ``"dask"`` converts a pandas table to Dask first (see
        :func:`alliance_ts.distributed.detect_dask`). Results are identical.
    **params
        The rule's parameters (see its documentation).

    Returns
    -------
    Detection
        ``.episodes``, ``.sessions`` and ``.clients`` tables (every input row
        and client appears), plus ``.rule``, ``.params`` and ``.version``.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) listing *every* problem with the input or the
        parameters at once: missing or duplicated columns, column names that
        are not strings, scores that are not real numbers (text, complex
        numbers, dates) or infinite, scores outside the scale, missing,
        non-integer, date or duration session numbers, missing or ambiguous
        client ids, duplicate client x session rows, an empty table, an
        unknown rule or parameter, or an invalid parameter value.

    Notes
    -----
    The default rule is ``scan``: every rupture shape (a dip of 1-5
    sessions, a decline repaired at once, a drop with a gradual recovery, a
    drop that lasts) at every position is fitted to the client's scores
    under first-order autoregressive noise around its level and trend; the
    best fit's moderated t statistic (the client's noise moderated towards
    the trial's, empirical Bayes) is compared with a critical value
    calibrated by simulation so that a client without a rupture is flagged
    with probability ``alpha`` = 0.05 at any course length. Compared with
    the other rules at the same false-alarm rate on the simulated benchmark
    (``docs/benchmarks.md``), it has the highest F1 in most scenarios. It is
    this library's own rule, not a published
    criterion: to reproduce a study, name its rule (see :func:`list_rules`).

    Results never depend on row order, on how clients are batched or
    partitioned, on how their ids are spelled, or on other clients, except
    through parameters estimated from the whole input (such as ``pooled_sd``
    of ``vshape``), which are reported in ``params`` and can be fixed by
    passing them. Beyond 1,000,000 observed scores those are estimated from a
    sample chosen by the clients' data (:mod:`alliance_ts.sample`).

    Examples
    --------
    >>> import alliance_ts as at
    >>> res = at.detect([50, 50, 51, 38, 50, 51, 50, 52], rule="vshape", pooled_sd=1.0)
    >>> res.episodes[["client", "start", "trough", "end", "status", "pre", "depth"]]
       client  start  trough  end    status   pre  depth
    0       0      4       4    5  repaired  51.0   13.0
    >>> res.clients["pattern"].tolist()
    ['repaired']
    """
    problems: list[Problem] = []
    if engine not in ("auto", "pandas", "dask"):
        problems.append(Problem("parameter 'engine'", f"must be one of 'auto', 'pandas', 'dask'; got {engine!r}"))
    job, found, layout = plan(rule, params, client=client, session=session, score=score, scale=scale,
                              min_sessions=min_sessions, missing=missing, check_codes=check_codes, keep=keep,
                              session_every=session_every)
    problems += found
    if _is_dask(data) or engine == "dask":
        if problems or job is None:
            raise InvalidInputError(problems, "alliance_ts.detect()")
        from .distributed import DaskSource

        source: Any = DaskSource.of(data, job)
    else:
        frame = None
        if layout is not None and (isinstance(data, pd.DataFrame) or layout.score is not None):
            frame, frame_problems = as_long_frame(data, client, session, score)
            problems += frame_problems
        elif layout is not None:
            problems.append(Problem("data", "this rule reads several answers per session: pass a long "
                                    f"DataFrame, not {type(data).__name__}"))
        source = FrameSource(frame) if frame is not None else None
        if source is not None and layout is not None and (problems or job is None):
            # report the data's problems with the arguments'
            problems += source.problems(layout)
        if problems or job is None or source is None:
            raise InvalidInputError(problems, "alliance_ts.detect()")
    sink = DetectionSink(job.layout.group_name if job.layout.group is not None else None)
    run(source, job, sink)
    return sink.result()


def _is_dask(data: Any) -> bool:
    module = type(data).__module__ or ""
    return module.startswith("dask") and hasattr(data, "npartitions")
