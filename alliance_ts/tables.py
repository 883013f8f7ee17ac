"""Analysis tables made from a :class:`~alliance_ts.Detection`.

- :func:`by_client`: one row per client with the values of one chosen
  episode, the table a researcher merges with outcomes (the analogue of
  ``create_byperson()`` of the R package suddengains);
- :func:`around`: the scores in the sessions around each episode's start,
  aligned at the start (the analogue of suddengains' ``extract_values()``),
  the data behind :func:`alliance_ts.plot.average_episode`.

Both are also methods of the result: ``res.by_client(...)`` and
``res.around(...)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem
from .result import Detection, group_column
from .validation import check_number

__all__ = ["CLIENT_COLUMNS", "EPISODE_COLUMNS", "WHICH", "around", "by_client"]

#: The choices of ``by_client(which=...)``.
WHICH = ("first", "largest", "all")

#: The client columns of :func:`by_client` (after the ids and covariates).
CLIENT_COLUMNS = ("included", "reason", "n_sessions", "n_ruptures", "n_repaired", "n_unresolved", "pattern")

#: The episode columns of :func:`by_client` (then the dates, when sessions were dates).
EPISODE_COLUMNS = ("episode", "start", "trough", "end", "status", "phase", "pre", "trough_score", "post", "depth")

_DATES = ("start_date", "trough_date", "end_date")
# columns of ``episodes`` every rule has, or that by_client leaves out
_STANDARD = {"client", "rater", "coder", "rule", *EPISODE_COLUMNS, *_DATES}


def _check_result(result: Any, where: str) -> None:
    if not isinstance(result, Detection):
        raise InvalidInputError([Problem("parameter 'result'", f"expected a Detection, got {type(result).__name__}")],
                                where)


def _keys(result: Detection) -> list[str]:
    """The columns that identify one course: ``client``, plus ``rater`` (``coder``) for rules with raters (coders)."""
    key = group_column(result.clients)
    return ["client", key] if key is not None else ["client"]


def _reads_scores(result: Detection) -> bool:
    """Whether the result's rule reads scores (False for questionnaire rules such as ``psq``)."""
    from .errors import UnknownRuleError
    from .rules import get_rule

    names = result.info.get("names") or {}
    if "score" in names and names["score"] is None:
        return False
    try:
        spec = get_rule(result.rule)
    except UnknownRuleError:  # a rule object passed directly, or an unregistered name
        return True
    try:
        return spec.cls(**spec.defaults).reads().scores
    except TypeError:  # a function rule with a required parameter
        return True


def _episode_table(result: Detection, keys: list[str]) -> pd.DataFrame:
    """The episodes with nullable integer positions and the score at ``end`` (``post``)."""
    e = result.episodes
    extra = [c for c in e.columns if c not in _STANDARD]
    dates = [c for c in _DATES if c in e.columns]
    out = e[keys].reset_index(drop=True)
    for col in ("episode", "start", "trough", "end"):
        out[col] = e[col].astype("Int64").array
    out["status"] = e["status"].array
    out["phase"] = e["phase"].array
    out["pre"] = e["pre"].to_numpy(dtype=float)
    out["trough_score"] = e["trough_score"].to_numpy(dtype=float)
    out["post"] = _post(result, out, keys)
    out["depth"] = e["depth"].to_numpy(dtype=float)
    for col in dates:
        out[col] = e[col].array
    for col in extra:
        values = e[col]
        out[col] = values.astype("boolean").array if values.dtype == bool else values.array
    return out


