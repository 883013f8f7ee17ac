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

from ..errors import Problem
from ..panel import Block
from ..params import choice, column, number
from ..validation import check_number
from ._base import BlockResult, Reads, Rule, register_rule
from ._reports import TYPES, report_episodes, typed_result

__all__ = ["Psq", "psq_episodes"]

EUBANKS_2018 = (
    "Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A meta-analysis. "
    "Psychotherapy, 55(4), 508-519 (PSQ items). Thresholds and episode construction: alliance_ts."
)
ITEMS = ("rupture", "withdrawal", "addressed", "resolved")


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
    rupture : str or None, default "rupture"
        Column of the rupture (tension/conflict) item.
    withdrawal : str or None, default "withdrawal"
        Column of the withdrawal (accommodating/avoiding) item; at least one
        of ``rupture`` and ``withdrawal`` is needed.
    resolved : str or None, default "resolved"
        Column of the "resolved by the end of the session" item.
    addressed : str or None, default None
        Column of the "addressed" item (reported, not used).
    rater : str or None, default None
        Column naming the rater of each row (e.g. ``"patient"``,
        ``"therapist"``); None when all answers come from one rater.
    low : float, default 1.0
        Code of the first answer option ("Not at all").
    high : float, default 5.0
        Code of the last answer option ("Very much"). Answers outside
        ``low``-``high`` are input errors.
    rupture_at : float, default 3
        Option rank (1 = "Not at all" ... 5 = "Very much") from which a
        rupture or withdrawal answer reports a rupture: with the default
        coding, an answer of 3 or more.
    resolved_at : float, default 4
        Option rank from which the rupture counts as resolved by the end of
        the session.
    repair : {"resolved_or_absent", "resolved"}, default "resolved_or_absent"
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
    at which the rupture was rated resolved), ``intensity`` that answer,
    ``type`` ``"confrontation"`` (only the rupture item reached the
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

    rupture: str | None = column("rupture", "column of the rupture (tension or conflict) item")
    withdrawal: str | None = column("withdrawal", "column of the withdrawal (accommodating or avoiding) item")
    resolved: str | None = column("resolved", "column of the 'resolved by the end of the session' item")
    addressed: str | None = column(None, "column of the 'addressed' item (reported, not used)")
    rater: str | None = column(None, "column naming the rater of each row (None: one rater)")
    low: float = number(1.0, "code of the first answer option ('Not at all')")
    high: float = number(5.0, "code of the last answer option ('Very much')")
    rupture_at: float = number(3.0, "option rank from which a rupture or withdrawal answer reports a rupture",
                               low=1)
    resolved_at: float = number(4.0, "option rank from which the rupture counts as resolved", low=1)
    repair: str = choice("resolved_or_absent", "what repairs an open episode at a later session",
                         ("resolved_or_absent", "resolved"))

    trusted_output: ClassVar[bool] = True
    client_columns: ClassVar[dict[str, str]] = {"n_confrontation": "int64", "n_withdrawal": "int64"}
    episode_columns: ClassVar[dict[str, Any]] = {
        "type": pd.CategoricalDtype(list(TYPES)),
        "intensity": "float64",
        "resolved_within": "bool",
    }

    def check(self) -> list[Problem]:
        problems = super().check()
        if self.rupture is None and self.withdrawal is None:
            problems.append(Problem("parameters 'rupture', 'withdrawal'", "name at least one of the two item columns"))
        named = [c for c in (getattr(self, item) for item in ITEMS) if isinstance(c, str)]
        if len(set(named)) < len(named):
            problems.append(Problem("parameters 'rupture', 'withdrawal', 'resolved', 'addressed'",
                                    f"each item needs its own column; got {', '.join(map(repr, named))}"))
        if not any(p.where in ("parameter 'low'", "parameter 'high'") for p in problems):
            if not self.low < self.high:
                problems.append(Problem("parameters 'low', 'high'",
                                        f"need low < high, got {self.low!r}, {self.high!r}"))
            else:
                n_options = self.high - self.low + 1
                bad = [p for p in problems if p.where in ("parameter 'rupture_at'", "parameter 'resolved_at'")]
                if not bad:
                    check_number(problems, "rupture_at", self.rupture_at, low=1, high=n_options)
                    check_number(problems, "resolved_at", self.resolved_at, low=1, high=n_options)
        return problems

    def reads(self) -> Reads:
        """The answered items (renamed to their canonical names) and the rater column."""
        return Reads(
            items=tuple((item, getattr(self, item)) for item in ITEMS if getattr(self, item) is not None),
            group=self.rater,
            group_name="rater",
            item_range=(float(self.low), float(self.high)),
            score_items=("rupture", "withdrawal"),
            unit="sessions with answers",
            label="psq",
            uses_scale=False,
        )

    def columns(self) -> dict[str, str]:
        """The configured item columns, canonical name -> column in the data."""
        return {item: getattr(self, item) for item in ITEMS if getattr(self, item) is not None}

    def label(self, block: Block) -> BlockResult:
        ranks: dict[str, np.ndarray] = {
            item: block.items[item] - self.low + 1
            for item in ("rupture", "withdrawal", "resolved") if item in block.items
        }
        ep = psq_episodes(ranks, block.n, self.rupture_at, self.resolved_at, self.repair)
        return typed_result(block, ep, {"intensity": ep["intensity"] + self.low - 1})


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
        resolved = res >= resolved_at
    ep = report_episodes(is_rup, is_wd, resolved, {"intensity": np.fmax(rup, wd)}, n, repair)
    return ep
