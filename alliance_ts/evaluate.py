"""Compare detected episodes with a known truth (simulated or hand-coded)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._lazy import metrics, optimize
from .errors import InvalidInputError, Problem
from .result import PATTERNS, Detection, one_course_problem
from .simulate import Simulation
from .validation import check_number

__all__ = ["Evaluation", "evaluate"]

_METRICS = (
    "precision", "recall", "f1", "status_accuracy", "kappa", "false_alarm_rate",
    "start_error", "repair_error", "n_true", "n_detected", "n_matched",
    "n_clients", "n_clients_without_truth",
)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Agreement between detected and true episodes.

    Read a metric as ``m["f1"]`` or ``m.f1``; :meth:`to_series` gives them all.

    Attributes
    ----------
    precision, recall, f1 : float
        Episode-level, after one-to-one matching (see :func:`evaluate`).
    status_accuracy : float
        Share of matched pairs whose status (repaired / unresolved) agrees;
        NaN without matches.
    kappa : float
        Cohen's kappa of the client-level patterns (no_rupture, repaired,
        unresolved, mixed).
    false_alarm_rate : float
        Share of clients without a true episode that get at least one
        detected episode; NaN when every client has a true episode.
    start_error : float
        Mean absolute start difference (sessions) of matched pairs.
    repair_error : float
        Mean absolute difference of ``end`` (sessions) over matched pairs
        that are repaired in both; NaN if there are none.
    n_true, n_detected, n_matched : int
        Episode counts.
    n_clients, n_clients_without_truth : int
        Clients evaluated, and those without a true episode.
    confusion : pandas.DataFrame
        Client patterns, truth in rows, detection in columns.
    matches : pandas.DataFrame
        The matched pairs: ``client``, ``true_start``, ``detected_start``,
        ``true_end``, ``detected_end``, ``true_status``, ``detected_status``.
    """

    precision: float
    recall: float
    f1: float
    status_accuracy: float
    kappa: float
    false_alarm_rate: float
    start_error: float
    repair_error: float
    n_true: int
    n_detected: int
    n_matched: int
    n_clients: int
    n_clients_without_truth: int
    confusion: pd.DataFrame = field(repr=False)
    matches: pd.DataFrame = field(repr=False)

    def __getitem__(self, name: str) -> Any:
        if name not in _METRICS and name not in ("confusion", "matches"):
            raise KeyError(f"{name!r} is not a metric; metrics: {', '.join(_METRICS)}")
        return getattr(self, name)

    def to_series(self) -> pd.Series:
        """Every scalar metric as a Series."""
        d = asdict(self)
        return pd.Series({k: d[k] for k in _METRICS}, dtype=object)


