"""Convergence of the ways of seeing a rupture: observers, patients, therapists and score rules.

The meta-analysis this library serves names three ways of finding ruptures
-- asking patient and therapist after the session (the PSQ), tracking
fluctuations in alliance scores, and observing sessions (the 3RS) -- and
notes that what patients and therapists say does not closely agree with
observers' ratings (Eubanks, Muran & Safran, 2018). :func:`convergence`
puts any set of results on the same clients side by side;
:func:`carry_type` gives score-based episodes the rupture type that an
observer or self-report reports for the same sessions.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._lazy import stats
from .effects import fisher_ci
from .errors import InvalidInputError, Problem
from .result import Detection, group_column, one_course_problem

__all__ = ["Convergence", "carry_type", "convergence"]

WHERE = "alliance_ts.convergence()"
PAIR_COLUMNS = ["a", "b", "level", "n", "kappa", "kappa_low", "kappa_high", "percent", "r", "r_low", "r_high",
                "n_only_a", "n_only_b"]


@dataclass(frozen=True, eq=False)
class Convergence:
    """Pairwise agreement of several labelings of the same clients.

    Attributes
    ----------
    pairs : pandas.DataFrame
        One row per pair of sources and level (``"session"``, ``"client"``):
        ``a``, ``b``, ``level``, ``n`` (units in both), ``kappa`` with its
        95% interval ``kappa_low``/``kappa_high``, ``percent`` (share of units
        with the same label), the correlation ``r`` of the continuous index
        with its 95% Fisher-z interval ``r_low``/``r_high``, and ``n_only_a``
        / ``n_only_b`` (units in one source only, not compared).
    sources : tuple of str
        The sources' names, in order (a result with raters or coders gives
        one source per rater or coder: ``"psq (patient)"``).
    units : dict of str -> pandas.DataFrame
        Per level, every source's units: ``client`` (and ``session``),
        ``source``, ``rupture`` (bool) and ``index``.
    """

    pairs: pd.DataFrame
    sources: tuple[str, ...]
    units: dict[str, pd.DataFrame]

    def __repr__(self) -> str:
        return f"<Convergence of {len(self.sources)} sources: {', '.join(self.sources)}>"

    def matrix(self, level: str = "session", stat: str = "kappa") -> pd.DataFrame:
        """The pairwise ``stat`` (``"kappa"``, ``"percent"``, ``"r"``, ``"n"``) as a symmetric table."""
        if level not in ("session", "client") or stat not in ("kappa", "percent", "r", "n"):
            raise InvalidInputError([Problem("parameters 'level', 'stat'", "level is 'session' or 'client'; stat "
                                             f"one of 'kappa', 'percent', 'r', 'n'; got {level!r}, {stat!r}")],
                                    "Convergence.matrix()")
        out = pd.DataFrame(np.nan, index=list(self.sources), columns=list(self.sources))
        rows = self.pairs[self.pairs["level"] == level]
        for a, b, v in zip(rows["a"], rows["b"], rows[stat]):
            out.loc[a, b] = out.loc[b, a] = v
        if stat in ("kappa", "percent", "r"):
            for s in self.sources:
                out.loc[s, s] = 1.0
        return out

    def plot(self, stat: str = "kappa", ax: Any = None) -> Any:
        """Heat maps of ``stat`` at session and client level, values written in the cells; returns the figure."""
        from .plot import _pyplot

        plt = _pyplot()
        levels = [lv for lv in ("session", "client") if (self.pairs["level"] == lv).any()]
        if ax is None:
            k = len(self.sources)
            fig, axes = plt.subplots(1, len(levels), figsize=(2.4 + 1.2 * k * len(levels), 1.6 + 0.8 * k),
                                     squeeze=False, layout="constrained")
            axes = list(axes[0])
        else:
            axes, fig = [ax], ax.figure
            levels = levels[:1]
        for i_axis, (axis, level) in enumerate(zip(axes, levels)):
            m = self.matrix(level, stat).astype(float)
            values = m.to_numpy()
            shown = m.to_numpy(dtype=float).copy()
            np.fill_diagonal(shown, np.nan)  # a source with itself: left blank
            cmap = plt.get_cmap("RdBu" if stat in ("kappa", "r") else "Blues").with_extremes(bad="#eeeeee")
            image = axis.imshow(shown, vmin=-1 if stat in ("kappa", "r") else 0, vmax=1, cmap=cmap)
            axis.set_xticks(range(len(m)), m.columns, rotation=35, ha="right")
            axis.set_yticks(range(len(m)), m.index if i_axis == 0 else [""] * len(m))
            for i in range(len(m)):
                for j in range(len(m)):
                    v = float(values[i, j])
                    if i != j and np.isfinite(v):
                        axis.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9,
                                  color="white" if abs(v) > 0.6 else "black")
            axis.set_title(f"{level} level: {stat}")
        fig.colorbar(image, ax=axes, shrink=0.8)
        return fig


def convergence(
    results: Mapping[str, Detection] | Sequence[Detection],
    *,
    levels: Sequence[str] = ("session", "client"),
    level: float = 0.95,
) -> Convergence:
    """Pairwise agreement of observer, self-report and score-based results on the same clients.

    Parameters
    ----------
    results : mapping of name -> Detection, or list of Detection
        The labelings to compare, e.g. ``{"observer": obs, "psq":
        psq, "scores": res}`` (a list uses the rule names). A result
        with several raters or coders becomes one source per rater or coder.
    levels : sequence of {"session", "client"}
        Which levels to compare.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    Convergence

    Notes
    -----
    **Units.** At session level a unit is a client's session that *both*
    sources observed (an observer coded it, a questionnaire was answered, a
    score was given) of a client both analysed (``min_sessions``); at client
    level a client both analysed.

    **Labels.** A session is a *rupture session* for the observer rule when
    it meets the rule's session criterion (``sessions["rupture"]``); for
    every other rule when it lies within a rupture: from an episode's start
    up to the session before its repair (the start itself when repaired
    within the session), or to the last session when unresolved. A client
    has a rupture when it has at least one episode. Kappa is Cohen's with
    its asymptotic interval (the standard error of statsmodels' ``cohens_kappa``); NaN when
    both sources give one label to every unit.

    **Continuous indices.** Session level: the observer's markers per coded
    segment, the higher of the PSQ's rupture and withdrawal answers, and for score rules the drop
    below the client's mean in units of the client's SD,
    :math:`-(x_t - \\bar x)/s`. Client level: the number of episodes. ``r``
    is Pearson's correlation over the units with Fisher-z intervals;
    sessions of the same client are not independent, so read session-level
    intervals as too narrow.

    References
    ----------
    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture
    repair: A meta-analysis. *Psychotherapy*, 55(4), 508-519.

    Examples
    --------
    >>> import alliance_ts as at
    >>> sim = at.simulate(100, rng=5, psq=True, observer=True)
    >>> conv = at.convergence({
    ...     "observer": at.detect(sim.observer, rule="observer_significant", coder="coder").for_coder("A"),
    ...     "psq": at.detect(sim.psq, rule="psq", rater="rater"),
    ...     "scores": at.detect(sim.scores, scale="wai-sr")})
    >>> conv.sources
    ('observer', 'psq (patient)', 'psq (therapist)', 'scores')
    >>> conv.pairs[["a", "b", "level", "n"]].head(2)
              a              b    level     n
    0  observer  psq (patient)  session  1434
    1  observer  psq (patient)   client   100
    """
    problems: list[Problem] = []
    if isinstance(results, Mapping):
        named = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        named = [(getattr(v, "rule", f"result {i}"), v) for i, v in enumerate(results)]
    else:
        raise InvalidInputError([Problem("parameter 'results'", "give a dict of name -> Detection or a list of "
                                         f"Detection, got {type(results).__name__}")], WHERE)
    bad = [name for name, v in named if not isinstance(v, Detection)]
    if bad:
        problems.append(Problem("parameter 'results'", f"not Detection results: {bad!r}"))
    wrong = [lv for lv in levels if lv not in ("session", "client")]
    if wrong or not levels:
        problems.append(Problem("parameter 'levels'", f"must name 'session' and/or 'client', got {list(levels)!r}"))
    if not 0 < level < 1:
        problems.append(Problem("parameter 'level'", f"must be between 0 and 1, got {level!r}"))
    if problems:
        raise InvalidInputError(problems, WHERE)
    sources = _split(named)
    counts = pd.Series([s for s, _ in sources]).value_counts()
    if (counts > 1).any():
        raise InvalidInputError([Problem("parameter 'results'", "two sources have the same name: "
                                         + ", ".join(map(repr, counts[counts > 1].index)) + "; name them in a dict")],
                                WHERE)
    if len(sources) < 2:
        raise InvalidInputError([Problem("parameter 'results'", "needs at least two sources to compare")], WHERE)
    kinds = {name: _id_kind(res.clients["client"]) for name, res in sources}
    if len(set(kinds.values())) > 1:
        shown = "; ".join(f"{name}: {kind}" for name, kind in kinds.items())
        raise InvalidInputError([Problem("parameter 'results'", f"client ids are of different types ({shown}; e.g. "
                                         "7 vs '7'): label every source from tables with the same id type")], WHERE)
    units = {lv: pd.concat([_units(res, lv).assign(source=name) for name, res in sources], ignore_index=True)
             for lv in levels}
    rows = []
    for (na, _), (nb, _) in itertools.combinations(sources, 2):
        for lv in levels:
            rows.append(_pair(units[lv], na, nb, lv, level))
    names = tuple(name for name, _ in sources)
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    if pairs["n"].sum() == 0:
        raise InvalidInputError([Problem("parameter 'results'", "no source shares a client (and session) with "
                                         "another; compare results of the same clients, with ids of the same type")],
                                WHERE)
    return Convergence(pairs, names, units)


def _split(named: list[tuple[str, Detection]]) -> list[tuple[str, Detection]]:
    out = []
    for name, res in named:
        key = group_column(res.clients)
        if key is None:
            out.append((name, res))
            continue
        for g in pd.unique(res.clients[key]):
            out.append((f"{name} ({g})", res.for_rater(g)))
    return out


def _id_kind(ids: pd.Series) -> str:
    return "numbers" if pd.api.types.is_numeric_dtype(ids) else "text"


def _kind(res: Detection) -> str:
    """``"observer"``, ``"reports"`` (questionnaire answers) or ``"scores"``: what the result's rule read."""
    from .errors import UnknownRuleError
    from .rules import get_rule

    try:
        spec = get_rule(res.rule)
        reads = spec.cls(**spec.defaults).reads()
    except (UnknownRuleError, TypeError):  # a rule no longer registered, or one with required parameters
        return "observer" if "segments" in res.sessions.columns else "scores"
    if reads.segments is not None:
        return "observer"
    return "scores" if reads.scores else "reports"


def _rupture_sessions(res: Detection) -> np.ndarray:
    """Whether each session row lies within a rupture (start to the session before the repair)."""
    s = res.sessions
    label = s["label"].astype(str).to_numpy()
    inside = (label == "rupture") | (label == "unresolved")
    e = res.episodes
    starts = e[["client", "start"]].rename(columns={"start": "session"}).drop_duplicates().assign(_start=True)
    is_start = s[["client", "session"]].merge(starts, on=["client", "session"], how="left")["_start"].notna()
    return np.asarray(inside | is_start.to_numpy())


def _units(res: Detection, level: str) -> pd.DataFrame:
    kind = _kind(res)
    if level == "client":
        c = res.clients[res.clients["included"].astype(bool)]
        n = c["n_ruptures"].to_numpy(dtype=float)
        return pd.DataFrame({"client": c["client"].to_numpy(), "rupture": n > 0, "index": n})
    s = res.sessions
    analysed = s["client"].isin(res.clients.loc[res.clients["included"].astype(bool), "client"]).to_numpy()
    seen = s["score"].notna().to_numpy() & analysed  # sessions of clients the rule did not analyse have no labels
    if kind == "observer":
        rupture = s["rupture"].fillna(False).astype(bool).to_numpy()
        index = s["score"].to_numpy(dtype=float)
    elif kind == "reports":
        rupture = _rupture_sessions(res)
        index = s["score"].to_numpy(dtype=float)
    else:
        rupture = _rupture_sessions(res)
        x = s["score"].astype(float)
        g = x.groupby(s["client"].to_numpy(), sort=False)
        mean, sd = g.transform("mean"), g.transform("std")
        with np.errstate(invalid="ignore", divide="ignore"):
            index = (-(x - mean) / sd).to_numpy(dtype=float)
    out = pd.DataFrame({"client": s["client"].to_numpy(), "session": s["session"].to_numpy(),
                        "rupture": rupture, "index": index})
    return out[seen].reset_index(drop=True)


def _pair(units: pd.DataFrame, a: str, b: str, level: str, conf: float) -> dict[str, Any]:
    from statsmodels.stats.inter_rater import cohens_kappa

    keys = ["client", "session"] if level == "session" else ["client"]
    ua, ub = units[units["source"] == a], units[units["source"] == b]
    merged = ua.merge(ub, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    n = len(both)
    row: dict[str, Any] = {"a": a, "b": b, "level": level, "n": n,
                           "n_only_a": int((merged["_merge"] == "left_only").sum()),
                           "n_only_b": int((merged["_merge"] == "right_only").sum())}
    x, y = both["rupture_a"].astype(bool).to_numpy(), both["rupture_b"].astype(bool).to_numpy()
    table = np.array([[np.sum(~x & ~y), np.sum(~x & y)], [np.sum(x & ~y), np.sum(x & y)]], dtype=float)
    row["percent"] = float((table[0, 0] + table[1, 1]) / n) if n else np.nan
    kappa = low = high = np.nan
    if n and (table.sum(axis=0) > 0).sum() + (table.sum(axis=1) > 0).sum() > 2:
        with np.errstate(invalid="ignore"):  # perfect agreement: a variance of -0.0 in floating point
            k = cohens_kappa(table, return_results=True)
        std = float(np.sqrt(max(float(k.var_kappa), 0.0)))
        half = float(stats.norm.ppf(0.5 + conf / 2)) * std  # statsmodels' standard error, at any level
        kappa = float(k.kappa)
        low, high = kappa - half, kappa + half
    row.update(kappa=kappa, kappa_low=low, kappa_high=high)
    ia, ib = both["index_a"].to_numpy(dtype=float), both["index_b"].to_numpy(dtype=float)
    ok = np.isfinite(ia) & np.isfinite(ib)
    r = np.nan
    if ok.sum() > 3 and np.ptp(ia[ok]) > 0 and np.ptp(ib[ok]) > 0:
        r = float(np.corrcoef(ia[ok], ib[ok])[0, 1])
    lo, hi = fisher_ci(r, int(ok.sum()), conf)
    row.update(r=r, r_low=lo, r_high=hi)
    return row


def carry_type(result: Detection, typed: Detection, *, margin: int = 1) -> pd.DataFrame:
    """Score-based episodes with the rupture type an observer or self-report gives the same sessions.

    Parameters
    ----------
    result : Detection
        A labeling without types (a score rule).
    typed : Detection
        A labeling whose episodes have a ``type`` (``observer``, ``psq``) of
        one coder or rater (use ``for_coder()`` / ``for_rater()``).
    margin : int, default 1
        Sessions of slack on either side: a score drop often shows in the
        session after the one where the rupture was observed or reported.

    Returns
    -------
    pandas.DataFrame
        ``result.episodes`` plus ``type`` (``"confrontation"``,
        ``"withdrawal"``, ``"both"``, or missing when no typed episode
        overlaps) and ``n_typed`` (typed episodes overlapping it). An
        episode spans its start to its end (to the client's last session
        when unresolved); a typed episode overlaps when its span shares a
        session number with the score episode's span widened by ``margin``
        sessions on each side.

    Examples
    --------
    >>> import alliance_ts as at
    >>> sim = at.simulate(100, rng=5, observer=True)
    >>> obs = at.detect(sim.observer, rule="observer_significant", coder="coder").for_coder("A")
    >>> rec = at.detect(sim.scores, scale="wai-sr")
    >>> at.carry_type(rec, obs)["type"].value_counts(dropna=False).to_dict()
    {'withdrawal': 14, 'both': 12, 'confrontation': 10, nan: 2}
    """
    problems: list[Problem] = []
    for name, res in (("result", result), ("typed", typed)):
        if not isinstance(res, Detection):
            problems.append(Problem(f"parameter {name!r}", f"expected a Detection, got {type(res).__name__}"))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.carry_type()")
    if "type" not in typed.episodes.columns:
        problems.append(Problem("parameter 'typed'", f"rule {typed.rule!r} gives no rupture types; use the observer "
                                "or psq rule"))
    for name, res in (("result", result), ("typed", typed)):
        several = one_course_problem(res, name)
        if several is not None:
            problems.append(several)
    kinds = [_id_kind(res.clients["client"]) for res in (result, typed)]
    if kinds[0] != kinds[1]:
        problems.append(Problem("parameters 'result', 'typed'", f"client ids are {kinds[0]} in result and {kinds[1]} "
                                "in typed (e.g. 7 vs '7'): label both from tables with the same id type"))
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        problems.append(Problem("parameter 'margin'", f"must be a whole number >= 0, got {margin!r}"))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.carry_type()")
    ep = result.episodes.reset_index(drop=True)
    last = result.sessions.groupby("client")["session"].max()
    typed_ep = typed.episodes
    t_last = typed.sessions.groupby("client")["session"].max()
    a = pd.DataFrame({"row": np.arange(len(ep)), "client": ep["client"].to_numpy(),
                      "lo": ep["start"].to_numpy(dtype=float) - margin,
                      "hi": ep["end"].astype("Float64").fillna(ep["client"].map(last).astype(float))
                      .to_numpy(dtype=float) + margin})
    b = pd.DataFrame({"client": typed_ep["client"].to_numpy(), "t_lo": typed_ep["start"].to_numpy(dtype=float),
                      "t_hi": typed_ep["end"].astype("Float64").fillna(typed_ep["client"].map(t_last).astype(float))
                      .to_numpy(dtype=float), "type": typed_ep["type"].astype(str).to_numpy()})
    pairs = a.merge(b, on="client")
    hit = pairs[(pairs["lo"] <= pairs["t_hi"]) & (pairs["t_lo"] <= pairs["hi"])]
    conf = hit["type"].isin(["confrontation", "both"]).groupby(hit["row"]).any()
    withd = hit["type"].isin(["withdrawal", "both"]).groupby(hit["row"]).any()
    n_typed = hit.groupby("row").size()
    c = conf.reindex(range(len(ep)), fill_value=False).to_numpy()
    w = withd.reindex(range(len(ep)), fill_value=False).to_numpy()
    kind = pd.Series(np.select([c & w, c, w], ["both", "confrontation", "withdrawal"], default=""))
    out = ep.copy()
    out["type"] = pd.Categorical(kind.mask(kind == ""), categories=["confrontation", "withdrawal", "both"])
    out["n_typed"] = n_typed.reindex(range(len(ep)), fill_value=0).to_numpy().astype(np.int64)
    return out
