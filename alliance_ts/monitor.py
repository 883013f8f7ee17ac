"""Monitoring: after today's session, is this client's alliance breaking down?

The published rupture rules look back over a whole course: a drop counts when
the scores come back up later. A service that collects the alliance after
every session needs a verdict *now*, from the sessions so far. This module
gives

- :func:`monitor`: for a finished table, what a live system would have
  flagged session by session (each session labelled from that session and
  the ones before it only);
- :class:`Monitor`: the live system itself, a small state per client
  updated with each new batch of sessions (``update``), saved to and loaded
  from a file (JSON or Parquet);
- :class:`Alerts`: the result, one row per client x session, with the
  caseload view of open alerts (:meth:`Alerts.caseload`).

Batch and live give the same alerts: :func:`monitor` *is* a loop of the same
vectorised update over the session ranks of the table, and a property test
checks that any split of the rows into batches of consecutive sessions gives
identical rows.

Online rules (a few numbers per client, usable live) are registered in
:mod:`alliance_ts.monitor_rules`; every look-back rule of
:func:`alliance_ts.detect` that reads scores can also be run in batch, on
each prefix of the courses (see :func:`monitor`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .errors import InvalidInputError, Problem
from .monitor_rules import (
    DEFAULT_MONITOR_RULE,
    OnlineRule,
    Prior,
    fit_prior,
    get_online_rule,
    list_monitor_rules,
    lookback_names,
    online_names,
    unknown_rule_error,
)
from .scales import ScoreRange, resolve_scale
from .validation import MAX_EXAMPLES, _id_order, check_column_names, check_number, plain, read_panel

__all__ = ["STATE_FORMAT", "Alerts", "Monitor", "caseload", "fit_prior", "list_monitor_rules", "monitor"]

#: Version of the saved state's layout and arithmetic; a state of another version is refused.
#: 2: the checksum covers the rule, parameters, scale and prior; the latest session's threshold and baseline kept.
STATE_FORMAT = 2
_KIND = "alliance_ts.monitor-state"
#: The header entries the checksum covers (with the ids and the arrays): everything that affects results.
_CHECKED = ("format", "format_version", "n_clients", "rule", "params", "scale", "prior")

#: Columns of :attr:`Alerts.sessions`, in order.
COLUMNS = ("client", "session", "score", "alert", "new", "repaired", "evidence", "p", "alert_start", "threshold",
           "baseline", "repaired_at")
#: The per-client arrays every state keeps (besides the rule's own).
_COMMON = {"last": ("int64", np.iinfo(np.int64).min), "open": ("bool", False), "start": ("int64", 0),
           "n_rows": ("int64", 0), "open_rows": ("int64", 0), "n_obs": ("int64", 0), "last_obs": ("int64", 0),
           "last_score": ("float64", np.nan),
           "last_evidence": ("float64", np.nan), "last_p": ("float64", np.nan),
           "last_threshold": ("float64", np.nan), "last_baseline": ("float64", np.nan)}


# --------------------------------------------------------------------------
# the result


@dataclass(frozen=True, eq=False)
class Alerts:
    """Monitoring alerts, one row per client x session.

    Attributes
    ----------
    sessions : pandas.DataFrame
        One row per input row, sorted by client (ids in sorted order) and
        session:

        - ``client``: the id exactly as given (``7`` stays an int, ``"007"``
          stays text);
        - ``session``: the session number (int);
        - ``score``: the score (NaN for a missed session);
        - ``alert`` (bool): an alert is open at this session (it opened here,
          or earlier and is not repaired yet; a missed session keeps an open
          alert open);
        - ``new`` (bool): this session opened the alert;
        - ``repaired`` (bool): the alert open before this session is closed
          at it (repaired; for look-back rules also "no longer found");
        - ``evidence`` (float): the rule's statistic at this session, more
          negative = stronger: ``drop`` the z statistic (SDs from the
          baseline), ``cutoff``/``srs36`` the score minus the cut-off,
          look-back rules minus the open episode's depth (score units); NaN
          when the rule has none (missed session, too little history);
        - ``p`` (float): one-sided p-value of ``drop``'s z (NaN otherwise);
        - ``alert_start`` (Int64): while an alert is open, the session it
          began (for a look-back rule the episode's start, which can be
          before the first session alerted); else ``<NA>``;
        - ``threshold`` (float): the score at or below which this session
          opens an alert (``cutoff``; ``drop``: baseline - k SD); NaN when
          none;
        - ``baseline`` (float): the level compared with (``drop``: mean of the
          earlier sessions outside alerts; look-back rules: the episode's
          pre-rupture level);
        - ``repaired_at`` (Int64): on rows with an open alert, the later
          session *in this table* at which it closed; ``<NA>`` while it is
          still open at the client's last row. A look-back annotation of the
          table: a live update of one session never knows it.
    rule : str
        The monitoring rule.
    params : dict
        Its parameters (the prior ``s0``, ``d0`` of ``drop`` included) and
        the ``scale``.
    version : str
        The alliance_ts version.
    info : dict
        ``mode`` (``"online"`` or ``"prefix"``) and, for ``drop``,
        ``prior`` (where ``s0``, ``d0`` came from).
    """

    sessions: pd.DataFrame
    rule: str
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.sessions
        return (f"<Alerts ({self.rule}): {len(s)} sessions of {s['client'].nunique()} clients, "
                f"{int(s['new'].sum())} alerts opened, {len(self.caseload())} open at the last session>")

    @cached_property
    def episodes(self) -> pd.DataFrame:
        """One row per alert (a run of sessions with the same open alert).

        Columns ``client``, ``alert`` (1, 2, ... within client), ``start``
        (``alert_start``), ``alerted`` (first session with the alert open),
        ``end`` (``repaired_at``; ``<NA>`` while open), ``status``
        (``"repaired"`` or ``"open"``), ``n_sessions`` (sessions with the
        alert open), ``evidence`` (its most negative evidence) and ``p`` (its
        smallest p).
        """
        s = self.sessions
        on = s[s["alert"].to_numpy(dtype=bool)]
        cols = ["client", "alert", "start", "alerted", "end", "status", "n_sessions", "evidence", "p"]
        if on.empty:
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
            out["client"] = s["client"].iloc[:0].reset_index(drop=True)
            return out
        run = s["new"].to_numpy(dtype=bool)
        codes = _codes(s["client"])
        # a run starts at each new alert; rows of one run share (client, number of new alerts so far)
        count = pd.Series(run.astype(np.int64)).groupby(codes).cumsum().to_numpy()
        keep = s["alert"].to_numpy(dtype=bool)
        g = pd.DataFrame({"code": codes[keep], "run": count[keep], "client": on["client"].to_numpy(),
                          "start": on["alert_start"].to_numpy(), "session": on["session"].to_numpy(),
                          "end": on["repaired_at"].to_numpy(), "evidence": on["evidence"].to_numpy(),
                          "p": on["p"].to_numpy()})
        agg = g.groupby(["code", "run"], sort=True).agg(
            client=("client", "first"), start=("start", "first"), alerted=("session", "first"),
            end=("end", "last"), n_sessions=("session", "size"), evidence=("evidence", "min"), p=("p", "min"))
        agg = agg.reset_index(drop=True)
        agg.insert(1, "alert", agg.groupby(_codes(agg["client"])).cumcount() + 1)
        agg["start"] = agg["start"].astype("Int64")
        agg["end"] = agg["end"].astype("Int64")
        agg["status"] = np.where(agg["end"].isna(), "open", "repaired")
        return agg[cols]

    def caseload(self, clients: Iterable[Any] | None = None) -> pd.DataFrame:
        """Clients with an alert open at their latest session, strongest evidence first.

        Parameters
        ----------
        clients : iterable of ids, optional
            Only these clients (a therapist's or a service's caseload).

        Returns
        -------
        pandas.DataFrame
            One row per flagged client: ``client``, ``session`` (its latest
            session in the table), ``score``, ``evidence``, ``p``,
            ``alert_start``, ``n_open`` (sessions the alert has been open),
            ``threshold`` and ``baseline``; sorted by ``evidence`` (most
            negative first), then ``p``, then client.
        """
        return caseload(self, clients=clients)

    @staticmethod
    def concat(parts: Iterable[Alerts]) -> Alerts:
        """The alerts of consecutive updates as one table (``repaired_at`` recomputed over the whole).

        Every part must come from the same rule and parameters.
        """
        parts = list(parts)
        if not parts:
            raise InvalidInputError([Problem("parts", "nothing to concatenate")], "alliance_ts.Alerts.concat()")
        first = parts[0]
        odd = [i for i, p in enumerate(parts) if p.rule != first.rule or _json(p.params) != _json(first.params)]
        if odd:
            raise InvalidInputError([Problem("parts", f"{len(odd)} part(s) come from another rule or other "
                                             f"parameters than the first (parts {odd[:5]})")],
                                    "alliance_ts.Alerts.concat()")
        table = pd.concat([p.sessions for p in parts], ignore_index=True)
        return dataclasses.replace(first, sessions=_finish(table))


def _codes(ids: pd.Series) -> np.ndarray:
    """Integer codes of ids in sorted id order (numbers before text)."""
    codes, uniques = pd.factorize(ids, sort=False)
    order = _id_order(pd.Index(uniques))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes] if len(order) else codes.astype(np.int64)


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    """Sort by (client, session), fill ``repaired_at``, and fix the column types."""
    codes = _codes(table["client"])
    sess = table["session"].to_numpy(dtype=np.int64)
    order = np.lexsort((sess, codes))
    table = table.iloc[order].reset_index(drop=True)
    codes, sess = codes[order], sess[order]
    n = len(table)
    repaired = table["repaired"].to_numpy(dtype=bool)
    # for each row, the next row (after it) of the same client whose session closed an alert
    key = np.where(repaired, np.arange(n), n).astype(np.int64) + codes * (n + 1)
    suffix = np.minimum.accumulate(key[::-1])[::-1]
    nxt = np.r_[suffix[1:], np.iinfo(np.int64).max]
    nxt_row = nxt - codes * (n + 1)
    found = (nxt_row >= 0) & (nxt_row < n) & table["alert"].to_numpy(dtype=bool)
    rep = pd.array(np.where(found, sess[np.minimum(np.maximum(nxt_row, 0), max(n - 1, 0))], 0), dtype="Int64")
    rep[~found] = pd.NA
    table["repaired_at"] = rep
    table["session"] = sess
    for c in ("alert", "new", "repaired"):
        table[c] = table[c].astype(bool)
    table["alert_start"] = table["alert_start"].astype("Int64")
    return table[list(COLUMNS)]


def caseload(alerts: Alerts | Monitor, clients: Iterable[Any] | None = None) -> pd.DataFrame:
    """Clients with an open alert at their latest session, strongest evidence first.

    Parameters
    ----------
    alerts : Alerts or Monitor
        A batch or live result (the latest session of each client in its
        table), or a live state (each client's latest session so far).
    clients : iterable of ids, optional
        Only these clients (a therapist's caseload).

    Returns
    -------
    pandas.DataFrame
        ``client``, ``session``, ``score``, ``evidence``, ``p``,
        ``alert_start``, ``n_open`` (sessions seen since the alert began,
        missed ones included), ``threshold`` and ``baseline`` (of the latest
        session; a Monitor keeps them in its state, so a live caseload equals
        the batch one); sorted by ``evidence`` (most negative first), then
        ``p``, then client id. A missed latest session has no score,
        evidence, threshold or baseline (NaN).

    Examples
    --------
    >>> import alliance_ts as at
    >>> import pandas as pd
    >>> df = pd.DataFrame({"client": [1, 1, 1, 2, 2, 2], "session": [1, 2, 3] * 2,
    ...                    "score": [38, 35, 33, 39, 40, 40]})
    >>> at.monitor(df, rule="srs36").caseload()[["client", "session", "score", "evidence", "alert_start"]]
       client  session  score  evidence  alert_start
    0       1        3   33.0      -3.0            2
    """
    if isinstance(alerts, Monitor):
        table = alerts._caseload()
    elif isinstance(alerts, Alerts):
        s = alerts.sessions
        if s.empty:
            table = s.iloc[:0]
        else:
            codes = _codes(s["client"])
            last = np.r_[codes[1:] != codes[:-1], True]
            flagged = last & s["alert"].to_numpy(dtype=bool)
            # sessions in the table since the open alert began, missed ones included
            since = np.full(int(codes.max()) + 1, np.nan)
            since[codes[flagged]] = s["alert_start"].to_numpy(dtype=np.float64, na_value=np.nan)[flagged]
            inside = s["session"].to_numpy() >= since[codes]
            latest = s[flagged].copy()
            latest["n_open"] = np.bincount(codes[inside], minlength=since.size)[codes[flagged]]
            table = latest[["client", "session", "score", "evidence", "p", "alert_start", "n_open", "threshold",
                            "baseline"]]
    else:
        raise InvalidInputError([Problem("parameter 'alerts'", f"expected Alerts or Monitor, got "
                                         f"{type(alerts).__name__}")], "alliance_ts.caseload()")
    if clients is not None:
        wanted = list(clients)
        table = table[table["client"].isin(wanted)]
    if table.empty:
        return table.reset_index(drop=True)
    order = np.lexsort((_codes(table["client"]), table["p"].fillna(np.inf).to_numpy(),
                        table["evidence"].fillna(np.inf).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


# --------------------------------------------------------------------------
# the live state


class Monitor:
    """A live monitoring state: a few numbers per client, updated session by session.

    Parameters
    ----------
    rule : str, optional
        An online monitoring rule: ``"drop"`` (default), ``"cutoff"`` or
        ``"srs36"`` (see :func:`list_monitor_rules`). Look-back rules need
        the whole history at every session and run in batch only
        (:func:`monitor`).
    scale : str or (float, float), optional
        Instrument id or range; scores outside it are an input error.
        ``srs36`` defaults to ``"srs"`` (0-40).
    **params
        The rule's parameters (``k``, ``s0``, ``d0``, ``cutoff``, ...).

    Notes
    -----
    The state holds, per client, the last session seen, whether an alert is
    open and since when, the latest session's score, evidence, p, threshold
    and baseline (for :meth:`caseload`), and the rule's own
    numbers (``drop``: the count, mean and sum of squares of the sessions
    outside alerts): its size grows with the clients, not the sessions.

    :meth:`update` checks the whole batch first and changes nothing when
    anything is wrong: a session at or before the client's last session
    already monitored (it arrived twice, or out of order), two rows of one
    client and session, non-numeric or out-of-scale scores, missing ids. A
    missed session (NaN score) is recorded as seen but changes nothing else.

    Sessions are numbers (1, 2, 3, ... over each client's whole course):
    a session column of dates is an input error, since dates numbered within
    one batch would restart at 1 with the next. Ids must be written the same
    way in every batch: a number id that reads as a text id already
    monitored (``7`` and ``"007"``), or number ids for a state of text ids
    (or the reverse), are an input error.

    Examples
    --------
    >>> import alliance_ts as at
    >>> import pandas as pd
    >>> live = at.Monitor(rule="drop", s0=2.0, d0=4)
    >>> week1 = pd.DataFrame({"client": ["a", "b"], "session": [1, 1], "score": [50.0, 40.0]})
    >>> live.update(week1).sessions["alert"].tolist()
    [False, False]
    >>> live.n_clients
    2
    """

    def __init__(self, rule: str | None = None, *, scale: Any = None, **params: Any) -> None:
        name = DEFAULT_MONITOR_RULE if rule is None else rule
        context = "alliance_ts.Monitor()"
        if isinstance(name, str) and name in lookback_names() and name not in online_names():
            raise InvalidInputError([Problem("parameter 'rule'", f"{name!r} is a look-back rule: it needs the whole "
                                             "history at every session, so it cannot keep a live state of a few "
                                             "numbers per client; run it in batch with at.monitor(df, "
                                             f"rule={name!r}), or monitor live with one of "
                                             f"{', '.join(online_names())}")], context)
        if not isinstance(name, str) or name not in online_names():
            raise unknown_rule_error(name, context)
        obj, default_scale, problems = get_online_rule(name, params, context)
        scale = default_scale if scale is None else scale
        score_range, msg = resolve_scale(scale)
        if msg:
            problems.append(Problem("parameter 'scale'", msg))
        if problems or obj is None:
            raise InvalidInputError(problems, context)
        self._rule = obj
        self._name = name
        self._range: ScoreRange | None = score_range
        self._prior: dict[str, Any] | None = ({"source": "parameters s0, d0"} if getattr(obj, "s0", None) is not None
                                              else None)
        self._ids = pd.Index([], dtype=object)
        self._arrays = self._new_arrays(0)
        self._spellings: _Spellings | None = None

    # -- what it is ----------------------------------------------------------

    @property
    def rule(self) -> str:
        """The monitoring rule's name."""
        return self._name

    @property
    def params(self) -> dict[str, Any]:
        """The rule's parameters (the prior included) and the scale."""
        return {**self._rule.params(), "scale": None if self._range is None else self._range.label}

    @property
    def prior(self) -> dict[str, Any] | None:
        """Where the ``drop`` rule's ``s0`` and ``d0`` came from (None when not set)."""
        return None if self._prior is None else dict(self._prior)

    @property
    def n_clients(self) -> int:
        """Clients seen so far."""
        return len(self._ids)

    @property
    def clients(self) -> pd.Index:
        """Their ids, in the order they were first seen."""
        return self._ids

    def __repr__(self) -> str:
        return f"<Monitor ({self._name}): {self.n_clients} clients, {int(self._arrays['open'].sum())} open alerts>"

    def _new_arrays(self, n: int) -> dict[str, np.ndarray]:
        out = {k: np.full(n, fill, dtype=dtype) for k, (dtype, fill) in _COMMON.items()}
        out.update({f"rule_{k}": v for k, v in self._rule.new_arrays(n).items()})
        return out

    # -- the prior ---------------------------------------------------------------

    def fit(self, reference: Any, *, client: str = "client", session: str = "session", score: str = "score",
            source: str = "reference table") -> Monitor:
        """Fit the ``drop`` rule's prior noise SD on a reference table (before the first update).

        See :func:`alliance_ts.fit_prior` for the estimator. Returns the
        monitor itself.
        """
        context = "alliance_ts.Monitor.fit()"
        if "s0" not in self._rule.params():
            raise InvalidInputError([Problem("rule", f"{self._name!r} has no prior to fit")], context)
        if self.n_clients:
            raise InvalidInputError([Problem("state", f"the monitor has already seen {self.n_clients} clients; fit "
                                             "the prior before the first update, so that every alert uses the same "
                                             "prior")], context)
        prior = fit_prior(reference, client=client, session=session, score=score, scale=self._range, source=source)
        self._set_prior(prior)
        return self

    def _set_prior(self, prior: Prior) -> None:
        self._rule = dataclasses.replace(self._rule, s0=prior.s0, d0=prior.d0)  # type: ignore[type-var]
        self._prior = {"source": prior.source, "n_clients": prior.n_clients}

    # -- updating ----------------------------------------------------------------

    def update(self, new_rows: Any, *, client: str = "client", session: str = "session",
               score: str = "score") -> Alerts:
        """Monitor new sessions: one alert row per new row.

        Parameters
        ----------
        new_rows : pandas.DataFrame
            Long table of new sessions (any row order; several sessions of a
            client allowed, each later than every session already monitored
            for that client). An empty table with the columns is allowed.
        client, session, score : str
            Column names.

        Returns
        -------
        Alerts
            The rows of ``new_rows`` (see :class:`Alerts` for the columns;
            ``repaired_at`` only knows repairs within this batch).

        Raises
        ------
        InvalidInputError
            Listing every problem with the batch; the state is unchanged.
        """
        context = "alliance_ts.Monitor.update()"
        problems = self._rule.ready()
        check_column_names(problems, client=client, session=session, score=score)
        if problems:
            raise InvalidInputError(problems, context)
        dated = _date_problem(new_rows, session)
        if dated is not None:
            raise InvalidInputError([dated], context)
        if (isinstance(new_rows, pd.DataFrame) and len(new_rows) == 0
                and {client, session, score} <= set(new_rows.columns)):
            return self._alerts(_empty_table(new_rows[client]), "online")
        panel, problems = read_panel(new_rows, client=client, session=session, score=score, scale=self._range)
        if problems or panel is None:
            raise InvalidInputError(problems, context)
        frame = new_rows if isinstance(new_rows, pd.DataFrame) else None
        batch_ids = panel.client_ids
        where = self._ids.get_indexer(batch_ids) if len(self._ids) else np.full(len(batch_ids), -1)
        problems = self._clash_problems(batch_ids, where, client)
        problems += self._order_problems(panel, where, frame, client, session, score)
        if problems:
            raise InvalidInputError(problems, context)
        return self._alerts(self._advance(panel, where), "online")

    def _clash_problems(self, batch_ids: pd.Index, where: np.ndarray, column: str) -> list[Problem]:
        """New ids written otherwise than the ids already monitored: a number here and text there, or the reverse.

        A number and a text that reads as the same number (``7`` and ``"007"``
        or ``"7"``) are the same client written two ways: left alone they
        would be two clients, and an alert of the first would stay open
        forever. A batch of number ids for a state of text ids (or the
        reverse) is refused too. Two texts (``"007"`` and ``"7"``) are two
        clients.
        """
        new = batch_ids[where < 0]
        if not len(new) or not len(self._ids):
            return []
        if self._spellings is None:
            self._spellings = _Spellings()
            self._spellings.add(self._ids)
        known = self._spellings
        matched: list[str] = []
        other: list[Any] = []
        for v in new:
            is_text = isinstance(v, str)
            key = _number_key(v)
            twins = [] if key is None else [t for t in known.by_number.get(key, []) if isinstance(t, str) != is_text]
            if twins:
                matched.append(f"{plain(v)} here, {' and '.join(plain(t) for t in twins[:3])} in the state")
            elif (known.n_text if is_text else known.n_other) == 0:
                other.append(v)  # text among number ids, or a number among text ids
        if not matched and not other:
            return []
        parts = []
        if matched:
            parts.append(f"{len(matched)} client id(s) of this batch match a client already monitored written the "
                         f"other way (a number here and text in the state, or the reverse), so they would be counted "
                         f"as new clients: {'; '.join(matched[:MAX_EXAMPLES])}")
        if other:
            kind, state_kind = ("text", "numbers") if isinstance(other[0], str) else ("numbers", "text")
            shown = ", ".join(plain(v) for v in other[:MAX_EXAMPLES])
            parts.append(f"{len(other)} {'other ' if matched else ''}client id(s) of this batch are {kind} where the "
                         f"clients already monitored have {state_kind} ids (e.g. {shown})")
        return [Problem(f"column {column!r}", "; ".join(parts) + "; nothing was updated; ids must be written the same "
                        "way in every batch: read the file with the ids as text (CSV: ids are read as text), or "
                        "convert them")]

    def _order_problems(self, panel, where, frame, client, session, score) -> list[Problem]:
        """Rows whose session is not after the client's last session monitored."""
        counts = np.diff(np.searchsorted(panel.row_client, np.arange(len(panel.client_ids) + 1)))
        state = np.repeat(where, counts)
        known = state >= 0
        if not known.any():
            return []
        last = np.where(known, self._arrays["last"][np.maximum(state, 0)], np.iinfo(np.int64).min)
        bad = known & (panel.row_session <= last)
        if not bad.any():
            return []
        ids = panel.client_ids.take(panel.row_client[bad])
        sess = panel.row_session[bad]
        lasts = last[bad]
        examples = []
        for c, s, lst in zip(ids[:MAX_EXAMPLES], sess[:MAX_EXAMPLES], lasts[:MAX_EXAMPLES]):
            label = ""
            if frame is not None:
                hit = np.flatnonzero((frame[client].to_numpy() == c)
                                     & (pd.to_numeric(frame[session], errors="coerce").to_numpy() == s))
                if hit.size:
                    r = frame.index[hit[0]]
                    label = f"row {plain(r)} "
            examples.append(f"{label}(client {plain(c)}, session {int(s)}; last session monitored {int(lst)})")
        n = int(bad.sum())
        return [Problem(f"column {session!r}", f"{n} row{'s' if n != 1 else ''} with a session at or before the "
                        "client's last session already monitored (a session sent twice, or out of order); nothing "
                        "was updated", tuple(examples))]

    def _advance(self, panel, where: np.ndarray) -> pd.DataFrame:
        """Step the state through a validated batch; returns the rows' table. The state changes at the end only."""
        n_new = int((where < 0).sum())
        state_codes = where.copy()
        state_codes[where < 0] = len(self._ids) + np.arange(n_new)
        # the touched clients' state, copied out; written back when every step is done
        local = {k: (np.concatenate([v, np.full(n_new, _fill(k, self), dtype=v.dtype)])[state_codes]
                     if n_new else v[state_codes]) for k, v in self._arrays.items()}
        rule_local = {k[5:]: v for k, v in local.items() if k.startswith("rule_")}
        table = _step_rows(self._rule, local, rule_local, panel)
        for k, v in rule_local.items():
            local[f"rule_{k}"] = v
        # commit
        if n_new:
            self._arrays = {k: np.concatenate([v, np.full(n_new, _fill(k, self), dtype=v.dtype)])
                            for k, v in self._arrays.items()}
            self._ids = self._ids.append(panel.client_ids[where < 0])
            if self._spellings is not None:
                self._spellings.add(panel.client_ids[where < 0])
        for k, v in local.items():
            self._arrays[k][state_codes] = v
        return table

    def _alerts(self, table: pd.DataFrame, mode: str) -> Alerts:
        info: dict[str, Any] = {"mode": mode}
        if self._prior is not None:
            info["prior"] = dict(self._prior)
        return Alerts(_finish(table), self._name, self.params, __version__, info)

    def _caseload(self) -> pd.DataFrame:
        a = self._arrays
        on = np.flatnonzero(a["open"])
        return pd.DataFrame({
            "client": self._ids.take(on), "session": a["last"][on], "score": a["last_score"][on],
            "evidence": a["last_evidence"][on], "p": a["last_p"][on],
            "alert_start": pd.array(a["start"][on], dtype="Int64"), "n_open": a["open_rows"][on],
            "threshold": a["last_threshold"][on], "baseline": a["last_baseline"][on],
        })

    def caseload(self, clients: Iterable[Any] | None = None) -> pd.DataFrame:
        """Clients with an open alert now, strongest evidence first (see :func:`caseload`)."""
        return caseload(self, clients=clients)

    # -- files -------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the state whole or not at all: ``.json`` (always) or ``.parquet`` (needs pyarrow).

        The file holds the format version, the library version, the rule,
        every parameter (the prior included), the scale, the client ids as
        given and the per-client arrays, with a SHA-256 checksum of all of
        them but the library version: a file edited by hand (a parameter, the
        scale, the rule's name, an id or a number) is refused by :meth:`load`.
        Returns the path.
        """
        from .io import write_atomic

        path = Path(path)
        fmt = _state_format(path, "alliance_ts.Monitor.save()")
        header = self._header()
        if fmt == "json":
            body = {**header, "clients": _json_ids(self._ids),
                    "arrays": {k: _json_array(v) for k, v in self._arrays.items()}}
            with write_atomic(path) as tmp:
                tmp.write_text(json.dumps(body, allow_nan=False) + "\n", encoding="utf-8")
        else:
            from .io import need

            pa = need("pyarrow", "parquet", "saving the state as Parquet")
            pq = need("pyarrow.parquet", "parquet", "saving the state as Parquet")
            kind = _id_kind(self._ids)
            ids = self._ids.to_numpy()
            client = (pa.array([json.dumps(v) for v in _json_ids(self._ids)], pa.string()) if kind == "mixed"
                      else pa.array(ids.astype(np.int64) if kind == "int" else ids.astype(object),
                                    pa.int64() if kind == "int" else pa.string()))
            arrays = {"client": client, **{k: pa.array(v) for k, v in self._arrays.items()}}
            table = pa.table(arrays).replace_schema_metadata({_KIND: json.dumps({**header, "client_kind": kind})})
            with write_atomic(path) as tmp:
                pq.write_table(table, tmp)
        return path

    def _header(self) -> dict[str, Any]:
        header = {
            "format": _KIND, "format_version": STATE_FORMAT, "alliance_ts": __version__, "rule": self._name,
            "params": _json(self._rule.params()),
            "scale": None if self._range is None else _json({"label": self._range.label, "low": self._range.low,
                                                             "high": self._range.high}),
            "prior": _json(self._prior), "n_clients": self.n_clients,
        }
        return {**header, "checksum": self._checksum(header)}

    def _checksum(self, header: dict[str, Any]) -> str:
        """SHA-256 of everything in the state that affects results: the header's rule, parameters, scale,
        prior and format, the client ids and the arrays (the header as written to, or read from, the file)."""
        digest = hashlib.sha256()
        meta = {k: header.get(k) for k in _CHECKED}
        digest.update(json.dumps(meta, sort_keys=True, allow_nan=False).encode())
        digest.update(json.dumps(_json_ids(self._ids)).encode())
        for k in sorted(self._arrays):
            digest.update(k.encode())
            digest.update(np.ascontiguousarray(self._arrays[k]).tobytes())
        return digest.hexdigest()

    @classmethod
    def load(cls, path: str | os.PathLike, *, rule: str | None = None) -> Monitor:
        """Read a state written by :meth:`save`.

        Parameters
        ----------
        path : path
            A ``.json`` or ``.parquet`` state file.
        rule : str, optional
            The rule the caller expects; a state of another rule is an error.

        Raises
        ------
        InvalidInputError
            No such file; not a state file; a state of another format
            version or of another rule; a damaged file (unreadable, arrays
            of the wrong length or type, a checksum that does not match).
        """
        context = "alliance_ts.Monitor.load()"
        path = Path(path)
        fmt = _state_format(path, context)
        where = f"state {str(path)!r}"
        if not path.is_file():
            raise InvalidInputError([Problem(where, "no such file")], context)
        try:
            if fmt == "json":
                body = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(body, dict):
                    raise ValueError("not a JSON object")
                header = body
                ids_raw = body.get("clients")
                arrays_raw = body.get("arrays")
            else:
                from .io import need

                pq = need("pyarrow.parquet", "parquet", "reading a Parquet state")
                table = pq.read_table(path)
                meta = (table.schema.metadata or {}).get(_KIND.encode())
                if meta is None:
                    raise ValueError("no alliance_ts state metadata")
                header = json.loads(meta)
                cols = table.to_pydict()
                ids_raw = cols.pop("client", None)
                if header.get("client_kind") == "mixed" and ids_raw is not None:
                    ids_raw = [json.loads(v) for v in ids_raw]
                arrays_raw = cols
        except InvalidInputError:
            raise
        except Exception as err:  # a damaged or foreign file
            raise InvalidInputError([Problem(where, f"cannot be read as a monitoring state ({type(err).__name__}: "
                                             f"{err}); the file is damaged or not a state written by "
                                             "alliance_ts.Monitor.save()")], context) from None
        return cls._from_parts(header, ids_raw, arrays_raw, rule, where, context)

    @classmethod
    def _from_parts(cls, header, ids_raw, arrays_raw, rule, where, context) -> Monitor:
        if header.get("format") != _KIND:
            raise InvalidInputError([Problem(where, "is not a monitoring state written by alliance_ts")], context)
        version = header.get("format_version")
        if version != STATE_FORMAT:
            raise InvalidInputError([Problem(where, f"was written in state format {plain(version)} (alliance_ts "
                                             f"{header.get('alliance_ts')}); this alliance_ts ({__version__}) "
                                             f"reads format {STATE_FORMAT}: start a new state, or rerun the history "
                                             "with the version that wrote it")], context)
        name = header.get("rule")
        if rule is not None and name != rule:
            raise InvalidInputError([Problem(where, f"was written by rule {plain(name)}, not {plain(rule)}: its "
                                             "numbers mean something else; use a new state file for another rule")],
                                    context)
        scale = header.get("scale")
        try:
            params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(header.get("params", {})).items()}
            self = cls(name, scale=None if scale is None else (scale["low"], scale["high"]), **params)
        except InvalidInputError as err:
            raise InvalidInputError([Problem(where, f"holds a rule or parameters this version cannot use: {p}")
                                     for p in err.problems], context) from None
        if scale is not None and self._range is not None:
            self._range = ScoreRange(self._range.low, self._range.high, str(scale.get("label", self._range.label)))
        self._prior = header.get("prior")
        n = header.get("n_clients")
        problems: list[Problem] = []
        if not isinstance(ids_raw, list) or not isinstance(arrays_raw, dict) or not isinstance(n, int):
            raise InvalidInputError([Problem(where, "is damaged: the client ids or the arrays are missing")], context)
        if len(ids_raw) != n:
            problems.append(Problem(where, f"is damaged: {len(ids_raw)} client ids for {n} clients"))
        expected = self._new_arrays(0)
        arrays = {}
        for k, template in expected.items():
            raw = arrays_raw.get(k)
            if not isinstance(raw, list) or len(raw) != n:
                problems.append(Problem(where, f"is damaged: array {k!r} is missing or has the wrong length"))
                continue
            try:
                if template.dtype == np.float64:
                    arr = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
                elif template.dtype == bool:
                    if not all(isinstance(v, bool) for v in raw):
                        raise ValueError("not True/False")
                    arr = np.array(raw, dtype=bool)
                else:
                    if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
                        raise ValueError("not whole numbers")
                    arr = np.array(raw, dtype=np.int64)
            except (TypeError, ValueError, OverflowError) as err:
                problems.append(Problem(where, f"is damaged: array {k!r} holds wrong values ({err})"))
                continue
            arrays[k] = arr
        extra = sorted(set(arrays_raw) - set(expected))
        if extra:
            problems.append(Problem(where, f"is damaged: unknown arrays {extra[:5]}"))
        if problems:
            raise InvalidInputError(problems, context)
        self._arrays = arrays
        # numbers or text: the dtype a batch of such ids gets (text: str under pandas 3); both: object
        self._ids = pd.Index(ids_raw, dtype=object if _id_kind(pd.Index(ids_raw, dtype=object)) == "mixed" else None)
        if len(set(map(repr, ids_raw))) != len(ids_raw):
            problems.append(Problem(where, "is damaged: a client id appears twice"))
        try:
            expected_sum = self._checksum(header)
        except (TypeError, ValueError):  # a header that is not plain JSON values
            expected_sum = None
        if header.get("checksum") != expected_sum:
            problems.append(Problem(where, "is damaged: its checksum does not match its contents (the file was "
                                    "changed or truncated after it was written)"))
        if problems:
            raise InvalidInputError(problems, context)
        return self


_DATE_TEXT = re.compile(r"\s*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}([ T]\S.*)?\s*")


def _date_problem(data: Any, session: str) -> Problem | None:
    """A problem when the session column holds dates or datetimes (or text written as dates).

    Numbering dates by their order within a batch would restart at 1 with each
    batch (the next batch is then "out of order") and hide missed sessions, so
    the monitor takes session numbers only.
    """
    if not isinstance(data, pd.DataFrame) or session not in data.columns:
        return None
    col = data[session]
    if isinstance(col, pd.DataFrame):  # a repeated column name: read_panel reports it
        return None
    if pd.api.types.is_datetime64_any_dtype(col.dtype) or isinstance(col.dtype, pd.PeriodDtype):
        dated = col.notna().to_numpy(dtype=bool)
    elif col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        values = col.to_numpy(dtype=object)
        dated = np.fromiter((isinstance(v, (_dt.date, np.datetime64))
                             or (isinstance(v, str) and _DATE_TEXT.fullmatch(v) is not None) for v in values),
                            dtype=bool, count=values.size)
    else:
        return None
    if not dated.any():
        return None
    first = int(np.flatnonzero(dated)[0])
    value = col.iloc[first]
    shown = plain(value) if isinstance(value, str) else str(value)
    n = int(dated.sum())
    return Problem(f"column {session!r}", "monitoring numbers sessions: give each client's session number (1, 2, "
                   "3, ...), counted over the client's whole course so that each batch goes on from the one before "
                   f"(a missed session keeps its number), not dates; this column holds {n} date(s) (e.g. row "
                   f"{plain(col.index[first])}: {shown}). The monitor does not number sessions from dates")


_NUMBER_TEXT = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _number_key(v: Any) -> int | float | None:
    """The number an id is or reads as (``7``, ``7.0``, ``"007"``, ``" 7 "`` give 7); None for other text."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return int(f) if f.is_integer() else f
    if isinstance(v, str) and _NUMBER_TEXT.fullmatch(v):
        if "." not in v:
            return int(v)
        f = float(v)
        return int(f) if f.is_integer() else f
    return None


class _Spellings:
    """The ids monitored, by the number they are or read as, and how many are text (for :meth:`Monitor.update`)."""

    def __init__(self) -> None:
        self.by_number: dict[int | float, list[Any]] = {}
        self.n_text = 0
        self.n_other = 0

    def add(self, ids: Iterable[Any]) -> None:
        for v in ids:
            if isinstance(v, str):
                self.n_text += 1
            else:
                self.n_other += 1
            key = _number_key(v)
            if key is not None:
                self.by_number.setdefault(key, []).append(v)


def _fill(key: str, mon: Monitor) -> Any:
    if key.startswith("rule_"):
        return mon._rule.fields[key[5:]][1]
    return _COMMON[key][1]


def _state_format(path: Path, context: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InvalidInputError([Problem("state", f"{str(path)!r}: a state file ends in .json or .parquet")], context)


def _id_kind(ids: pd.Index) -> str:
    values = list(ids)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return "int"
    if all(isinstance(v, str) for v in values):
        return "str"
    return "mixed"


def _json_ids(ids: pd.Index) -> list[Any]:
    out = []
    for v in ids:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out.append(v)
    return out


def _json_array(a: np.ndarray) -> list[Any]:
    values = a.tolist()
    if a.dtype == np.float64:
        return [None if (isinstance(v, float) and math.isnan(v)) else v for v in values]
    return values


def _json(value: Any) -> Any:
    from .files import json_safe

    return json_safe(value)


# --------------------------------------------------------------------------
# the shared step: one vectorised update per session rank


def _step_rows(rule: OnlineRule, local: dict[str, np.ndarray], rule_local: dict[str, np.ndarray],
               panel) -> pd.DataFrame:
    """Run the rule over a validated, sorted batch; ``local`` holds the batch clients' state (updated in place)."""
    row_client = panel.row_client
    n_rows = row_client.size
    offsets = np.searchsorted(row_client, np.arange(len(panel.client_ids) + 1))
    rank = np.arange(n_rows) - offsets[row_client]
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max(initial=-1)) + 2))
    sess_all, x_all = panel.row_session, panel.row_score
    out = {k: np.full(n_rows, np.nan) for k in ("evidence", "p", "threshold", "baseline")}
    alert = np.zeros(n_rows, dtype=bool)
    new = np.zeros(n_rows, dtype=bool)
    repaired = np.zeros(n_rows, dtype=bool)
    start = np.zeros(n_rows, dtype=np.int64)
    for r in range(bounds.size - 1):
        rows = by_rank[bounds[r]:bounds[r + 1]]
        c = row_client[rows]
        x, s = x_all[rows], sess_all[rows]
        was_open = local["open"][c]
        now_open = was_open.copy()
        obs = ~np.isnan(x)
        if obs.any():
            oc, orows = c[obs], rows[obs]
            res = rule.step(rule_local, oc, x[obs], was_open[obs])
            now_open[obs] = res.open
            out["evidence"][orows] = res.evidence
            out["p"][orows] = res.p
            out["threshold"][orows] = res.threshold
            out["baseline"][orows] = res.baseline
            local["n_obs"][oc] += 1
            local["last_obs"][oc] = s[obs]
        # the latest session's row, as the batch caseload shows it (NaN for a missed session)
        local["last_score"][c] = x
        for k in ("evidence", "p", "threshold", "baseline"):
            local[f"last_{k}"][c] = out[k][rows]
        opened = now_open & ~was_open
        local["start"][c] = np.where(opened, s, local["start"][c])
        alert[rows] = now_open
        new[rows] = opened
        repaired[rows] = was_open & ~now_open
        start[rows] = local["start"][c]
        local["open"][c] = now_open
        local["last"][c] = s
        local["n_rows"][c] += 1
        local["open_rows"][c] = np.where(now_open, np.where(opened, 1, local["open_rows"][c] + 1), 0)
    alert_start = pd.array(start, dtype="Int64")
    alert_start[~alert] = pd.NA
    return pd.DataFrame({
        "client": panel.client_ids.take(row_client), "session": sess_all, "score": x_all, "alert": alert,
        "new": new, "repaired": repaired, **{k: out[k] for k in ("evidence", "p")}, "alert_start": alert_start,
        "threshold": out["threshold"], "baseline": out["baseline"], "repaired_at": pd.array([pd.NA] * n_rows,
                                                                                            dtype="Int64"),
    })


def _empty_table(ids: pd.Series) -> pd.DataFrame:
    table = pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    table["client"] = ids.iloc[:0].reset_index(drop=True)
    table["session"] = table["session"].astype(np.int64)
    for c in ("alert", "new", "repaired"):
        table[c] = table[c].astype(bool)
    table["alert_start"] = table["alert_start"].astype("Int64")
    table["repaired_at"] = table["repaired_at"].astype("Int64")
    return table


# --------------------------------------------------------------------------
# batch


def monitor(
    data: Any,
    rule: str | None = None,
    *,
    client: str = "client",
    session: str = "session",
    score: str = "score",
    scale: Any = None,
    prior: Any = None,
    min_sessions: int = 3,
    **params: Any,
) -> Alerts:
    """Label every session as a live system would have: from it and the sessions before it only.

    Parameters
    ----------
    data : pandas.DataFrame
        Long table, one row per client x session, any row order; missed
        sessions as absent rows or NaN scores (a NaN row keeps an open alert
        open and changes nothing else).
    rule : str, optional
        ``"drop"`` (default), ``"cutoff"``, ``"srs36"``, or any look-back
        rule of :func:`alliance_ts.detect` that reads scores
        (``"recommended"``, ``"stiles2004"``, ...), run on each prefix (see
        Notes). :func:`list_monitor_rules` lists them.
    client, session, score : str
        Column names.
    scale : str or (float, float), optional
        Scores outside it are an input error (``srs36``: ``"srs"`` by
        default).
    prior : None, "data", DataFrame or Prior, optional
        For ``drop``: where its prior noise SD (``s0``, ``d0``) comes from.
        A table of *other* courses (or a :class:`~alliance_ts.monitor_rules.Prior`
        fitted on one) keeps the run strictly causal. ``"data"`` fits it on
        ``data`` itself: each client's alerts still use none of its own later
        sessions, but the prior uses every client's whole course (a
        between-client look-ahead, recorded in ``info["prior"]``). None:
        ``s0``/``d0`` from the parameters when given, else ``"data"``.
    min_sessions : int, default 3
        For look-back rules: the inclusion rule of :func:`alliance_ts.detect`.
    **params
        The rule's parameters.

    Returns
    -------
    Alerts
        One row per input row (see :class:`Alerts` for the columns).

    Notes
    -----
    **Online rules** (``drop``, ``cutoff``, ``srs36``) run as one
    :meth:`Monitor.update` per session rank: the first session of every
    client, then the second, ... each a vectorised step over all clients.
    The alerts are therefore identical to feeding the rows to a live
    :class:`Monitor` in any batches of consecutive sessions (with the same
    prior).

    **Look-back rules** run :func:`alliance_ts.detect` on each prefix of the
    courses: for the *j*-th row of every client, the rows up to it. The
    session is alerted when that prefix ends inside an open episode (one
    that started at or before it and is not repaired by it); the alert's
    ``alert_start`` is the episode's start and its evidence minus its depth.
    Rules whose criterion needs the return of the scores (``stiles2004``,
    ``strauss2006``) see a rupture only once it is repaired, so they alert
    on few ruptures; that is what they can do live. Sample-wide estimates
    (``pooled_sd`` of ``gumz2012``) are re-estimated on each prefix table
    unless passed. There is no live state for these rules: each session
    needs the whole history.

    Examples
    --------
    >>> import alliance_ts as at
    >>> import pandas as pd
    >>> df = pd.DataFrame({"client": 1, "session": range(1, 7),
    ...                    "score": [50.0, 52.0, 51.0, 44.0, 46.0, 51.0]})
    >>> res = at.monitor(df, rule="drop", s0=1.0, d0=4)
    >>> res.sessions[["session", "alert", "new", "repaired", "alert_start", "repaired_at"]]
       session  alert    new  repaired  alert_start  repaired_at
    0        1  False  False     False         <NA>         <NA>
    1        2  False  False     False         <NA>         <NA>
    2        3  False  False     False         <NA>         <NA>
    3        4   True   True     False            4            6
    4        5   True  False     False            4            6
    5        6  False  False      True         <NA>         <NA>
    """
    context = "alliance_ts.monitor()"
    name = DEFAULT_MONITOR_RULE if rule is None else rule
    dated = _date_problem(data, session)
    if dated is not None:
        raise InvalidInputError([dated], context)
    if isinstance(name, str) and name not in online_names() and name in lookback_names():
        return _prefix_monitor(data, name, client=client, session=session, score=score, scale=scale,
                               min_sessions=min_sessions, prior=prior, params=params, context=context)
    if not isinstance(name, str) or name not in online_names():
        raise unknown_rule_error(name, context)
    fitted: Prior | None = None
    source = None
    if prior is not None or (name == "drop" and params.get("s0") is None and params.get("d0") is None):
        if name != "drop":
            raise InvalidInputError([Problem("parameter 'prior'", "only the drop rule has a prior, not "
                                             f"{plain(name)}")], context)
        if params.get("s0") is not None or params.get("d0") is not None:
            raise InvalidInputError([Problem("parameter 'prior'", "give either prior= or s0= and d0=, not both")],
                                    context)
        if prior is None or (isinstance(prior, str) and prior == "data"):
            source = "the monitored table itself (between-client look-ahead)"
            prior_data: Any = data
        elif isinstance(prior, Prior):
            fitted = prior
        elif isinstance(prior, pd.DataFrame):
            source = "reference table"
            prior_data = prior
        else:
            raise InvalidInputError([Problem("parameter 'prior'", f"must be 'data', a reference DataFrame or a "
                                             f"Prior, got {plain(prior)}")], context)
        if fitted is None:
            try:
                fitted = fit_prior(prior_data, client=client, session=session, score=score, scale=scale,
                                   source=str(source))
            except InvalidInputError as err:
                hint = [] if prior is not None else [Problem("parameter 'prior'", "the drop rule's prior noise SD "
                                                             "was to be fitted on this table; pass prior=<a reference "
                                                             "table> or s0= and d0=")]
                raise InvalidInputError(err.problems + hint, context) from None
    mon = Monitor(name, scale=scale, **params)
    if fitted is not None:
        mon._set_prior(fitted)
    try:
        return mon.update(data, client=client, session=session, score=score)
    except InvalidInputError as err:
        raise InvalidInputError(err.problems, context) from None


def _prefix_monitor(data, name, *, client, session, score, scale, min_sessions, prior, params, context) -> Alerts:
    from .detect import detect

    problems: list[Problem] = []
    if prior is not None:
        problems.append(Problem("parameter 'prior'", f"only the drop rule has a prior, not {plain(name)}"))
    check_number(problems, "min_sessions", min_sessions, low=1, integer=True)
    panel, found = read_panel(data, client=client, session=session, score=score, scale=scale)
    problems += found
    if problems or panel is None:
        raise InvalidInputError(problems, context)
    row_client = panel.row_client
    n_rows = row_client.size
    offsets = np.searchsorted(row_client, np.arange(len(panel.client_ids) + 1))
    counts = np.diff(offsets)
    rank = np.arange(n_rows) - offsets[row_client]
    alert = np.zeros(n_rows, dtype=bool)
    start = np.zeros(n_rows, dtype=np.int64)
    evidence = np.full(n_rows, np.nan)
    baseline = np.full(n_rows, np.nan)
    used: dict[str, Any] = {}
    for r in range(int(rank.max(initial=-1)) + 1):
        live = counts > r  # clients with a row at rank r
        rows = np.flatnonzero(live[row_client] & (rank <= r))
        prefix = pd.DataFrame({"client": row_client[rows], "session": panel.row_session[rows],
                               "score": panel.row_score[rows]})
        try:
            res = detect(prefix, name, scale=scale, min_sessions=min_sessions, check_codes=False, **params)
        except InvalidInputError as err:
            raise InvalidInputError(err.problems, context) from None
        if not used:
            used = {k: v for k, v in res.params.items() if k not in ("min_sessions",)}
        ep = res.episodes
        ends = panel.row_session[offsets[:-1] + np.minimum(r, counts - 1)]
        if len(ep):
            c = ep["client"].to_numpy(dtype=np.int64)
            st = ep["start"].to_numpy(dtype=np.int64)
            openmask = ep["end"].isna().to_numpy() & (st <= ends[c])
            if openmask.any():
                # the latest open episode of each client
                c_o, st_o = c[openmask], st[openmask]
                dep, pre = ep["depth"].to_numpy(dtype=float)[openmask], ep["pre"].to_numpy(dtype=float)[openmask]
                order = np.lexsort((st_o, c_o))
                last = np.r_[c_o[order][1:] != c_o[order][:-1], True]
                pick = order[last]
                at_rows = offsets[c_o[pick]] + r
                alert[at_rows] = True
                start[at_rows] = st_o[pick]
                evidence[at_rows] = -dep[pick]
                baseline[at_rows] = pre[pick]
    prev_alert = np.r_[False, alert[:-1]] & (rank > 0)
    prev_start = np.r_[0, start[:-1]]
    new = alert & (~prev_alert | (prev_start != start))
    repaired = prev_alert & (~alert | (prev_start != start))
    alert_start = pd.array(start, dtype="Int64")
    alert_start[~alert] = pd.NA
    table = pd.DataFrame({
        "client": panel.client_ids.take(row_client), "session": panel.row_session, "score": panel.row_score,
        "alert": alert, "new": new, "repaired": repaired, "evidence": evidence, "p": np.full(n_rows, np.nan),
        "alert_start": alert_start, "threshold": np.full(n_rows, np.nan), "baseline": baseline,
        "repaired_at": pd.array([pd.NA] * n_rows, dtype="Int64"),
    })
    score_range, _ = resolve_scale(scale)
    out_params = {**{k: v for k, v in used.items() if k != "scale"},
                  "scale": None if score_range is None else score_range.label, "min_sessions": int(min_sessions)}
    return Alerts(_finish(table), name, out_params, __version__, {"mode": "prefix"})
