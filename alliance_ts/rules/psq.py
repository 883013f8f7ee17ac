"""Self-reported ruptures: the Post-Session Questionnaire (PSQ).

After a session the patient and/or the therapist answer, from "Not at all" to
"Very much" (Eubanks, Muran & Safran, 2018; item wording in their panel):

- *rupture*: "Did you experience any tension or problem, any
  misunderstanding, conflict, or disagreement, in your relationship with
  your [therapist or patient] during the session?" (a confrontation marker);
- *withdrawal*: "To what extent did you find yourself and your [therapist or
  patient] overly accommodating or overly protective of each other? [...]
  making nice or smoothing things over? [...] holding back or avoiding
  something?" (a withdrawal marker);
- *addressed*: "To what extent was this problem addressed in this session?";
- *resolved*: "To what degree do you feel this problem was resolved by the
  end of the session?"

The rule turns these answers into the same episodes, session labels and
client patterns as the score-based rules, so that self-reports and score
fluctuations can be compared (:func:`alliance_ts.agreement`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import InvalidInputError, Problem
from ..panel import Block, Panel
from ._base import BlockResult, Rule, check_choice, check_number, register_rule

__all__ = ["Psq", "detect_psq", "psq_episodes"]

EUBANKS_2018 = (
    "Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A meta-analysis. "
    "Psychotherapy, 55(4), 508-519 (PSQ items). Thresholds and episode construction: alliance_ts."
)
ITEMS = ("rupture", "withdrawal", "addressed", "resolved")
TYPES = ("confrontation", "withdrawal", "both")


@register_rule(
    "psq",
    summary="Post-Session Questionnaire: a rupture or withdrawal item rated 3+ of 5 opens an episode; "
            "'resolved' 4+ (or no rupture at a later session) repairs it",
    reference=EUBANKS_2018,
    family="self-report",
)
@dataclass(frozen=True)
class Psq(Rule):
    r"""Episodes from Post-Session Questionnaire answers.

    Called as ``detect(df, rule="psq", client=..., session=..., **params)``:
    the answers are columns of ``df`` named by the parameters below
    (``score=`` and ``scale=`` of :func:`~alliance_ts.detect` are not used
    for the items except as noted). Several raters (patient, therapist) are
    rows distinguished by the ``rater`` column; each rater's answers are
    labelled separately and every output table gets a ``rater`` column.

    Parameters
    ----------
    rupture, withdrawal : str or None
        Columns of the rupture (tension/conflict) and withdrawal
        (accommodating/avoiding) items; at least one is needed.
    resolved, addressed : str or None
        Columns of the "resolved by the end of the session" and "addressed"
        items (``addressed`` is reported, not used).
    rater : str or None
        Column naming the rater of each row (e.g. ``"patient"``,
        ``"therapist"``); None when all answers come from one rater.
    low, high : float
        Codes of the first ("Not at all") and last ("Very much") answer
        options. Answers outside are input errors. Default 1 and 5.
    rupture_at : float, default 3
        Option rank (1 = "Not at all" ... 5 = "Very much") from which a
        rupture or withdrawal answer reports a rupture: with the default
        coding, an answer of 3 or more.
    resolved_at : float, default 4
        Option rank from which the rupture counts as resolved by the end of
        the session.
    repair : {"resolved_or_absent", "resolved"}
        What repairs an open episode at a later session: a rupture reported
        and rated resolved, or (default) also a session at which no rupture
        is reported; with ``"resolved"`` only the former.

    Notes
    -----
    For each rater and client, over the sessions with at least one answer
    (rank :math:`q = x - low + 1` of an answer :math:`x`):

    1. A session *reports a rupture* when the rupture or the withdrawal item
       has rank :math:`\ge` ``rupture_at``.
    2. Outside an episode, a reporting session opens one (``start``). If the
       same session is rated resolved (``resolved`` rank :math:`\ge`
       ``resolved_at``) the episode is repaired within the session:
       ``end = start`` and the session is labelled ``"repair"``.
    3. An open episode is repaired (``end``) at the first later session that
       reports the rupture and rates it resolved, or (``repair=
       "resolved_or_absent"``) reports no rupture. It stays open while
       sessions report the rupture unresolved; if it is open at the last
       session it is ``"unresolved"``.
    4. Sessions without any answer are skipped (a missed questionnaire).

    Episode columns: ``trough`` is the session with the highest rupture or
    withdrawal answer of the episode (first if tied; it can be the session
    at which the rupture was rated resolved), ``intensity`` that answer, ``type`` ``"confrontation"`` (only the rupture item reached the
    threshold), ``"withdrawal"`` (only the withdrawal item) or ``"both"``,
    and ``resolved_within`` (repaired in the session it started). ``pre``,
    ``depth`` and ``trough_score`` are score-based and missing (NaN) for
    this rule. ``phase`` is computed as for every rule, over the sessions
    with answers.

    Session columns: ``score`` is the higher of the rupture and withdrawal
    answers (the session's reported rupture intensity, original coding),
    plus the item columns under the names ``rupture``, ``withdrawal``,
    ``addressed``, ``resolved``. Client columns add ``n_confrontation`` and
    ``n_withdrawal`` (episodes with each marker).

    **Provenance.** The items and their answer scale are those of the PSQ as
    reproduced by Eubanks et al. (2018). The thresholds (3 of 5 for a
    rupture, 4 of 5 for resolved), the rule that a session without a
    reported rupture repairs an open episode, and the construction of
    multi-session episodes are this library's choices; no published scoring
    rule was available to verify them against. ``min_sessions`` (default 3)
    counts sessions with answers; for self-reports the meta-analysis did
    not require three, so ``min_sessions=1`` is defensible.

    References
    ----------
    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture
    repair: A meta-analysis. *Psychotherapy*, 55(4), 508-519.

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance_ts as at
    >>> df = pd.DataFrame({"client": 1, "session": [1, 2, 3, 4, 5],
    ...                    "rupture": [1, 4, 3, 1, 5], "withdrawal": [1, 1, 2, 1, 1],
    ...                    "resolved": [None, 2, 2, None, 5]})
    >>> at.detect(df, rule="psq").episodes[["start", "end", "status", "type", "resolved_within"]]
       start  end    status           type  resolved_within
    0      2    4  repaired  confrontation            False
    1      5    5  repaired  confrontation             True
    """

    rupture: str | None = "rupture"
    withdrawal: str | None = "withdrawal"
    resolved: str | None = "resolved"
    addressed: str | None = None
    rater: str | None = None
    low: float = 1.0
    high: float = 5.0
    rupture_at: float = 3.0
    resolved_at: float = 4.0
    repair: str = "resolved_or_absent"

    input: ClassVar[str] = "psq"
    trusted_output: ClassVar[bool] = True

    def check(self) -> list[Problem]:
        problems: list[Problem] = []
        for name in ("rupture", "withdrawal", "resolved", "addressed", "rater"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                problems.append(Problem(f"parameter {name!r}", f"must be a column name or None, got {value!r}"))
        if self.rupture is None and self.withdrawal is None:
            problems.append(Problem("parameters 'rupture', 'withdrawal'", "name at least one of the two item columns"))
        check_number(problems, "low", self.low)
        check_number(problems, "high", self.high)
        if not problems and not self.low < self.high:
            problems.append(Problem("parameters 'low', 'high'", f"need low < high, got {self.low!r}, {self.high!r}"))
        n_options = (self.high - self.low + 1) if not problems else None
        check_number(problems, "rupture_at", self.rupture_at, low=1, high=n_options)
        check_number(problems, "resolved_at", self.resolved_at, low=1, high=n_options)
        check_choice(problems, "repair", self.repair, ("resolved_or_absent", "resolved"))
        return problems

    def label(self, block: Block) -> BlockResult:  # pragma: no cover - psq labels answer tables
        raise TypeError("the psq rule labels questionnaire tables: call alliance_ts.detect(df, rule='psq', ...)")

    def columns(self) -> dict[str, str]:
        """The configured item columns, canonical name -> column in the data."""
        return {item: getattr(self, item) for item in ITEMS if getattr(self, item) is not None}


def psq_episodes(
    ranks: dict[str, np.ndarray],
    n: np.ndarray,
    rupture_at: float,
    resolved_at: float,
    repair: str,
) -> dict[str, np.ndarray]:
    """The PSQ episode scan, vectorised over clients.

    Parameters
    ----------
    ranks : dict of item -> ndarray (m, L)
        Answer ranks of each client's answered sessions in session order
        (NaN when that item was not answered or after the last session);
        keys ``rupture``, ``withdrawal`` (at least one) and ``resolved``.
    n : ndarray (m,)
        Answered sessions per client.

    Returns
    -------
    dict of ndarray (k,)
        ``row``, ``start``, ``trough``, ``end`` (-1 when unresolved; positions
        among the answered sessions), ``intensity`` (highest rank),
        ``confrontation`` and ``withdrawal`` (bool markers), in no particular
        order.
    """
    m, length = n.size, int(n.max()) if n.size else 0
    nan = np.full((m, length), np.nan)
    rup, wd = ranks.get("rupture", nan), ranks.get("withdrawal", nan)
    res = ranks.get("resolved", nan)
    with np.errstate(invalid="ignore"):
        is_rup, is_wd = rup >= rupture_at, wd >= rupture_at
        reported = is_rup | is_wd
        resolved = res >= resolved_at
    level = np.fmax(rup, wd)
    open_ = np.zeros(m, dtype=bool)
    start = np.zeros(m, dtype=np.int64)
    trough = np.zeros(m, dtype=np.int64)
    top = np.zeros(m)
    conf = np.zeros(m, dtype=bool)
    withd = np.zeros(m, dtype=bool)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "start", "trough", "end", "intensity",
                                                          "confrontation", "withdrawal")}

    def record(mask: np.ndarray, end: np.ndarray | int) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            out["row"].append(idx)
            out["start"].append(start[idx])
            out["trough"].append(trough[idx])
            out["end"].append(np.broadcast_to(np.asarray(end, dtype=np.int64), idx.shape).copy())
            out["intensity"].append(top[idx])
            out["confrontation"].append(conf[idx])
            out["withdrawal"].append(withd[idx])

    for j in range(length):
        valid = j < n
        rep, done_now = reported[:, j] & valid, resolved[:, j] & valid
        was_open = open_.copy()
        # an open episode goes on, or is repaired at this session
        going = was_open & rep
        higher = going & (level[:, j] > top)
        top = np.where(higher, level[:, j], top)
        trough = np.where(higher, j, trough)
        conf |= going & is_rup[:, j]
        withd |= going & is_wd[:, j]
        closing = going & done_now
        if repair == "resolved_or_absent":
            closing |= was_open & valid & ~rep
        record(closing, j)
        open_ &= ~closing
        # a new episode opens at a reporting session outside an episode
        new = ~was_open & rep
        start = np.where(new, j, start)
        trough = np.where(new, j, trough)
        top = np.where(new, level[:, j], top)
        conf = np.where(new, is_rup[:, j], conf)
        withd = np.where(new, is_wd[:, j], withd)
        record(new & done_now, j)
        open_ |= new & ~done_now
    record(open_, -1)
    return {k: (np.concatenate(v) if v else np.zeros(0, dtype=bool if k in ("confrontation", "withdrawal")
                                                     else float if k == "intensity" else np.int64))
            for k, v in out.items()}


def detect_psq(rule: Psq, data: Any, *, client: str, session: str, scale: Any, min_sessions: int,
               rule_name: str, version: str, problems: list[Problem] | None = None) -> Any:
    """Validate a PSQ answer table and label it (the psq branch of :func:`alliance_ts.detect`).

    ``problems`` already found (with the parameters) are raised together with
    the table's.
    """
    from ..result import Detection

    groups, found = _read(rule, data, client=client, session=session, scale=scale)
    problems = list(problems or []) + found
    if problems:
        raise InvalidInputError(problems, "alliance_ts.detect()")
    parts = [_label_group(rule, rater, panels, int(min_sessions), rule_name) for rater, panels in groups]
    tables = []
    for k in range(3):
        frame = pd.concat([p[k] for p in parts], ignore_index=True)
        keys = ["client"] + (["rater"] if rule.rater is not None else []) + [("episode", "session", None)[k]]
        keys = [x for x in keys if x is not None]
        tables.append(frame.sort_values(keys, kind="stable").reset_index(drop=True))
    params = {**rule.params(), "scale": None, "min_sessions": int(min_sessions)}
    return Detection(tables[0], tables[1], tables[2], rule_name, params, version)


def _read(rule: Psq, data: Any, *, client: str, session: str, scale: Any):
    """Every problem of a PSQ table, or the validated panels of each rater."""
    from ..validation import read_panel

    problems: list[Problem] = []
    if scale is not None:
        problems.append(Problem("parameter 'scale'", "the psq rule reads answer codes: give low= and high= "
                                "(default 1 and 5), not scale="))
    if not isinstance(data, pd.DataFrame):
        problems.append(Problem("data", f"the psq rule needs a long DataFrame of answers, got {type(data).__name__}"))
        return [], problems
    items = rule.columns()
    needed = [client, session, *items.values()] + ([rule.rater] if rule.rater is not None else [])
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        problems.append(Problem(
            "columns", f"{len(missing)} required column(s) not found: " + ", ".join(map(repr, missing))
            + "; available: " + ", ".join(map(repr, list(data.columns)[:20]))
            + " (name the item columns with rupture=, withdrawal=, resolved=, addressed=, rater=)"))
        return [], problems
    if len(data) == 0:
        return [], problems + [Problem("data", "the table has no rows")]
    groups: list[tuple[Any, pd.DataFrame]]
    if rule.rater is None:
        groups = [(None, data)]
    else:
        no_rater = data[rule.rater].isna().to_numpy()
        if no_rater.any():
            rows = ", ".join(f"row {_label(i)}" for i in data.index[no_rater][:5])
            problems.append(Problem(f"column {rule.rater!r}", f"{int(no_rater.sum())} rows without a rater", (rows,)))
        kept = data[~no_rater]
        codes, raters = pd.factorize(kept[rule.rater], sort=True)
        groups = [(r, kept[codes == k]) for k, r in enumerate(raters)]
    out = []
    for rater, frame in groups:
        panels: dict[str, Panel] = {}
        seen: list[Problem] = []
        for item, col in items.items():
            panel, found = read_panel(frame, client=client, session=session, score=col, scale=(rule.low, rule.high))
            for p in found:
                if p not in seen:
                    seen.append(p)
            panels[item] = panel
        if rater is not None:
            seen = [Problem(f"rater {_label(rater)}: {p.where}", p.message, p.examples) for p in seen]
        problems += seen
        out.append((rater, panels))
    return out, problems


def _label(value: Any) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    return repr(value) if isinstance(value, str) else str(value)


def _label_group(rule: Psq, rater: Any, panels: dict[str, Panel], min_sessions: int, rule_name: str):
    """The episodes, sessions and clients tables of one rater."""
    from ..result import LABELS, PATTERNS, STATUSES, _nullable_int, phase_codes

    base = next(iter(panels.values()))
    codes, sess = base.row_client, base.row_session
    values = {item: panels[item].row_score for item in panels}
    answered = np.zeros(codes.size, dtype=bool)
    for v in values.values():
        answered |= ~np.isnan(v)
    n_clients = base.n_clients
    n_ans = np.bincount(codes[answered], minlength=n_clients)
    analysed = n_ans >= min_sessions
    offsets = np.r_[0, np.cumsum(n_ans)]
    a_codes, a_sess = codes[answered], sess[answered]
    a_pos = np.arange(a_codes.size) - offsets[a_codes]

    # the scan over analysed clients' answered sessions
    rows_of = np.flatnonzero(analysed)
    local = np.full(n_clients, -1)
    local[rows_of] = np.arange(rows_of.size)
    keep = analysed[a_codes]
    length = int(n_ans[rows_of].max()) if rows_of.size else 0
    ranks = {}
    for item in ("rupture", "withdrawal", "resolved"):
        if item in values:
            mat = np.full((rows_of.size, length), np.nan)
            mat[local[a_codes[keep]], a_pos[keep]] = values[item][answered][keep] - rule.low + 1
            ranks[item] = mat
    ep = psq_episodes(ranks, n_ans[rows_of], rule.rupture_at, rule.resolved_at, rule.repair)
    code = rows_of[ep["row"]]
    order = np.lexsort((ep["start"], code))
    code = code[order]
    ep = {k: v[order] for k, v in ep.items()}
    first = offsets[code]
    start_s, trough_s = a_sess[first + ep["start"]], a_sess[first + ep["trough"]]
    repaired = ep["end"] >= 0
    end_s = np.where(repaired, a_sess[first + np.maximum(ep["end"], 0)], 0)
    number = _numbers(code)
    phase = phase_codes(start_s, a_sess[first], a_sess[offsets[code + 1] - 1] if code.size else start_s)
    ep_type = np.where(ep["confrontation"] & ep["withdrawal"], 2, np.where(ep["withdrawal"], 1, 0))
    ids = base.client_ids.take(code)
    intensity = ep["intensity"] + rule.low - 1
    episodes = pd.DataFrame({
        "client": ids,
        **({"rater": [rater] * code.size} if rule.rater is not None else {}),
        "episode": number,
        "rule": pd.Categorical([rule_name] * code.size, categories=[rule_name]),
        "start": start_s.astype(np.int64),
        "trough": trough_s.astype(np.int64),
        "end": _nullable_int(end_s, ~repaired),
        "status": pd.Categorical.from_codes(np.where(repaired, 0, 1).astype(np.int8), categories=list(STATUSES)),
        "depth": np.full(code.size, np.nan),
        "pre": np.full(code.size, np.nan),
        "trough_score": np.full(code.size, np.nan),
        "phase": pd.Categorical.from_codes(phase.astype(np.int8), categories=["early", "middle", "late"]),
        "type": pd.Categorical.from_codes(ep_type.astype(np.int8), categories=list(TYPES)),
        "intensity": intensity,
        "resolved_within": repaired & (ep["end"] == ep["start"]),
    })

    # session labels: first on answered sessions, then rows without answers
    lab = np.zeros(a_codes.size, dtype=np.int8)
    epi = np.full(a_codes.size, -1, dtype=np.int64)
    lo = first + ep["start"]
    hi = np.where(repaired, first + ep["end"], offsets[code + 1] if code.size else 0)  # exclusive
    inside, owner = _ranges(lo, hi)
    lab[inside] = np.where(repaired[owner], 1, 3)
    epi[inside] = number[owner]
    lab[hi[repaired]] = 2
    epi[hi[repaired]] = number[repaired]
    row_lab = np.zeros(codes.size, dtype=np.int8)
    row_epi = np.full(codes.size, -1, dtype=np.int64)
    row_lab[answered], row_epi[answered] = lab, epi
    gaps = np.flatnonzero(~answered)
    if gaps.size and code.size:
        # a row without answers lies inside an episode when the answered rows
        # on both sides belong to it, or when it follows an unresolved one
        idx = np.flatnonzero(answered)
        prev = np.searchsorted(idx, gaps) - 1
        nxt = prev + 1
        same_client_prev = (prev >= 0) & (codes[idx[np.maximum(prev, 0)]] == codes[gaps])
        same_client_next = (nxt < idx.size) & (codes[idx[np.minimum(nxt, idx.size - 1)]] == codes[gaps])
        p_epi = np.where(same_client_prev, epi[np.maximum(prev, 0)], -1)
        n_epi = np.where(same_client_next, epi[np.minimum(nxt, idx.size - 1)], -2)
        p_lab = np.where(same_client_prev, lab[np.maximum(prev, 0)], 0)
        inside = (p_epi >= 0) & ((p_epi == n_epi) | ((p_lab == 3) & ~same_client_next))
        row_epi[gaps[inside]] = p_epi[inside]
        row_lab[gaps[inside]] = np.where(p_lab[inside] == 3, 3, 1)
    score = np.fmax(values.get("rupture", np.full(codes.size, np.nan)),
                    values.get("withdrawal", np.full(codes.size, np.nan)))
    sessions = pd.DataFrame({
        "client": base.client_ids.take(codes),
        **({"rater": [rater] * codes.size} if rule.rater is not None else {}),
        "session": sess.astype(np.int64),
        "score": score,
        "label": pd.Categorical.from_codes(row_lab, categories=list(LABELS)),
        "episode": _nullable_int(row_epi, row_epi < 0),
        **{item: values[item] for item in ITEMS if item in values},
    })

    n_rup = np.bincount(code, minlength=n_clients)
    n_rep = np.bincount(code[repaired], minlength=n_clients)
    n_unr = n_rup - n_rep
    pattern = np.where(n_rup == 0, 0, np.where(n_unr == 0, 1, np.where(n_rep == 0, 2, 3)))
    reason = np.where(analysed, "", [f"fewer than {min_sessions} sessions with answers ({k})" for k in n_ans])
    clients = pd.DataFrame({
        "client": base.client_ids,
        **({"rater": [rater] * n_clients} if rule.rater is not None else {}),
        "n_sessions": n_ans.astype(np.int64),
        "included": analysed,
        "reason": reason.astype(object),
        "n_ruptures": _nullable_int(n_rup, ~analysed),
        "n_repaired": _nullable_int(n_rep, ~analysed),
        "n_unresolved": _nullable_int(n_unr, ~analysed),
        "pattern": pd.Categorical.from_codes(np.where(analysed, pattern, -1).astype(np.int8), categories=list(PATTERNS)),
        "n_confrontation": _nullable_int(np.bincount(code[ep["confrontation"]], minlength=n_clients), ~analysed),
        "n_withdrawal": _nullable_int(np.bincount(code[ep["withdrawal"]], minlength=n_clients), ~analysed),
    })
    return episodes, sessions, clients


def _numbers(code: np.ndarray) -> np.ndarray:
    """1, 2, ... within runs of equal codes (``code`` sorted)."""
    if not code.size:
        return np.zeros(0, dtype=np.int64)
    new = np.r_[True, code[1:] != code[:-1]]
    group_start = np.maximum.accumulate(np.where(new, np.arange(code.size), 0))
    return (np.arange(code.size) - group_start + 1).astype(np.int64)


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``range(lo[k], hi[k])`` and the ``k`` each index comes from."""
    length = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(lo.size), length)
    if not owner.size:
        return owner, owner
    within = np.arange(owner.size) - np.repeat(np.cumsum(length) - length, length)
    return lo[owner] + within, owner
