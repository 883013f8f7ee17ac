"""The result of a detection, and the one place rule output becomes tables.

Rules report episodes as positions in each client's observed scores; here
they are turned into the user's session numbers and client ids, and into the
three tidy tables of :class:`Detection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .panel import Panel, _ranges
from .rules._base import BlockResult, Rule

__all__ = ["GROUPS", "Detection", "LABELS", "PATTERNS", "PHASES", "group_column"]

LABELS = ("none", "rupture", "repair", "unresolved")
#: Columns that split a client into several courses: the PSQ's raters, the observer rule's coders.
GROUPS = ("rater", "coder")
PATTERNS = ("no_rupture", "repaired", "unresolved", "mixed")
PHASES = ("early", "middle", "late")
STATUSES = ("repaired", "unresolved")
_NONE, _RUPTURE, _REPAIR, _UNRESOLVED = range(4)


@dataclass(frozen=True, eq=False)
class Detection:
    """Episodes, session labels and client summaries found by one rule.

    Attributes
    ----------
    episodes : pandas.DataFrame
        One row per episode, sorted by client and episode, with columns

        - ``client``: the client id, with the input's type;
        - ``episode``: 1, 2, ... within the client, in session order;
        - ``rule``: the rule name;
        - ``start``: session number at which the rupture is first observed
          (for a multi-session decline, the first session of the fall);
        - ``trough``: session of the lowest score of the episode (first one
          if tied), from the onset to the session before the repair or to the
          last session;
        - ``end``: session at which the repair is first observed; missing
          (``<NA>``) for unresolved episodes;
        - ``status``: ``"repaired"`` or ``"unresolved"``;
        - ``depth``: ``pre`` minus the trough score (score units, >= 0);
        - ``pre``: the pre-rupture reference level (score units);
        - ``trough_score``: the score at the trough;
        - ``phase``: ``"early"``, ``"middle"`` or ``"late"``: the third of the
          client's observed session span (first to last observed session
          number) in which ``start`` lies; a start exactly on a boundary goes
          to the later third;
        - plus any columns specific to the rule (see the rule's docs).
    sessions : pandas.DataFrame
        One row per input row, sorted by client and session, with columns
        ``client``, ``session``, ``score`` (NaN for a missed session),
        ``label`` and ``episode`` (``<NA>`` outside episodes). ``label`` is
        ``"rupture"`` from ``start`` to the session before ``end`` of a
        repaired episode, ``"repair"`` at ``end``, ``"unresolved"`` from
        ``start`` of an unresolved episode on, else ``"none"``. A row
        without a score gets the label of the episode it lies inside (it is
        inside when the observed sessions on both sides belong to the same
        episode, or when it follows the start of an unresolved episode).
        Plus any per-session columns of the rule.
    clients : pandas.DataFrame
        One row per input client, sorted by client id, with columns
        ``client``, ``n_sessions`` (observed scores), ``included``,
        ``reason`` (``""`` when included), ``n_ruptures``, ``n_repaired``,
        ``n_unresolved`` (``<NA>`` when not included) and ``pattern``:
        ``"no_rupture"``, ``"repaired"`` (every episode repaired),
        ``"unresolved"`` (every episode unresolved), ``"mixed"``, or missing
        when not included. Plus any per-client columns of the rule.
    rule : str
        The rule's registered name.
    params : dict
        Every parameter actually used, defaults and estimated values filled
        in, plus ``scale`` and ``min_sessions``.
    version : str
        The alliance_ts version that produced the result.
    info : dict
        What the input held and how it was read, for the Methods paragraph
        and the writers: ``names`` (the user's ``client``, ``session`` and
        ``score`` column names), ``keep`` (the client covariates carried into
        ``clients``), ``missing`` (declared missing codes) and
        ``missing_counts`` (``{code: cells}`` recoded as missed sessions),
        ``observed_range`` (lowest and highest observed score, or None),
        ``n_rows`` (input rows), ``missed_within`` (missed sessions between
        each client's first and last observed session, summed), ``dates``
        (True when sessions were dates)
        and ``session_every`` (the date step that numbers them, or None).
    """

    episodes: pd.DataFrame
    sessions: pd.DataFrame
    clients: pd.DataFrame
    rule: str
    params: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A short plain-text report (the numbers a Methods section needs)."""
        c = self.clients
        n_in = int(c["included"].sum())
        lines = [f"alliance_ts {self.version}: rule {self.rule!r}"]
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        lines.append(f"  parameters: {shown}")
        key = group_column(c)
        if key is None:
            lines.append(f"Clients: {len(c)} in the input, {n_in} analysed, {len(c) - n_in} not analysed")
        else:  # one course per client and rater (coder): the counts below are of courses
            lines.append(f"Clients: {c['client'].nunique()} in the input, {len(c)} client x {key} courses: {n_in} "
                         f"analysed, {len(c) - n_in} not analysed")
        if len(c) - n_in:
            reasons = c.loc[~c["included"], "reason"].value_counts()
            for reason, count in reasons.items():
                lines.append(f"  - {count} x {reason}")
        e = self.episodes
        n_rep = int((e["status"] == "repaired").sum())
        n_unr = int((e["status"] == "unresolved").sum())
        lines.append(f"Episodes: {len(e)} ({n_rep} repaired, {n_unr} unresolved)")
        if len(e):
            phase = e["phase"].value_counts().reindex(list(PHASES), fill_value=0)
            lines.append(
                "  onset phase: " + ", ".join(f"{p} {int(phase[p])}" for p in PHASES)
            )
        if len(e) and e["depth"].notna().any():  # self-report and observer episodes have no depth
            lines.append(
                f"  depth (score units): median {e['depth'].median():.3g}, "
                f"range {e['depth'].min():.3g} to {e['depth'].max():.3g}"
            )
        lines.append("Client patterns (analysed clients):")
        counts = c["pattern"].value_counts().reindex(list(PATTERNS), fill_value=0)
        for p in PATTERNS:
            share = counts[p] / n_in if n_in else 0.0
            lines.append(f"  {p:<11} {int(counts[p]):>7}  {share:6.1%}")
        return "\n".join(lines)

    def for_rater(self, rater: Any) -> Detection:
        """The result of one rater or coder (``psq`` with ``rater=``, ``observer`` with ``coder=``).

        Returns a Detection with that rater's (coder's) rows and without the
        ``rater`` (``coder``) column, comparable with score-based results by
        :func:`alliance_ts.agreement`.

        Raises
        ------
        InvalidInputError
            If the result has no ``rater`` or ``coder`` column, or not this one.
        """
        from .errors import InvalidInputError, Problem

        key = group_column(self.clients)
        where = "Detection.for_coder()" if key == "coder" else "Detection.for_rater()"
        if key is None:
            raise InvalidInputError([Problem("rater", f"rule {self.rule!r} has no raters or coders")], where)
        present = list(pd.unique(self.clients[key]))
        if rater not in present:
            from .validation import plain

            shown = ", ".join(plain(v) for v in present)
            raise InvalidInputError([Problem(key, f"no {key} {plain(rater)}; the result has {shown}")], where)

        def pick(t: pd.DataFrame) -> pd.DataFrame:
            return t[t[key] == rater].drop(columns=key).reset_index(drop=True)

        return Detection(pick(self.episodes), pick(self.sessions), pick(self.clients), self.rule,
                         {**self.params, f"{key}_selected": rater}, self.version, dict(self.info))

    def for_coder(self, coder: Any) -> Detection:
        """The result of one coder (the ``observer`` rule with ``coder=``); see :meth:`for_rater`."""
        return self.for_rater(coder)

    def by_client(self, which: str = "first") -> pd.DataFrame:
        """One row per client: the analysis table to merge with outcomes.

        See :func:`alliance_ts.tables.by_client`.
        """
        from .tables import by_client

        return by_client(self, which)

    def around(self, before: int = 3, after: int = 3) -> pd.DataFrame:
        """Scores in the sessions around each episode's start, aligned at 0.

        See :func:`alliance_ts.tables.around`.
        """
        from .tables import around

        return around(self, before=before, after=after)

    def methods(self) -> str:
        """A paragraph for a Methods section (see :func:`alliance_ts.methods.methods_text`)."""
        from .methods import methods_text

        return methods_text(self)

    def to_file(self, path: Any, format: str | None = None, *, table: str | None = None,
                escape_formulas: bool = True) -> list[str]:
        """Write the result where researchers open it: CSV, Parquet, SPSS, Stata or Excel.

        Parameters
        ----------
        path : path
            A workbook (``results.xlsx``): one sheet per table (episodes,
            sessions, clients, by_client) and a manifest sheet (rule,
            parameters, version). With ``table``: that one file. Otherwise a
            folder, written whole or not at all like the command line's
            ``--out``: ``episodes``, ``sessions``, ``clients`` and
            ``by_client`` files (with ``format="xlsx"`` one workbook
            ``results.xlsx``), ``methods.md`` and ``manifest.json``. A path
            ending in ``.sav``, ``.dta``, ``.csv`` or ``.parquet`` names one
            file, so it needs ``table``.
        format : {"csv", "parquet", "sav", "dta", "xlsx"}, optional
            Default: from the extension of ``path``, else CSV. SPSS and
            Stata files carry variable labels and value labels for
            ``label``, ``status``, ``pattern`` and ``phase``
            (:mod:`alliance_ts.export`).
        table : {"episodes", "sessions", "clients", "by_client"}, optional
            Write only this table, to ``path``.
        escape_formulas : bool, default True
            Neutralise text cells that a spreadsheet would run as formulas
            (CSV and Excel).

        Returns
        -------
        list of str
            The files written.

        Notes
        -----
        Files use the input's own names for the client id, session and score
        columns (``res.info["names"]``); with date sessions the date column
        takes the session column's name.
        """
        from .files import write_result

        return write_result(self, path, format, table=table, escape=escape_formulas)

    def __repr__(self) -> str:
        key = group_column(self.clients)
        courses = f" ({len(self.clients)} client x {key} courses)" if key is not None else ""
        return (
            f"<Detection rule={self.rule!r}: {self.clients['client'].nunique()} clients{courses}, "
            f"{len(self.episodes)} episodes, {len(self.sessions)} sessions>"
        )


def _categorical(codes: Any, categories: Any) -> pd.Categorical:
    """``pandas.Categorical.from_codes`` of integer codes (-1: missing)."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(categories)))


def phase_codes(start: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """0 (early), 1 (middle), 2 (late): the third of ``first``..``last`` holding ``start``.

    A start exactly on a boundary goes to the later third.
    """
    span = last - first
    pos = start - first
    return np.where(3 * pos < span, 0, np.where(3 * pos < 2 * span, 1, 2))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple) and all(isinstance(e, float) for e in v):
        return "(" + ", ".join(f"{e:.4g}" for e in v) + ")"
    return repr(v)


def build_detection(
    panel: Panel,
    analysed: np.ndarray,
    min_sessions: int,
    results: list[BlockResult],
    rule_name: str,
    rule: Rule,
    params: dict[str, Any],
    version: str,
    info: dict[str, Any] | None = None,
) -> Detection:
    """Assemble the public tables from the rule's block results (every rule, every path)."""
    n_clients = panel.n_clients
    n_obs = panel.n_obs
    offsets = panel.obs_offsets
    reads = rule.reads()

    reason = np.full(n_clients, "", dtype=object)
    too_few = ~analysed
    if too_few.any():
        reason[too_few] = [f"fewer than {min_sessions} {reads.unit} ({k})" for k in n_obs[too_few]]
    client_extra = {name: np.full(n_clients, np.nan) for name in rule.client_columns}
    obs_extra = {name: np.full(panel.obs_values.size, np.nan) for name in rule.session_columns}
    ep_parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("code", "start", "trough", "end", "pre", *rule.episode_columns)
    }
    for res in results:
        if res.reason is not None:
            reason[res.clients] = np.where(res.reason == "", reason[res.clients], res.reason)
        for name in rule.client_columns:
            client_extra[name][res.clients] = res.client_extra[name]
        if rule.session_columns:
            m, length = next(iter(res.session_extra.values())).shape
            cols = np.arange(length)[None, :]
            valid = cols < n_obs[res.clients][:, None]
            gidx = (offsets[res.clients][:, None] + cols)[valid]
            for name in rule.session_columns:
                obs_extra[name][gidx] = res.session_extra[name][valid]
        code = res.clients[res.ep_row]
        ep_parts["code"].append(code)
        ep_parts["start"].append(res.ep_start)
        ep_parts["trough"].append(res.ep_trough)
        ep_parts["end"].append(res.ep_end)
        ep_parts["pre"].append(res.ep_pre)
        for name in rule.episode_columns:
            ep_parts[name].append(res.ep_extra[name])

    included = reason == ""
    ep = {
        k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64 if k in ("code", "start", "trough",
                                                                            "end") else float))
        for k, v in ep_parts.items()
    }
    keep = included[ep["code"]] if ep["code"].size else np.zeros(0, dtype=bool)
    ep = {k: v[keep] for k, v in ep.items()}
    width = int(ep["start"].max()) + 1 if ep["start"].size else 1
    order = np.argsort(ep["code"] * width + ep["start"], kind="stable")
    ep = {k: v[order] for k, v in ep.items()}

    episodes, ep_number = _episodes_table(panel, ep, rule_name, rule)
    sessions = _sessions_table(panel, ep, ep_number, obs_extra, rule)
    clients = _clients_table(panel, included, reason, ep, client_extra, rule)
    if panel.covariates is not None:  # the covariates follow the id columns, as in by_client
        at = 2 if panel.group_ids is not None else 1
        for k, col in enumerate(panel.covariates.columns):
            clients.insert(at + k, col, panel.covariates[col].array)
    return Detection(episodes, sessions, clients, rule_name, params, version, dict(info or {}))