def _post(result: Detection, ep: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """The score observed at each episode's ``end`` session (NaN when unresolved or not observed)."""
    if ep.empty or not _reads_scores(result):
        return np.full(len(ep), np.nan)
    s = result.sessions
    # the end of a repaired episode is the session labelled "repair" (an observed score): a
    # filter of the large sessions table by its category, then a join of episode-sized tables
    label = s["label"]
    is_repair = (label.cat.codes.to_numpy() == list(label.cat.categories).index("repair")
                 if isinstance(label.dtype, pd.CategoricalDtype) else (label == "repair").to_numpy())
    repair = s.loc[is_repair, [*keys, "episode", "score"]]
    repair = repair.astype({"episode": "Int64"})
    found = ep[[*keys, "episode"]].merge(repair, on=[*keys, "episode"], how="left", sort=False)
    return found["score"].to_numpy(dtype=float)


def by_client(result: Detection, which: str = "first") -> pd.DataFrame:
    """One row per client with the values of one of its episodes.

    The table to merge with outcome data: every client of ``result.clients``
    (analysed or not, in the same order), with its counts and pattern and the
    chosen episode's sessions and scores (the analogue of
    ``create_byperson()`` of the R package suddengains).

    Parameters
    ----------
    result : Detection
    which : {"first", "largest", "all"}, default "first"
        The episode reported for a client with several:

        - ``"first"``: the earliest (episode 1);
        - ``"largest"``: the one with the greatest ``depth``, the earliest
          of equally deep ones. Rules without scores (``psq``, whose
          ``depth`` is missing) take the one with the highest rule-specific
          ``intensity`` (the strongest reported rupture), the earliest if
          tied; a rule with neither takes the earliest;
        - ``"all"``: one row per episode, plus one row for each client
          without an episode (with the episode columns missing).

    Returns
    -------
    pandas.DataFrame
        One row per client (per client and rater for rules with raters; per
        episode with ``which="all"``), in the order of ``result.clients``
        (episodes in order within a client), with columns

        - ``client``, and ``rater`` for rules with raters (``psq``);
        - the client covariates kept with ``detect(..., keep=[...])``;
        - ``included``, ``reason``, ``n_sessions``, ``n_ruptures``,
          ``n_repaired``, ``n_unresolved``, ``pattern``: as in
          ``result.clients``;
        - ``episode``, ``start``, ``trough``, ``end`` (nullable ``Int64``
          session numbers), ``status``, ``phase`` (categoricals), ``pre``,
          ``trough_score``, ``post`` (the score observed at the ``end``
          session; NaN when unresolved, or for rules without scores), and
          ``depth``: the chosen episode's values as in ``result.episodes``,
          all missing for a client without episodes (or not analysed);
        - ``start_date``, ``trough_date``, ``end_date`` when sessions were
          dates;
        - any rule-specific episode columns (``psq``: ``type``,
          ``intensity``, ``resolved_within``), unless a covariate has the
          same name.

    Raises
    ------
    InvalidInputError
        If ``which`` is not one of the choices or ``result`` is not a
        Detection.

    Examples
    --------
    >>> import alliance_ts as at
    >>> df = {"client": [1] * 8 + [2] * 2, "session": list(range(1, 9)) + [1, 2],
    ...       "score": [50, 50, 44, 50, 50, 38, 50, 50, 50, 50]}
    >>> import pandas as pd
    >>> res = at.detect(pd.DataFrame(df), rule="vshape", sd="pooled", pooled_sd=2.0)
    >>> res.by_client("largest")[["client", "included", "episode", "start", "end", "post", "depth"]]
       client  included  episode  start   end  post  depth
    0       1      True        2      6     7  50.0   12.0
    1       2     False     <NA>   <NA>  <NA>   NaN    NaN
    """
    where = "alliance_ts.tables.by_client()"
    _check_result(result, where)
    if not isinstance(which, str) or which not in WHICH:
        raise InvalidInputError(
            [Problem("parameter 'which'", f"must be one of {', '.join(map(repr, WHICH))}; got {which!r}")], where
        )
    keys = _keys(result)
    c = result.clients
    covariates = [k for k in result.info.get("keep", []) or [] if k in c.columns and k not in keys]
    left = c[[*keys, *covariates, *CLIENT_COLUMNS]].reset_index(drop=True)
    left["_row"] = np.arange(len(left))
    ep = _episode_table(result, keys)
    if which != "all" and not ep.empty:
        ep = _choose(ep, keys, which)
    ep = ep.drop(columns=[col for col in ep.columns if col in covariates])  # a covariate wins a name clash
    out = left.merge(ep, on=keys, how="left", sort=False)
    out = out.sort_values(["_row", "episode"], kind="stable", na_position="last")
    return out.drop(columns="_row").reset_index(drop=True)


def _choose(ep: pd.DataFrame, keys: list[str], which: str) -> pd.DataFrame:
    """One episode per course: the earliest, or the largest (ties: the earliest)."""
    if which == "largest":
        if ep["depth"].notna().any():
            size = ep["depth"]
        elif "intensity" in ep.columns:
            size = pd.to_numeric(ep["intensity"], errors="coerce").astype(float)
        else:
            size = None
        if size is not None:
            order = ep.assign(_size=size.to_numpy(dtype=float))
            order = order.sort_values(["_size", "episode"], ascending=[False, True], kind="stable",
                                      na_position="last")
            return order.drop_duplicates(keys, keep="first").drop(columns="_size")
    return ep.sort_values("episode", kind="stable").drop_duplicates(keys, keep="first")


def around(result: Detection, *, before: int = 3, after: int = 3) -> pd.DataFrame:
    """The scores in the sessions around each episode's start, aligned at offset 0.

    For every episode, one row per offset ``-before, ..., after`` from its
    ``start`` session: the same number of rows for every episode, whatever
    its course held (the analogue of ``extract_values()`` of the R package
    suddengains). Offsets count session *numbers*, not observed scores: a
    missed session, a session before the client's first or after its last
    is a row with a missing score.

    Parameters
    ----------
    result : Detection
    before, after : int, default 3
        Sessions before and after the start (whole numbers >= 0).

    Returns
    -------
    pandas.DataFrame
        ``(before + after + 1)`` rows per episode, in the order of
        ``result.episodes`` then offset, with columns

        - ``client``, and ``rater`` for rules with raters (``psq``);
        - ``episode``, ``status``, ``phase``: the episode's, as in
          ``result.episodes``;
        - ``offset``: session number minus the episode's ``start``;
        - ``session``: ``start + offset``;
        - ``score``: the score of that session (NaN when the session was
          missed or lies outside the client's course). For ``psq`` it is the
          session's reported rupture intensity, the ``score`` of
          ``result.sessions``;
        - ``observed``: whether a score was observed at that session;
        - ``date``: the session's date, when sessions were dates (NaT for a
          session not in the data).

    Raises
    ------
    InvalidInputError
        If ``before`` or ``after`` is not a whole number >= 0.

    Examples
    --------
    >>> import alliance_ts as at
    >>> res = at.detect([50, 51, 50, 38, 50, 51], rule="vshape", sd="pooled", pooled_sd=1.0)
    >>> res.around(before=1, after=2)[["offset", "session", "score", "observed"]]
       offset  session  score  observed
    0      -1        3   50.0      True
    1       0        4   38.0      True
    2       1        5   50.0      True
    3       2        6   51.0      True
    """
    where = "alliance_ts.tables.around()"
    _check_result(result, where)
    problems: list[Problem] = []
    check_number(problems, "before", before, low=0, integer=True)
    check_number(problems, "after", after, low=0, integer=True)
    if problems:
        raise InvalidInputError(problems, where)
    keys = _keys(result)
    e = result.episodes.reset_index(drop=True)
    offsets = np.arange(-int(before), int(after) + 1, dtype=np.int64)
    k = offsets.size
    rep = np.repeat(np.arange(len(e)), k)
    out = pd.DataFrame({col: e[col].take(rep).reset_index(drop=True) for col in [*keys, "episode", "status", "phase"]})
    out["offset"] = np.tile(offsets, len(e))
    out["session"] = e["start"].to_numpy(dtype=np.int64)[rep] + out["offset"].to_numpy()
    s = result.sessions
    extra = ["date"] if "date" in s.columns else []
    rows = s[[*keys, "session", "score", *extra]].astype({"session": np.int64})
    rows = rows.drop_duplicates([*keys, "session"])  # session numbers are unique per course; be safe
    found = out[[*keys, "session"]].merge(rows, on=[*keys, "session"], how="left", sort=False)
    out["score"] = found["score"].to_numpy(dtype=float)
    out["observed"] = np.isfinite(out["score"].to_numpy())
    for col in extra:
        out[col] = found[col].array
    return out
