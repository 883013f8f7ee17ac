"""The one pipeline from any source of whole-client chunks to the result tables.

Every execution path runs the same steps with the same functions:

1. :func:`plan` resolves the rule and its parameters, checks the column
   names and ``min_sessions``, and derives the table :class:`~alliance_ts.validation.Layout`
   from what the rule reads (:meth:`~alliance_ts.rules.Rule.reads`) -- every
   problem collected, nothing read yet;
2. **pass 1**: :func:`check_chunk` validates every chunk (collecting every
   problem), the analysed clients are counted and the sample for sample-wide
   parameters is drawn by the clients' data (:mod:`alliance_ts.sample`);
   problems are raised once, together;
3. the rule is prepared on the sample (:meth:`~alliance_ts.rules.Rule.prepare`);
4. **pass 2**: :func:`label_chunk` labels each chunk and hands its tables to a
   sink.

A *source* yields chunks of whole clients and decides how the passes run over
them: :class:`FrameSource` (a DataFrame in memory, one chunk, validated once),
:class:`ChunkSource` (chunks read from a file, read twice in bounded memory;
see :mod:`alliance_ts.files`) and the Dask source of
:mod:`alliance_ts.distributed` (partitions on a cluster). A *sink* receives
the labelled chunks: :class:`DetectionSink` builds the
:class:`~alliance_ts.result.Detection`, :class:`alliance_ts.files.FolderSink`
writes an output folder. :func:`run` ties them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ._version import __version__
from .codes import CodeScan, check_missing, code_problems, merge
from .errors import InvalidInputError, Problem, RuleError
from .panel import Panel
from .result import Detection, build_detection
from .rules import DEFAULT_RULE
from .rules._base import _REGISTRY, Rule, make_rule, result_problems
from .sample import Sampler, choose
from .scales import resolve_scale
from .validation import (
    Layout,
    _id_order,
    check_column_names,
    check_number,
    merge_problems,
    plain,
    score_layout,
    validate,
)

__all__ = [
    "ChunkSource",
    "DetectionSink",
    "FrameSource",
    "Job",
    "Pass1",
    "check_chunk",
    "combine",
    "label_chunk",
    "plan",
    "run",
    "whole_clients",
]


@dataclass(frozen=True)
class Job:
    """Everything decided before the data are read.

    Attributes
    ----------
    rule : Rule
        The rule object with the user's parameters (not yet prepared).
    rule_name : str
        Its registered name.
    layout : Layout
        The columns to read and their checks.
    min_sessions : int
        The inclusion rule.
    scale : object
        The ``scale`` argument, as given (reported in ``params``).
    context : str
        Where errors come from (``"alliance_ts.detect()"``, ``"alliance_ts"``).
    """

    rule: Rule
    rule_name: str
    layout: Layout
    min_sessions: int
    scale: Any = None
    context: str = "alliance_ts.detect()"

    @property
    def columns(self) -> list[str]:
        """The input columns read."""
        return self.layout.columns

    def code_problems(self, scans: list[Any]) -> list[Problem]:
        """Values that look like undeclared missing codes, from the scans of every chunk (see :mod:`.codes`)."""
        if not self.layout.check_codes:
            return []
        found = merge(sc for sc in scans if isinstance(sc, CodeScan))
        return code_problems(found, self.layout.score_column or "score", cli_hint=self.context == "alliance_ts")

    def info(self, panel: Panel) -> dict[str, Any]:
        """What one chunk's result records about the input (``Detection.info``; :func:`merge_info` adds chunks)."""
        st = panel.stats
        low, high = st.get("low"), st.get("high")
        n = panel.n_obs
        has = n > 0
        first = panel.obs_sessions[panel.obs_offsets[:-1][has]]
        last = panel.obs_sessions[panel.obs_offsets[1:][has] - 1]
        every = self.layout.session_every
        return {
            "names": {"client": self.layout.client, "session": self.layout.session,
                      "score": self.layout.score_column},
            "keep": list(self.layout.keep),
            "missing": list(self.layout.missing),
            "missing_counts": dict(st.get("missing_counts", {})),
            "observed_range": None if low is None else [low, high],
            "n_rows": int(st.get("n_rows", 0)),
            "missed_within": int((last - first + 1 - n[has]).sum()),
            "dates": panel.row_date is not None,
            "session_every": None if every is None else _duration_text(every),
        }

    def used_params(self, prepared: Rule) -> dict[str, Any]:
        """What ``Detection.params`` reports: the rule's parameters, the scale and min_sessions."""
        score_range, _ = resolve_scale(self.scale)
        return {
            **prepared.params(),
            "scale": None if score_range is None else score_range.label,
            "min_sessions": int(self.min_sessions),
        }