def _ids(panel: Panel, codes: np.ndarray, reads: Any) -> dict[str, Any]:
    """The id columns of the units ``codes``: ``client``, plus the group (rater) if any."""
    out: dict[str, Any] = {"client": panel.client_ids.take(codes)}
    if panel.group_ids is not None:
        out[reads.group_name] = panel.group_ids.take(codes)
    return out


def _extra_column(values: np.ndarray, dtype: Any) -> Any:
    """A rule's extra episode column in its declared dtype."""
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Categorical(values, dtype=dtype)
    if dtype == "bool":
        return np.asarray(values, dtype=bool)
    return pd.array(values, dtype=dtype)


def _episodes_table(panel: Panel, ep: dict[str, np.ndarray], rule_name: str, rule: Rule):
    code = ep["code"]
    offsets = panel.obs_offsets
    base = offsets[code]
    sess = panel.obs_sessions
    vals = panel.obs_values
    repaired = ep["end"] >= 0
    start_s = sess[base + ep["start"]]
    trough_s = sess[base + ep["trough"]]
    end_s = np.where(repaired, sess[base + np.maximum(ep["end"], 0)], 0)
    reads = rule.reads()
    trough_score = vals[base + ep["trough"]] if reads.scores else np.full(code.size, np.nan)
    first_s = sess[offsets[code]]
    last_s = sess[offsets[code + 1] - 1] if code.size else np.zeros(0, dtype=np.int64)
    phase_code = phase_codes(start_s, first_s, last_s)
    # episode number within client: rank by start (ep is sorted by code, start)
    if code.size:
        new_client = np.r_[True, code[1:] != code[:-1]]
        group_start = np.maximum.accumulate(np.where(new_client, np.arange(code.size), 0))
        number = np.arange(code.size) - group_start + 1
    else:
        number = np.zeros(0, dtype=np.int64)
    data = {
        **_ids(panel, code, reads),
        "episode": number.astype(np.int64),
        "rule": _categorical(np.zeros(code.size, dtype=np.int8), [rule_name]),
        "start": start_s.astype(np.int64),
        "trough": trough_s.astype(np.int64),
        "end": _nullable_int(end_s, ~repaired),
        "status": _categorical(np.where(repaired, 0, 1).astype(np.int8), list(STATUSES)),
        "depth": ep["pre"] - trough_score,
        "pre": ep["pre"],
        "trough_score": trough_score,
        "phase": _categorical(phase_code.astype(np.int8), list(PHASES)),
    }
    dates = panel.obs_dates
    if dates is not None:
        data["start_date"] = dates[base + ep["start"]]
        data["trough_date"] = dates[base + ep["trough"]]
        end_date = dates[base + np.maximum(ep["end"], 0)] if code.size else dates[:0]
        data["end_date"] = np.where(repaired, end_date, np.datetime64("NaT"))
    for name, dtype in rule.episode_columns.items():
        data[name] = _extra_column(ep[name], dtype)
    return pd.DataFrame(data, copy=False), number


