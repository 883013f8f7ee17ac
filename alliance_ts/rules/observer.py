"""Observer-coded ruptures: the Rupture Resolution Rating System (3RS).

Trained coders watch session recordings and mark, segment by segment,
withdrawal rupture markers (moving away from the therapist or the work) and
confrontation rupture markers (moving against them), the therapist's
resolution strategies, and rate the ruptures' significance, the therapist's
contribution and how far the ruptures were resolved (Eubanks, Muran &
Safran, 2015, manual; validation: Eubanks, Lubitz, Muran & Safran, 2019).

The rule ``observer`` reads such codes -- one row per client x session x
segment, or one row per session -- and turns them into the same episodes,
session labels and client patterns as the score-based and self-report
rules, so that the three ways of seeing a rupture can be compared
(:func:`alliance_ts.convergence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import Problem
from ..panel import Block
from ..params import choice, column, columns, number
from ..segments import Segments
from ..validation import check_number
from ._base import BlockResult, Reads, Rule, register_preset, register_rule
from ._reports import TYPES, report_episodes, typed_result

__all__ = ["Observer"]

EUBANKS_2019 = (
    "Eubanks, C. F., Lubitz, J., Muran, J. C., & Safran, J. D. (2019). Rupture Resolution Rating System (3RS): "
    "Development and validation. Psychotherapy Research; manual: Eubanks, Muran & Safran (2015). "
    "Session and episode criteria: alliance_ts."
)
#: The session-level values the rule reads, in order (see :mod:`alliance_ts.segments`).
VALUES = ("withdrawal", "confrontation", "resolution", "resolution_late", "segments", "significance",
          "resolved", "contribution")


def _names(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@register_rule(
    "observer",
    summary="3RS observer codes: a coded session with a withdrawal or confrontation marker has a rupture; a "
            "resolution rating of 4+ of 5 (or, without one, a resolution strategy at or after the last marker) "
            "resolves it; an unresolved rupture stays open until a session resolves it or shows none",
    reference=EUBANKS_2019,
    family="observer",
)
@dataclass(frozen=True)
class Observer(Rule):
    r"""Episodes from observer codes (3RS-style segment coding).

    Called as ``detect(codes, rule="observer", client=..., session=...,
    **params)``. The codes are one row per client x session x segment
    (``segment=`` names the segment column), or one row per session
    (``segment=None``), with one row per coder when several coders coded the
    same sessions (``coder=``): every coder's codes are labelled separately
    and every output table gets a ``coder`` column.

    Parameters
    ----------
    segment : str or None, default "segment"
        Column of the segment number within the session. None: each row is
        a session.
    segment_minutes : float, default 5.0
        Length of a segment in minutes (5 is usual for the 3RS); reported
        as the minutes coded per session (``minutes_coded``) and in the
        Methods paragraph, not used for the labels.
    coder : str or None, default None
        Column naming the coder of each row; None for one coder (or a
        consensus coding).
    withdrawal : str or list of str or None, default "withdrawal"
        Withdrawal marker column(s): one column already summed, or one
        column per marker subtype (denial, minimal response, ...), holding
        presence marks (0/1) or counts. The columns are added.
    confrontation : str or list of str or None, default "confrontation"
        Confrontation marker column(s), as for ``withdrawal``. At least one
        of the two is needed.
    resolution : str or list of str or None, default None
        Resolution strategy column(s) (presence or counts), added like the
        markers.
    significance : str or None, default None
        Column of a rupture significance rating (per segment or per
        session); the session's highest is used.
    resolved : str or None, default None
        Column of the session's global rating of how far its ruptures were
        resolved (one value per session).
    contribution : str or None, default None
        Column of the session's global rating of the therapist's contribution
        to the ruptures (reported, not used for labels).
    rating_low : float, default 1.0
        Lowest rating code (significance, resolved, contribution).
    rating_high : float, default 5.0
        Highest rating code; ratings outside ``rating_low``-``rating_high``
        are input errors.
    markers_at : float, default 1
        Rupture markers (withdrawal plus confrontation) a session needs for a
        rupture.
    significance_at : float or None, default None
        With a significance column: the session's highest significance
        rating must also reach this value (a rating code).
    resolved_at : float, default 4
        Resolution rating code from which the session's ruptures count as
        resolved within the session.
    resolved_by : {"auto", "rating", "strategies"}, default "auto"
        What resolves a rupture within a session: the resolution rating
        (``resolved`` >= ``resolved_at``), resolution strategies (at least
        one coded in the segment of the last rupture marker or later), or
        (``"auto"``) the rating where the session has one and the strategies
        otherwise.
    repair : {"resolved_or_absent", "resolved"}, default "resolved_or_absent"
        What repairs an open episode at a later session: a session whose
        rupture is resolved within it, or (default) also a coded session
        without a rupture.

    Notes
    -----
    For each coder and client, over the coded sessions (a session is coded
    when at least one segment has a marker cell filled in; see
    :mod:`alliance_ts.segments` for how segment rows make a session):

    1. With :math:`W` and :math:`C` the session's withdrawal and
       confrontation marker counts, the session *has a rupture* when
       :math:`W + C \ge` ``markers_at`` (and, with ``significance_at``, its
       highest significance rating reaches it). Its *type* is
       ``"withdrawal"`` (:math:`C = 0`), ``"confrontation"``
       (:math:`W = 0`) or ``"both"``.
    2. It is *resolved within the session* as ``resolved_by`` says.
    3. Episodes are built as for the PSQ (:mod:`alliance_ts.rules._reports`):
       a session with a rupture opens an episode outside one (repaired in
       the same session when resolved within it: ``start == end``); an open
       episode stays open while sessions have unresolved ruptures and is
       repaired at the first later session whose rupture is resolved or
       (default) that has no rupture; open at the last coded session, it is
       ``"unresolved"``. Sessions not coded are skipped: "not observed",
       never "no rupture".

    Episode columns: ``type`` (the kinds of marker seen during the episode),
    ``frequency`` (the highest markers per coded segment of its sessions),
    ``significance`` (the highest significance rating), ``resolved_within``;
    ``trough`` is the session with the most markers per segment.
    Score-based columns (``pre``, ``depth``, ``trough_score``) are missing.
    Session columns: ``score`` is the markers per coded segment
    (:math:`(W + C)/\text{segments}`), beside the session-level values
    ``withdrawal``, ``confrontation``, ``resolution``, ``resolution_late``
    (strategies at or after the last marked segment), ``segments``,
    ``significance``, ``resolved``, ``contribution`` (those configured).
    ``rupture`` says whether the session has a rupture (criterion 1),
    ``resolved_in_session`` whether it was resolved within the session
    (missing without a rupture) and ``minutes_coded`` the coded segments
    times ``segment_minutes``. Client columns add ``n_confrontation``
    and ``n_withdrawal`` (episodes with each kind of marker).

    **Provenance.** That the 3RS is an observer measure of withdrawal and
    confrontation ruptures, resolution strategies and ratings of therapist
    contribution and resolution, and its reliability and validity, are from
    the abstract of Eubanks et al. (2019). Coding in (5-minute) segments, the
    marker subtypes, significance ratings and the 1-5 rating anchors are
    recollections of the manual, not verified here: every one is a
    parameter or a column you name. The session criterion (one marker), the
    resolution criterion (rating 4 of 5, or a strategy coded in the segment
    of the last marker or later) and the construction of multi-session
    episodes are this library's choices; the 3RS itself codes single
    sessions.

    ``min_sessions`` of :func:`~alliance_ts.detect` (default 3) counts
    coded sessions: observer studies often code only a few (early)
    sessions per case, so pass ``min_sessions=1`` to label every coded
    client; clients with fewer are kept in ``clients`` with a ``reason``.

    References
    ----------
    Eubanks, C. F., Lubitz, J., Muran, J. C., & Safran, J. D. (2019).
    Rupture Resolution Rating System (3RS): Development and validation.
    *Psychotherapy Research* (volume and pages not checked here).

    Examples
    --------
    >>> import pandas as pd
    >>> import alliance_ts as at
    >>> codes = pd.DataFrame({"client": 1, "session": [1, 1, 2, 2, 3, 3, 4, 4],
    ...                       "segment": [1, 2] * 4,
    ...                       "withdrawal": [0, 0, 1, 2, 0, 1, 0, 0],
    ...                       "confrontation": [0, 0, 0, 0, 1, 0, 0, 0],
    ...                       "resolved": [None, None, 2, 2, 5, None, None, None]})
    >>> res = at.detect(codes, rule="observer", resolved="resolved")
    >>> res.episodes[["start", "end", "status", "type", "frequency", "resolved_within"]]
       start  end    status  type  frequency  resolved_within
    0      2    3  repaired  both        1.5            False
    """

    segment: str | None = column("segment", "column of the segment number within the session (None: rows are "
                                 "sessions)")
    segment_minutes: float = number(5.0, "length of a segment in minutes (reported as minutes_coded)", low=0,
                                    low_open=True)
    coder: str | None = column(None, "column naming the coder of each row (None: one coder)")
    withdrawal: str | tuple[str, ...] | None = columns("withdrawal", "withdrawal marker column(s), added (presence "
                                                       "0/1 or counts)")
    confrontation: str | tuple[str, ...] | None = columns("confrontation", "confrontation marker column(s), added")
    resolution: str | tuple[str, ...] | None = columns(None, "resolution strategy column(s), added")
    significance: str | None = column(None, "column of a rupture significance rating (highest of the session)")
    resolved: str | None = column(None, "column of the session's global resolution rating")
    contribution: str | None = column(None, "column of the session's global therapist-contribution rating "
                                      "(reported)")
    rating_low: float = number(1.0, "lowest rating code")
    rating_high: float = number(5.0, "highest rating code")
    markers_at: float = number(1.0, "rupture markers (withdrawal + confrontation) a session needs for a rupture",
                               low=0, low_open=True)
    significance_at: float | None = number(None, "highest significance rating a rupture session also needs "
                                           "(None: not used)", allow_none=True)
    resolved_at: float = number(4.0, "resolution rating from which a session's ruptures are resolved within it")
    resolved_by: str = choice("auto", "what resolves a rupture within a session",
                              ("auto", "rating", "strategies"))
    repair: str = choice("resolved_or_absent", "what repairs an open episode at a later session",
                         ("resolved_or_absent", "resolved"))

    trusted_output: ClassVar[bool] = True
    client_columns: ClassVar[dict[str, str]] = {"n_confrontation": "int64", "n_withdrawal": "int64"}
    session_columns: ClassVar[dict[str, str]] = {"rupture": "boolean", "resolved_in_session": "boolean",
                                                 "minutes_coded": "float64"}
    episode_columns: ClassVar[dict[str, Any]] = {
        "type": pd.CategoricalDtype(list(TYPES)),
        "frequency": "float64",
        "significance": "float64",
        "resolved_within": "bool",
    }

    def __post_init__(self) -> None:
        for name in ("withdrawal", "confrontation", "resolution"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def check(self) -> list[Problem]:
        problems = super().check()
        if self.withdrawal is None and self.confrontation is None:
            problems.append(Problem("parameters 'withdrawal', 'confrontation'",
                                    "name the marker columns of at least one of the two kinds of rupture"))
        bad_cols = [p for p in problems if p.where.startswith("parameter '") and p.where[11:-1] in (
            "segment", "coder", "withdrawal", "confrontation", "resolution", "significance", "resolved",
            "contribution")]
        if not bad_cols:
            named: list[str] = []
            for name in ("segment", "coder", "significance", "resolved", "contribution"):
                if getattr(self, name) is not None:
                    named.append(getattr(self, name))
            for name in ("withdrawal", "confrontation", "resolution"):
                named += list(_names(getattr(self, name)))
            twice = sorted({c for c in named if named.count(c) > 1})
            if twice:
                problems.append(Problem("parameters", "each role needs its own column; used for more than one: "
                                        + ", ".join(map(repr, twice))))
        ratings_ok = not any(p.where in ("parameter 'rating_low'", "parameter 'rating_high'") for p in problems)
        if ratings_ok:
            if not self.rating_low < self.rating_high:
                problems.append(Problem("parameters 'rating_low', 'rating_high'",
                                        f"need rating_low < rating_high, got {self.rating_low!r}, "
                                        f"{self.rating_high!r}"))
            else:
                if not any(p.where == "parameter 'resolved_at'" for p in problems):
                    check_number(problems, "resolved_at", self.resolved_at, low=self.rating_low,
                                 high=self.rating_high)
                if self.significance_at is not None and not any(
                        p.where == "parameter 'significance_at'" for p in problems):
                    check_number(problems, "significance_at", self.significance_at, low=self.rating_low,
                                 high=self.rating_high)
        if self.significance_at is not None and self.significance is None:
            problems.append(Problem("parameter 'significance_at'", "needs the significance column "
                                    "(significance=)"))
        if self.resolved_by == "rating" and self.resolved is None:
            problems.append(Problem("parameter 'resolved_by'", "'rating' needs the resolution rating column "
                                    "(resolved=)"))
        if self.resolved_by == "strategies" and self.resolution is None:
            problems.append(Problem("parameter 'resolved_by'", "'strategies' needs the resolution strategy "
                                    "column(s) (resolution=)"))
        return problems

    def segments_spec(self) -> Segments:
        """How the rule's segment rows make one row per session."""
        sums = [(name, _names(getattr(self, name))) for name in ("withdrawal", "confrontation", "resolution")
                if getattr(self, name) is not None]
        markers = tuple(name for name in ("withdrawal", "confrontation") if getattr(self, name) is not None)
        return Segments(
            column=self.segment,
            sums=tuple(sums),
            peaks=(("significance", self.significance),) if self.significance is not None else (),
            constants=tuple((name, getattr(self, name)) for name in ("resolved", "contribution")
                            if getattr(self, name) is not None),
            rating_range=(float(self.rating_low), float(self.rating_high)),
            markers=markers,
            late=("resolution_late", "resolution") if self.resolution is not None else None,
        )

    def reads(self) -> Reads:
        """The session-level values made from the segment rows, and the coder column."""
        spec = self.segments_spec()
        return Reads(
            items=tuple((name, name) for name in spec.names),
            group=self.coder,
            group_name="coder",
            item_range=None,
            unit="coded sessions",
            label="observer codes",
            uses_scale=False,
            segments=spec,
            hint="name the code columns with the rule's parameters (segment=, withdrawal=, confrontation=, "
                 "resolution=, significance=, resolved=, contribution=, coder=) and the id columns with client=, "
                 "session=",
        )

    def session_score(self, items: dict[str, np.ndarray]) -> np.ndarray:
        """Rupture markers per coded segment (NaN for sessions not coded)."""
        total = sum(np.nan_to_num(items[k]) for k in ("withdrawal", "confrontation") if k in items)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(total / items["segments"], dtype=float)

    def label(self, block: Block) -> BlockResult:
        items = block.items
        zero = np.zeros(block.x.shape)
        w = np.nan_to_num(items.get("withdrawal", zero))
        c = np.nan_to_num(items.get("confrontation", zero))
        with np.errstate(invalid="ignore"):
            rupture = (w + c) >= self.markers_at
            if self.significance_at is not None:
                rupture &= items["significance"] >= self.significance_at
            by_rating = items["resolved"] >= self.resolved_at if "resolved" in items else np.zeros_like(rupture)
            by_strategy = (items["resolution_late"] > 0 if "resolution_late" in items
                           else np.zeros_like(rupture))
        if self.resolved_by == "rating":
            resolved = by_rating
        elif self.resolved_by == "strategies":
            resolved = by_strategy
        else:
            rated = ~np.isnan(items["resolved"]) if "resolved" in items else np.zeros_like(rupture)
            resolved = np.where(rated, by_rating, by_strategy)
        frequency = np.where(rupture, block.x, np.nan)
        levels = {"frequency": frequency,
                  "significance": np.where(rupture, items.get("significance", np.full(zero.shape, np.nan)), np.nan)}
        ep = report_episodes(rupture & (c > 0), rupture & (w > 0), resolved & rupture, levels, block.n, self.repair)
        return typed_result(
            block, ep, {"frequency": ep["frequency"], "significance": ep["significance"]},
            session_extra={
                "rupture": np.where(block.valid, rupture, np.nan),
                "resolved_in_session": np.where(block.valid & rupture, resolved, np.nan),
                "minutes_coded": items["segments"] * self.segment_minutes,
            },
        )


register_preset(
    "observer_significant",
    Observer,
    dict(significance="significance", significance_at=3.0),
    summary="observer codes, counting only sessions whose highest rupture significance rating is 3+ of 5",
    reference=EUBANKS_2019,
)