def evaluate(
    detected: Detection | pd.DataFrame,
    truth: Simulation | pd.DataFrame,
    *,
    margin: int = 1,
    clients: Iterable[Any] | None = None,
) -> Evaluation:
    """Score detected episodes against the truth.

    Parameters
    ----------
    detected : Detection or pandas.DataFrame
        A :func:`~alliance_ts.detect` result, or an episodes table with
        columns ``client``, ``start``, ``end`` and ``status``.
    truth : Simulation or pandas.DataFrame
        A :func:`~alliance_ts.simulate` result, or a table with the same
        columns as ``detected``.
    margin : int, default 1
        A detected and a true episode of the same client can match when
        their starts differ by at most ``margin`` sessions.
    clients : iterable, optional
        All client ids to evaluate (needed for the false-alarm rate and the
        pattern table). Default: the clients of the Simulation, else of the
        Detection, else every client named in either table.

    Returns
    -------
    Evaluation

    Notes
    -----
    **Matching.** Within each client, detected and true episodes are paired
    one-to-one by an optimal assignment (Hungarian algorithm,
    :func:`scipy.optimize.linear_sum_assignment`) that first maximises the
    number of pairs whose starts are within ``margin`` sessions and then
    minimises the total start difference; a greedy nearest-first pairing can
    find fewer pairs. Unpaired detections are false positives, unpaired true
    episodes false negatives.

    **Empty sets.** ``f1 = 2 * n_matched / (n_true + n_detected)``, which is
    1 when both are empty; precision is 1 when nothing was detected and
    recall is 1 when nothing was true (no error of that kind was possible).
    ``status_accuracy``, ``start_error`` and ``repair_error`` are NaN
    without matched pairs, ``false_alarm_rate`` is NaN when every client has
    a true episode, and ``kappa`` is 1 when both sides put every client in
    the same single pattern (agreement is perfect but Cohen's formula is
    0/0).

    Clients that the rule could not analyse (``included=False``) count as
    having no detected episode.

    Examples
    --------
    >>> import pandas as pd, alliance_ts as at
    >>> truth = pd.DataFrame({"client": [1, 1], "start": [3, 9], "end": [4, pd.NA],
    ...                       "status": ["repaired", "unresolved"]})
    >>> found = pd.DataFrame({"client": [1, 1], "start": [4, 6], "end": [5, 7],
    ...                       "status": ["repaired", "repaired"]})
    >>> m = at.evaluate(found, truth, margin=1)
    >>> m.precision, m.recall, m.f1
    (0.5, 0.5, 0.5)
    """
    problems: list[Problem] = []
    check_number(problems, "margin", margin, low=0, integer=True)
    det_eps, det_clients = _episodes_of(detected, "detected", problems)
    true_eps, true_clients = _episodes_of(truth, "truth", problems)
    if problems:
        raise InvalidInputError(problems, "alliance_ts.evaluate()")

    if clients is not None:
        universe = list(clients)
    elif true_clients is not None:
        universe = list(true_clients)
    elif det_clients is not None:
        universe = list(det_clients)
    else:
        universe = list(pd.unique(pd.concat([det_eps["client"], true_eps["client"]], ignore_index=True)))

    det_groups = {c: g for c, g in det_eps.groupby("client", sort=False)}
    true_groups = {c: g for c, g in true_eps.groupby("client", sort=False)}
    pairs = []
    for c in set(det_groups) & set(true_groups):
        d, t = det_groups[c], true_groups[c]
        ds, ts = d["start"].to_numpy(dtype=float), t["start"].to_numpy(dtype=float)
        diff = np.abs(ds[:, None] - ts[None, :])
        allowed = diff <= margin
        if not allowed.any():
            continue
        # maximise the number of allowed pairs first, then minimise the distance
        big = float(diff.size * (margin + 1) + 1)
        cost = np.where(allowed, diff - big, 0.0)
        rows, cols = optimize.linear_sum_assignment(cost)
        for r, k in zip(rows, cols):
            if allowed[r, k]:
                pairs.append((c, t.iloc[k], d.iloc[r]))
    matches = pd.DataFrame(
        [
            {
                "client": c,
                "true_start": tr["start"], "detected_start": dr["start"],
                "true_end": tr["end"], "detected_end": dr["end"],
                "true_status": tr["status"], "detected_status": dr["status"],
            }
            for c, tr, dr in pairs
        ],
        columns=["client", "true_start", "detected_start", "true_end", "detected_end", "true_status",
                 "detected_status"],
    )
    n_true, n_det, n_match = len(true_eps), len(det_eps), len(matches)
    precision = n_match / n_det if n_det else 1.0
    recall = n_match / n_true if n_true else 1.0
    f1 = 2 * n_match / (n_true + n_det) if (n_true + n_det) else 1.0
    if n_match:
        status_acc = float((matches["true_status"] == matches["detected_status"]).mean())
        start_err = float((matches["true_start"] - matches["detected_start"]).abs().mean())
        both = (matches["true_status"] == "repaired") & (matches["detected_status"] == "repaired")
        repair_err = (
            float((matches.loc[both, "true_end"].astype(float)
                   - matches.loc[both, "detected_end"].astype(float)).abs().mean())
            if both.any() else float("nan")
        )
    else:
        status_acc = start_err = repair_err = float("nan")

    true_pat = _patterns(true_eps, universe)
    det_pat = _patterns(det_eps, universe)
    labels = list(PATTERNS)
    cm = metrics.confusion_matrix(true_pat, det_pat, labels=labels)
    confusion = pd.DataFrame(cm, index=pd.Index(labels, name="truth"), columns=pd.Index(labels, name="detected"))
    if len(universe) == 0:
        kappa = float("nan")
    elif len(set(true_pat) | set(det_pat)) == 1:
        kappa = 1.0
    else:
        kappa = float(metrics.cohen_kappa_score(true_pat, det_pat, labels=labels))
    no_truth = true_pat == "no_rupture"
    n_clean = int(no_truth.sum())
    false_alarm = float((det_pat[no_truth] != "no_rupture").mean()) if n_clean else float("nan")
    return Evaluation(
        precision=float(precision), recall=float(recall), f1=float(f1),
        status_accuracy=status_acc, kappa=kappa, false_alarm_rate=false_alarm,
        start_error=start_err, repair_error=repair_err,
        n_true=n_true, n_detected=n_det, n_matched=n_match,
        n_clients=len(universe), n_clients_without_truth=n_clean,
        confusion=confusion, matches=matches,
    )


def _episodes_of(obj, name, problems):
    """(episodes with client/start/end/status, client universe or None)."""
    if isinstance(obj, Detection):
        several = one_course_problem(obj, name)
        if several is not None:
            problems.append(several)
            return None, None
        return obj.episodes[["client", "start", "end", "status"]].astype({"status": object}), obj.clients["client"]
    if isinstance(obj, Simulation):
        return obj.truth[["client", "start", "end", "status"]], obj.clients["client"]
    if isinstance(obj, pd.DataFrame):
        missing = [c for c in ("client", "start", "end", "status") if c not in obj.columns]
        if missing:
            problems.append(Problem(name, f"missing column(s) {missing}; need client, start, end, status"))
            return None, None
        bad = ~obj["status"].isin(["repaired", "unresolved"])
        if bad.any():
            problems.append(Problem(f"{name} column 'status'",
                                    f"{int(bad.sum())} value(s) other than 'repaired'/'unresolved'"))
        return obj[["client", "start", "end", "status"]].astype({"status": object}), None
    problems.append(Problem(name, f"expected a Detection, a Simulation or a DataFrame, got {type(obj).__name__}"))
    return None, None


def _patterns(eps: pd.DataFrame, universe: list) -> np.ndarray:
    """Client-level pattern of each client in ``universe``."""
    repaired = (eps["status"] == "repaired").groupby(eps["client"]).agg(["sum", "size"])
    idx = pd.Index(universe)
    rep = repaired["sum"].reindex(idx, fill_value=0).to_numpy()
    tot = repaired["size"].reindex(idx, fill_value=0).to_numpy()
    unr = tot - rep
    return np.where(
        tot == 0, "no_rupture", np.where((rep > 0) & (unr > 0), "mixed", np.where(rep > 0, "repaired", "unresolved"))
    ).astype(object)
