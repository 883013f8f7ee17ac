"""Episodes from sessions that report a rupture: the scan shared by the self-report and observer rules.

A session *reports* a rupture of one or both kinds (confrontation,
withdrawal) and may report it *resolved* by its end. Outside an episode a
reporting session opens one, repaired within that session when it is also
resolved; an open episode goes on while sessions report the rupture
unresolved and is repaired at the first later session that reports it
resolved or (``repair="resolved_or_absent"``) reports no rupture; it is
unresolved when still open at the last session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ...panel import Block
    from ._base import BlockResult

__all__ = ["TYPES", "report_episodes", "typed_result"]

#: The rupture types of a reported episode, in the order of their codes.
TYPES = ("confrontation", "withdrawal", "both")


def report_episodes(
    confrontation: np.ndarray,
    withdrawal: np.ndarray,
    resolved: np.ndarray,
    levels: dict[str, np.ndarray],
    n: np.ndarray,
    repair: str,
) -> dict[str, np.ndarray]:
    """The episode scan, vectorised over units (clients, or clients x rater).

    Parameters
    ----------
    confrontation, withdrawal : ndarray of bool (m, L)
        Whether each observed session reports a rupture of that kind.
    resolved : ndarray of bool (m, L)
        Whether it reports the rupture resolved by the end of the session.
    levels : dict of name -> ndarray (m, L)
        Per-session intensities; each episode gets the highest of each over
        its reporting sessions. The first one also places the ``trough`` (the
        session where it is highest, the first if tied).
    n : ndarray (m,)
        Observed sessions per unit (positions ``>= n`` are padding).
    repair : {"resolved_or_absent", "resolved"}

    Returns
    -------
    dict of ndarray (k,)
        ``row``, ``start``, ``trough``, ``end`` (-1 when unresolved; positions
        among the observed sessions), one entry per level (its highest
        value), and ``confrontation`` / ``withdrawal`` (whether the kind was
        reported during the episode), in no particular order.
    """
    m, length = n.size, int(n.max()) if n.size else 0
    reported = confrontation | withdrawal
    names = list(levels)
    open_ = np.zeros(m, dtype=bool)
    start = np.zeros(m, dtype=np.int64)
    trough = np.zeros(m, dtype=np.int64)
    top = {k: np.full(m, np.nan) for k in names}
    conf = np.zeros(m, dtype=bool)
    withd = np.zeros(m, dtype=bool)
    keys = ("row", "start", "trough", "end", "confrontation", "withdrawal", *names)
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}

    def record(mask: np.ndarray, end: np.ndarray | int) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            out["row"].append(idx)
            out["start"].append(start[idx])
            out["trough"].append(trough[idx])
            out["end"].append(np.broadcast_to(np.asarray(end, dtype=np.int64), idx.shape).copy())
            out["confrontation"].append(conf[idx])
            out["withdrawal"].append(withd[idx])
            for k in names:
                out[k].append(top[k][idx])

    for j in range(length):
        valid = j < n
        rep, done_now = reported[:, j] & valid, resolved[:, j] & valid
        was_open = open_.copy()
        # an open episode goes on, or is repaired at this session
        going = was_open & rep
        for i, k in enumerate(names):
            with np.errstate(invalid="ignore"):
                higher = going & (levels[k][:, j] > top[k])
            top[k] = np.where(higher, levels[k][:, j], top[k])
            if i == 0:
                trough = np.where(higher, j, trough)
        conf |= going & confrontation[:, j]
        withd |= going & withdrawal[:, j]
        closing = going & done_now
        if repair == "resolved_or_absent":
            closing |= was_open & valid & ~rep
        record(closing, j)
        open_ &= ~closing
        # a new episode opens at a reporting session outside an episode
        new = ~was_open & rep
        start = np.where(new, j, start)
        trough = np.where(new, j, trough)
        for k in names:
            top[k] = np.where(new, levels[k][:, j], top[k])
        conf = np.where(new, confrontation[:, j], conf)
        withd = np.where(new, withdrawal[:, j], withd)
        record(new & done_now, j)
        open_ |= new & ~done_now
    record(open_, -1)
    empty = {"confrontation": bool, "withdrawal": bool, **{k: float for k in names}}
    return {k: (np.concatenate(v) if v else np.zeros(0, dtype=empty.get(k, np.int64))) for k, v in out.items()}


def typed_result(block: Block, ep: dict[str, np.ndarray], extra: dict[str, Any],
                 session_extra: dict[str, np.ndarray] | None = None) -> BlockResult:
    """The block result of a :func:`report_episodes` scan: each episode's type and within-session repair.

    ``extra`` holds the rule's other episode columns. Clients get
    ``n_confrontation`` and ``n_withdrawal`` (episodes with each kind).
    """
    from ._base import BlockResult

    m = block.n.size
    code = np.where(ep["confrontation"] & ep["withdrawal"], 2, np.where(ep["withdrawal"], 1, 0))
    return BlockResult(
        clients=block.clients,
        ep_row=ep["row"],
        ep_start=ep["start"],
        ep_trough=ep["trough"],
        ep_end=ep["end"],
        ep_pre=np.full(ep["row"].size, np.nan),
        ep_extra={
            "type": np.asarray(TYPES, dtype=object)[code],
            **extra,
            "resolved_within": (ep["end"] >= 0) & (ep["end"] == ep["start"]),
        },
        client_extra={
            "n_confrontation": np.bincount(ep["row"][ep["confrontation"]], minlength=m).astype(float),
            "n_withdrawal": np.bincount(ep["row"][ep["withdrawal"]], minlength=m).astype(float),
        },
        session_extra=session_extra or {},
    )