def _duration_text(step: pd.Timedelta) -> str:
    """``7D`` for seven days, else pandas' ISO text of the duration."""
    days = step / pd.Timedelta(days=1)
    return f"{int(days)}D" if float(days).is_integer() else step.isoformat()


def merge_info(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``info`` of a result made of several chunks: counts added, ranges widened."""
    if not infos:
        return {}
    out = dict(infos[0])
    counts: dict[float, int] = {}
    lows, highs = [], []
    for info in infos:
        for code, n in info.get("missing_counts", {}).items():
            counts[code] = counts.get(code, 0) + n
        if info.get("observed_range") is not None:
            lows.append(info["observed_range"][0])
            highs.append(info["observed_range"][1])
    out["missing_counts"] = counts
    out["observed_range"] = [min(lows), max(highs)] if lows else None
    out["n_rows"] = sum(int(i.get("n_rows", 0)) for i in infos)
    out["missed_within"] = sum(int(i.get("missed_within", 0)) for i in infos)
    out["dates"] = any(i.get("dates") for i in infos)
    return out


def resolve_rule(rule: Any, params: dict[str, Any]) -> tuple[Rule | None, str, list[Problem]]:
    """The rule object, its name and any problems with it or its parameters."""
    problems: list[Problem] = []
    if isinstance(rule, Rule):
        if params:
            problems.append(
                Problem("parameters", "pass parameters to the rule object, not to detect(), when rule is an object")
            )
        problems += rule.check()
        name = next((s.name for s in _REGISTRY.values() if s.cls is type(rule) and not s.defaults), type(rule).__name__)
        return rule, name, problems
    name = DEFAULT_RULE if rule is None else rule
    rule_obj, rule_problems = make_rule(name, params)
    return rule_obj, (name if isinstance(name, str) else repr(name)), problems + rule_problems


def plan(
    rule: Any,
    params: dict[str, Any],
    *,
    client: Any,
    session: Any,
    score: Any,
    scale: Any,
    min_sessions: Any,
    missing: Any = None,
    check_codes: Any = True,
    keep: Any = None,
    session_every: Any = None,
    context: str = "alliance_ts.detect()",
) -> tuple[Job | None, list[Problem], Layout | None]:
    """The job, or every problem with the arguments (nothing is read).

    Also returns the layout to validate the data with even when the
    arguments have problems (None when the columns cannot be known), so
    that the data's problems can be reported with the arguments'.
    """
    problems: list[Problem] = []
    check_column_names(problems, client=client, session=session, score=score)
    rule_obj, rule_name, rule_problems = resolve_rule(rule, params)
    problems += rule_problems
    check_number(problems, "min_sessions", min_sessions, low=1, integer=True)
    codes = check_missing(problems, missing)
    if not isinstance(check_codes, (bool, np.bool_)):
        problems.append(Problem("parameter 'check_codes'", f"must be True or False, got {check_codes!r}"))
    kept = _check_keep(problems, keep, client, session, score)
    every = _check_every(problems, session_every)
    if rule_obj is not None:
        layout = _layout(rule_obj, client, session, score, scale, problems)
    elif isinstance(rule, (str, type(None))) and not (isinstance(rule, str) and rule in _REGISTRY
                                                       and _REGISTRY[rule].cls.reads is not Rule.reads):
        layout = _layout_scores(client, session, score, scale, problems)
    else:
        layout = None
    if layout is not None:
        layout = dataclasses.replace(
            layout, missing=codes, keep=kept, session_every=every,
            check_codes=bool(check_codes) and layout.score is not None and not layout.ranges,
        )
    if rule_obj is None or problems or layout is None:
        return None, problems, layout
    return Job(rule_obj, rule_name, layout, int(min_sessions), scale, context), [], layout


#: Columns of the clients and by-client tables a kept covariate may not be named as.
RESERVED = ("client", "rater", "n_sessions", "included", "reason", "n_ruptures", "n_repaired", "n_unresolved",
            "pattern", "episode", "start", "trough", "end", "status", "phase", "pre", "trough_score", "post",
            "depth", "start_date", "trough_date", "end_date")


def _check_keep(problems: list[Problem], keep: Any, client: Any, session: Any, score: Any) -> tuple[str, ...]:
    if keep is None:
        return ()
    names = [keep] if isinstance(keep, str) else keep
    if not isinstance(names, (list, tuple)) or not all(isinstance(k, str) for k in names):
        problems.append(Problem("parameter 'keep'", f"must be a list of column names, got {keep!r}"))
        return ()
    clash = [k for k in names if k in (client, session, score)]
    if clash:
        problems.append(Problem("parameter 'keep'", f"{', '.join(map(repr, clash))}: the client, session and score "
                                "columns are in every result already; keep names other columns"))
    reserved = [k for k in names if k in RESERVED and k not in clash]
    if reserved:
        problems.append(Problem("parameter 'keep'", f"{', '.join(map(repr, reserved))}: the result tables have a "
                                "column of that name; rename the input column"))
    return tuple(dict.fromkeys(k for k in names if k not in clash and k not in reserved))


def _check_every(problems: list[Problem], every: Any) -> pd.Timedelta | None:
    if every is None:
        return None
    try:
        step = pd.Timedelta(every)
    except (TypeError, ValueError):
        step = None
    if step is None or step is pd.NaT or step <= pd.Timedelta(0):
        problems.append(Problem("parameter 'session_every'", f"must be a positive duration such as '7D' or "
                                f"'14D', got {every!r}"))
        return None
    return step


def _layout_scores(client: Any, session: Any, score: Any, scale: Any, problems: list[Problem]) -> Layout | None:
    if not all(isinstance(c, str) for c in (client, session, score)):
        return None
    layout, found = score_layout(client, session, score, scale)
    problems += found
    return layout


def _layout(rule: Rule, client: Any, session: Any, score: Any, scale: Any, problems: list[Problem]) -> Layout | None:
    reads = rule.reads()
    if reads.scores:
        return _layout_scores(client, session, score, scale, problems)
    if scale is not None and not reads.uses_scale:
        problems.append(Problem("parameter 'scale'", "this rule reads answer codes, not scores: it takes the "
                                "codes' range from its own parameters (such as low= and high=), not scale="))
    named = [client, session, reads.group, *(c for _, c in reads.items)]
    if not all(isinstance(c, str) for c in named if c is not None):
        return None  # the parameters' problems say which
    from .scales import ScoreRange

    ranges: tuple[tuple[str, ScoreRange], ...] = ()
    if reads.item_range is not None:
        low, high = reads.item_range
        rng = ScoreRange(float(low), float(high), "answer codes")
        ranges = tuple((name, rng) for name, _ in reads.items)
    return Layout(
        client=client,
        session=session,
        values=reads.items,
        score=None,
        group=reads.group,
        group_name=reads.group_name,
        ranges=ranges,
        observed="any",
        unit=reads.unit,
        value_word="answer",
        hints=(reads.hint or "name the item columns with the rule's parameters (rupture=, withdrawal=, resolved=, "
               "addressed=, rater=) and the id columns with client=, session=",),
        segments=reads.segments,
    )


# --------------------------------------------------------------------------
# the two chunk functions every path runs


def check_chunk(frame: pd.DataFrame, job: Job) -> tuple[Panel | None, list[Problem]]:
    """Pass 1 on one chunk of whole clients: the validated panel, or its problems."""
    panel, problems = validate(frame, job.layout)
    if panel is not None and job.layout.score is None:
        panel = panel.with_scores(job.rule.session_score(panel.row_items))
    return panel, problems


def analysed_units(panel: Panel, job: Job) -> np.ndarray:
    """Codes of the units with at least ``min_sessions`` observed sessions."""
    return np.flatnonzero(panel.n_obs >= job.min_sessions)


def label_chunk(panel: Panel, prepared: Rule, job: Job) -> Detection:
    """Pass 2 on one validated chunk: label every unit with the prepared rule, build the tables."""
    analysed = panel.n_obs >= job.min_sessions
    scores = job.rule.reads().scores
    results = []
    for block in panel.blocks(np.flatnonzero(analysed), moments=prepared.needs_moments):
        res = prepared.label(block)
        bad = [] if prepared.trusted_output else result_problems(block, res, scores)
        if bad:
            raise RuleError(
                f"rule {job.rule_name!r} returned an invalid result:\n"
                + "\n".join(
                    f"  - client {plain(panel.client_ids[block.clients[row]])}: {msg}" if row >= 0 else f"  - {msg}"
                    for row, msg in bad
                )
            )
        results.append(res)
    return build_detection(
        panel, analysed, job.min_sessions, results, job.rule_name, prepared, job.used_params(prepared), __version__,
        job.info(panel),
    )


# --------------------------------------------------------------------------
# sources


@dataclass
class Pass1:
    """What pass 1 found: the problems, the row count and the sample to prepare the rule on."""

    problems: list[Problem] = field(default_factory=list)
    n_rows: int = 0
    sample_panel: Panel | None = None
    sample_units: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class Source(Protocol):
    """Where whole-client chunks come from, and how the two passes run over them."""

    def check(self, job: Job) -> Pass1:
        """Pass 1: validate every chunk, count, draw the sample."""

    def label(self, job: Job, prepared: Rule) -> Iterator[Detection]:
        """Pass 2: the labelled tables of every chunk."""


class Sink(Protocol):
    """Where the labelled chunks go."""

    def add(self, part: Detection) -> None:
        """Take one chunk's tables."""


class FrameSource:
    """A long DataFrame in memory: one chunk, validated once (its panel is kept for pass 2)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._panel: Panel | None = None

    def problems(self, layout: Layout) -> list[Problem]:
        """The data's problems alone (when the arguments already have some)."""
        return validate(self.frame, layout)[1]

    def check(self, job: Job) -> Pass1:
        panel, problems = check_chunk(self.frame, job)
        if panel is None:
            return Pass1(problems, len(self.frame))
        codes = job.code_problems([panel.stats.get("scan")])
        if codes:
            return Pass1(codes, len(self.frame))
        self._panel = panel
        units = analysed_units(panel, job)
        return Pass1([], len(self.frame), panel, choose(panel, units) if job.rule.needs_sample() else units[:0])

    def label(self, job: Job, prepared: Rule) -> Iterator[Detection]:
        if self._panel is None:  # pragma: no cover - run() stops after problems
            raise RuntimeError("pass 2 before pass 1")
        yield label_chunk(self._panel, prepared, job)


class ChunkSource:
    """Chunks of whole clients from a reader that can be started twice (a file read in pieces).

    ``chunks()`` must yield DataFrames whose index holds the rows' positions in
    the whole input (so that problems name them) and whose clients' rows are
    together: :func:`whole_clients` regroups arbitrary pieces. A client that
    appears again after other clients is an input error.
    """

    def __init__(self, chunks: Callable[[], Iterable[pd.DataFrame]], *, progress: Any = None) -> None:
        self.chunks = chunks
        self.progress = progress

    def check(self, job: Job) -> Pass1:
        found: list[Problem] = []
        seen: set = set()
        again: list[Any] = []
        sampler = Sampler()
        sampling = job.rule.needs_sample()
        n_rows = 0
        scans: list[Any] = []
        columns = job.columns
        for piece in self.chunks():
            n_rows += len(piece)
            if self.progress is not None:
                self.progress(len(piece))
            frame = piece[columns] if all(c in piece.columns for c in columns) else piece
            panel, problems = check_chunk(frame, job)
            if problems:
                found += problems
                if any(p.where == "columns" for p in problems):  # the same in every chunk: stop here
                    break
                continue
            if panel is None:  # pragma: no cover - validate returns problems with None
                continue
            scans.append(panel.stats.get("scan"))
            ids = pd.unique(panel.client_ids.to_numpy())
            repeated = [cid for cid in ids.tolist() if cid in seen]
            if repeated and len(again) < 5:
                again += repeated[: 5 - len(again)]
            seen.update(ids.tolist())
            if sampling:
                sampler.add(panel, analysed_units(panel, job))
        if again:
            found.append(Problem(
                f"column {job.layout.client!r}",
                "reading in pieces needs the rows of each client together; client(s) "
                + ", ".join(plain(c) for c in again)
                + " appear again after other clients (sort the file by client, or do not stream)",
            ))
        found += job.code_problems(scans) if not found else []
        if found:
            return Pass1(merge_problems(found), n_rows)
        if n_rows == 0:
            return Pass1([Problem("data", "the table has no rows")], 0)
        if sampler.step_kept > 1 and sampler.step_kept > _final_step(sampler):  # pragma: no cover
            raise RuntimeError("the streaming sample was too sparse; rerun without streaming")
        panel, units = sampler.sample()
        return Pass1([], n_rows, panel, units)

    def label(self, job: Job, prepared: Rule) -> Iterator[Detection]:
        columns = job.columns
        for piece in self.chunks():
            panel, problems = check_chunk(piece[columns], job)
            if panel is None:  # pragma: no cover - the file changed between the passes
                raise InvalidInputError(problems or [Problem("input", "the file changed while it was read")],
                                        job.context)
            yield label_chunk(panel, prepared, job)


def _final_step(sampler: Sampler) -> int:
    from .sample import sample_step

    return sample_step(sampler.total, sampler.budget)


def whole_clients(chunks: Iterable[pd.DataFrame], client: str) -> Iterator[pd.DataFrame]:
    """Regroup pieces so that each holds only whole clients (rows of a client next to each other)."""
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


# --------------------------------------------------------------------------
# sinks


class DetectionSink:
    """Collects the labelled chunks into one :class:`Detection`, sorted by client."""

    def __init__(self, group: str | None = None) -> None:
        self.parts: list[Detection] = []
        self.group = group

    def add(self, part: Detection) -> None:
        self.parts.append(part)

    def result(self) -> Detection:
        if len(self.parts) == 1:
            return self.parts[0]
        return combine(self.parts, self.group)


def combine(parts: list[Detection], group: str | None = None) -> Detection:
    """One Detection from the Detections of disjoint sets of clients, sorted by client (and group).

    Each part's tables are already sorted by unit (and session or episode),
    so the large sessions table is put in order by each row's unit rank with
    one stable integer sort, instead of a multi-key sort of every row.
    """
    clients = pd.concat([p.clients for p in parts], ignore_index=True)
    order = _unit_order(clients, group)
    rank = np.empty(len(clients), dtype=np.int64)
    rank[order] = np.arange(len(clients))
    row_rank, ep_rank, start = [], [], 0
    for p in parts:
        part_rank = rank[start:start + len(p.clients)]
        start += len(p.clients)
        row_rank.append(np.repeat(part_rank, _run_lengths(p.sessions, p.clients, group)))
        ep_rank.append(part_rank[_unit_index(p.episodes, p.clients, group)])
    sessions = pd.concat([p.sessions for p in parts], ignore_index=True)
    sessions = sessions.take(np.argsort(np.concatenate(row_rank), kind="stable")).reset_index(drop=True)
    episodes = pd.concat([p.episodes for p in parts], ignore_index=True)
    if len(episodes):
        episodes = episodes.take(np.argsort(np.concatenate(ep_rank), kind="stable")).reset_index(drop=True)
    clients = clients.take(order).reset_index(drop=True)
    first = parts[0]
    return Detection(episodes, sessions, clients, first.rule, first.params, first.version,
                     merge_info([p.info for p in parts]))


def _unit_order(clients: pd.DataFrame, group: str | None) -> np.ndarray:
    """Permutation sorting the units by client id (then group), as the validator orders them."""
    keys = []
    for col in ["client"] + ([group] if group else []):
        codes, uniques = pd.factorize(clients[col], sort=False)
        order = _id_order(pd.Index(uniques))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        keys.append(rank[codes])
    return np.lexsort(keys[::-1]) if keys else np.arange(len(clients))


def _run_lengths(sessions: pd.DataFrame, clients: pd.DataFrame, group: str | None) -> np.ndarray:
    """Rows of each unit of a part's sessions table (units in the part's clients order)."""
    index = _unit_index(sessions, clients, group)
    return np.bincount(index, minlength=len(clients))


def _unit_index(table: pd.DataFrame, clients: pd.DataFrame, group: str | None) -> np.ndarray:
    """For each row of ``table``, the position of its unit in ``clients``."""
    if len(table) == 0:
        return np.zeros(0, dtype=np.int64)
    cols = ["client"] + ([group] if group else [])
    lookup = pd.MultiIndex.from_frame(clients[cols]) if group else pd.Index(clients["client"])
    keys = pd.MultiIndex.from_frame(table[cols]) if group else pd.Index(table["client"])
    return np.asarray(lookup.get_indexer(keys), dtype=np.int64)


# --------------------------------------------------------------------------
# the run


def run(source: Source, job: Job, sink: Sink) -> Rule:
    """Both passes of ``source`` into ``sink``; returns the prepared rule.

    Raises
    ------
    InvalidInputError
        Every problem of the input, once, before anything is labelled.
    """
    first = source.check(job)
    if first.problems:
        raise InvalidInputError(first.problems, job.context)
    if first.sample_panel is None:  # pragma: no cover - a Pass1 without problems has a sample
        raise RuntimeError("pass 1 found no problem and no sample")
    prepared = job.rule.prepare(first.sample_panel, first.sample_units)
    for part in source.label(job, prepared):
        sink.add(part)
    return prepared