def _nullable_int(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """Int64 column with <NA> where ``missing`` (values there are ignored)."""
    return pd.arrays.IntegerArray(values.astype(np.int64, copy=False), missing.astype(bool, copy=False))


def _sessions_table(panel, ep, ep_number, obs_extra, rule):
    n_obs_total = panel.obs_values.size
    offsets = panel.obs_offsets
    code = ep["code"]
    base = offsets[code]
    repaired = ep["end"] >= 0
    g_start = base + ep["start"]
    g_stop = np.where(repaired, base + ep["end"], offsets[code + 1])
    lengths = g_stop - g_start
    inside = _ranges(g_start, lengths)
    obs_label = np.zeros(n_obs_total, dtype=np.int8)
    obs_ep = np.zeros(n_obs_total, dtype=np.int32)
    obs_label[inside] = np.repeat(np.where(repaired, _RUPTURE, _UNRESOLVED).astype(np.int8), lengths)
    obs_ep[inside] = np.repeat(ep_number.astype(np.int32), lengths)
    g_end = (base + ep["end"])[repaired]
    obs_label[g_end] = _REPAIR
    obs_ep[g_end] = ep_number[repaired]

    if panel.all_observed:
        label, episode = obs_label, obs_ep
    else:
        label, episode = _label_missing_rows(panel, obs_label, obs_ep)
    reads = rule.reads()
    data = {
        "client": panel.row_clients(),
        **({reads.group_name: panel.group_ids.take(panel.row_client)} if panel.group_ids is not None else {}),
        "session": panel.row_session,
        **({"date": panel.row_date} if panel.row_date is not None else {}),
        "score": panel.row_score,
        "label": _categorical(label, list(LABELS)),
        "episode": pd.arrays.IntegerArray(episode, episode == 0),
        **panel.row_items,
    }
    observed = None if panel.all_observed else panel.row_observed
    for name, dtype in rule.session_columns.items():
        if observed is None:
            col = obs_extra[name]
        else:
            col = np.full(observed.size, np.nan)
            col[observed] = obs_extra[name]
        if dtype == "float64":
            data[name] = col
        elif dtype == "boolean":
            data[name] = pd.arrays.BooleanArray(col == 1.0, np.isnan(col))
        else:
            data[name] = pd.array(col, dtype="Float64").astype(dtype)
    return pd.DataFrame(data, copy=False)


def _label_missing_rows(panel, obs_label, obs_ep):
    """Labels of all rows: rows without a score take the episode they lie inside."""
    n_obs_total = obs_label.size
    offsets = panel.obs_offsets
    observed = panel.row_observed
    n_rows = observed.size
    prev_obs = np.cumsum(observed) - 1  # last observed row at or before each row
    label = np.zeros(n_rows, dtype=np.int8)
    episode = np.zeros(n_rows, dtype=np.int32)
    label[observed] = obs_label
    episode[observed] = obs_ep
    missing = np.flatnonzero(~observed)
    c = panel.row_client[missing]
    prv = prev_obs[missing]
    has_prev = prv >= offsets[c]
    nxt = prv + 1
    has_next = nxt < offsets[c + 1]
    if n_obs_total:
        prv_c = np.clip(prv, 0, n_obs_total - 1)
        nxt_c = np.clip(nxt, 0, n_obs_total - 1)
        lab_p, ep_p, ep_n = obs_label[prv_c], obs_ep[prv_c], obs_ep[nxt_c]
    else:
        lab_p = ep_p = ep_n = np.zeros(missing.size, dtype=np.int64)
    open_prev = has_prev & ((lab_p == _RUPTURE) | (lab_p == _UNRESOLVED))
    inside = open_prev & ((has_next & (ep_n == ep_p)) | (~has_next & (lab_p == _UNRESOLVED)))
    label[missing] = np.where(inside, lab_p, _NONE)
    episode[missing] = np.where(inside, ep_p, 0)
    return label, episode


def _clients_table(panel, included, reason, ep, client_extra, rule):
    n_clients = panel.n_clients
    code = ep["code"]
    repaired = ep["end"] >= 0
    n_rup = np.bincount(code, minlength=n_clients)
    n_rep = np.bincount(code[repaired], minlength=n_clients)
    n_unr = n_rup - n_rep
    pattern = np.where(n_rup == 0, 0, np.where(n_unr == 0, 1, np.where(n_rep == 0, 2, 3)))
    pattern = np.where(included, pattern, -1).astype(np.int8)

    def counts(a):
        return _nullable_int(a, ~included)

    data = {
        **_ids(panel, np.arange(n_clients), rule.reads()),
        "n_sessions": panel.n_obs.astype(np.int64),
        "included": included,
        "reason": reason.astype(str) if n_clients else np.zeros(0, dtype=str),
        "n_ruptures": counts(n_rup),
        "n_repaired": counts(n_rep),
        "n_unresolved": counts(n_unr),
        "pattern": _categorical(pattern, list(PATTERNS)),
    }
    for name, dtype in rule.client_columns.items():
        values = client_extra[name]
        if dtype.startswith("int"):
            data[name] = _nullable_int(np.nan_to_num(values), np.isnan(values))
        else:
            data[name] = values
    return pd.DataFrame(data, copy=False)


def group_column(table: pd.DataFrame) -> str | None:
    """The column of ``table`` that splits clients into courses (``rater`` or ``coder``), or None."""
    return next((g for g in GROUPS if g in table.columns), None)


def one_course_problem(result: Detection, name: str = "result") -> Any:
    """The problem with a result that has several courses per client (raters or coders) where one is needed."""
    from .errors import Problem
    from .validation import plain

    key = group_column(result.clients)
    if key is None:
        return None
    present = [plain(v) for v in pd.unique(result.clients[key])]
    return Problem(f"parameter {name!r}", f"the result has a course per {key} ({', '.join(present)}), so each client "
                   f"would count once per {key}; pick one with result.for_{key}(...)")
