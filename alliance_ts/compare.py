"""Agreement between two labelings: rule vs rule, rater vs rater, rule vs self-report.

:func:`agreement` compares two :class:`~alliance_ts.Detection` results of the
same clients, session by session or client by client, with Cohen's kappa,
the percent agreement and the confusion table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._lazy import metrics
from .errors import InvalidInputError, Problem
from .result import LABELS, PATTERNS, Detection

__all__ = ["Agreement", "agreement"]

#: What can be compared at each level, and the categories of each.
WHAT = {
    "session": {
        "episode": ("no", "yes"),  # the session lies inside an episode (label other than "none")
        "start": ("no", "yes"),  # an episode starts at the session
        "label": LABELS,
    },
    "client": {
        "pattern": PATTERNS,
        "any": ("no", "yes"),  # the client has at least one episode
    },
}
DEFAULT_WHAT = {"session": "episode", "client": "pattern"}


@dataclass(frozen=True, eq=False)
class Agreement:
    """Agreement between two labelings.

    Attributes
    ----------
    kappa : float
        Cohen's kappa, :math:`(p_o - p_e) / (1 - p_e)`; NaN when chance
        agreement is already perfect (both labelings constant and equal).
    percent : float
        Share of units with the same category (0-1).
    n : int
        Units compared (present, and analysed, in both labelings).
    confusion : pandas.DataFrame
        Counts: rows the first labeling's categories, columns the second's.
    units : pandas.DataFrame
        One row per compared unit: its keys and both categories (``a``,
        ``b``).
    level, what : str
        What was compared.
    names : (str, str)
        Names of the two labelings (rule names or raters).
    n_only_a, n_only_b : int
        Units present or analysed in only one labeling (not compared).
    """

    kappa: float
    percent: float
    n: int
    confusion: pd.DataFrame
    units: pd.DataFrame
    level: str
    what: str
    names: tuple[str, str]
    n_only_a: int
    n_only_b: int

    def __repr__(self) -> str:
        return (
            f"<Agreement {self.names[0]} vs {self.names[1]} ({self.level} {self.what}): "
            f"kappa {self.kappa:.3f}, {self.percent:.1%} agree, n = {self.n}>"
        )

    def to_frame(self) -> pd.DataFrame:
        """The numbers as a one-row DataFrame (to collect several comparisons)."""
        return pd.DataFrame([{
            "a": self.names[0], "b": self.names[1], "level": self.level, "what": self.what,
            "n": self.n, "kappa": self.kappa, "percent": self.percent,
            "n_only_a": self.n_only_a, "n_only_b": self.n_only_b,
        }])


def agreement(
    a: Detection,
    b: Detection | None = None,
    *,
    level: str = "session",
    what: str | None = None,
    raters: tuple[Any, Any] | None = None,
) -> Agreement:
    """Agreement between two labelings of the same clients.

    Parameters
    ----------
    a, b : Detection
        Two results on the same data (two rules, or a rule and the PSQ).
        With ``b=None``, ``a`` must have a ``rater`` column (the ``psq`` rule
        with ``rater=``) and its two raters are compared.
    level : {"session", "client"}
        Compare sessions (keys: client, session, and rater when both results
        have one and ``b`` is given) or clients.
    what : str, optional
        At session level ``"episode"`` (default: the session lies inside an
        episode, i.e. its label is not ``"none"``), ``"start"`` (an episode
        starts at the session) or ``"label"`` (the four labels); at client
        level ``"pattern"`` (default: the four patterns) or ``"any"`` (at
        least one episode).
    raters : (rater, rater), optional
        With ``b=None``: the two raters to compare (default: the only two).

    Returns
    -------
    Agreement

    Notes
    -----
    Only units present in both results are compared, and at client level
    only clients analysed by both (``included``); the others are counted in
    ``n_only_a`` / ``n_only_b``; two labelings without a unit in common
    are an error (usually different clients, or ids of different types).
    Kappa is computed by
    :func:`sklearn.metrics.cohen_kappa_score` over every category of
    ``what`` (Cohen, 1960).

    References
    ----------
    Cohen, J. (1960). A coefficient of agreement for nominal scales.
    *Educational and Psychological Measurement*, 20(1), 37-46.

    Examples
    --------
    >>> import alliance_ts as at
    >>> sim = at.simulate(200, rng=4)
    >>> g = at.detect(sim.scores, rule="gumz2012", scale="wai-sr")
    >>> s = at.detect(sim.scores, rule="stiles2004", scale="wai-sr")
    >>> res = at.agreement(g, s, level="client", what="any")
    >>> res.n, res.confusion.to_numpy().sum()
    (200, np.int64(200))
    """
    problems: list[Problem] = []
    if level not in WHAT:
        problems.append(Problem("parameter 'level'", f"must be 'session' or 'client', got {level!r}"))
    else:
        what = DEFAULT_WHAT[level] if what is None else what
        if what not in WHAT[level]:
            problems.append(Problem("parameter 'what'", f"at {level} level must be one of "
                                    f"{', '.join(map(repr, WHAT[level]))}, got {what!r}"))
    for name, res in (("a", a), ("b", b)):
        if res is not None and not isinstance(res, Detection):
            problems.append(Problem(f"parameter {name!r}", f"expected a Detection, got {type(res).__name__}"))
    if problems:
        raise InvalidInputError(problems, "alliance_ts.agreement()")

    if b is None:
        tables_a, tables_b, names = _split_raters(a, raters)
        keys = ["client", "session"] if level == "session" else ["client"]
    else:
        tables_a, tables_b = _tables(a), _tables(b)
        names = (a.rule, b.rule) if a.rule != b.rule else (f"{a.rule} (a)", f"{b.rule} (b)")
        both_rated = "rater" in a.sessions.columns and "rater" in b.sessions.columns
        keys = ["client"] + (["rater"] if both_rated else []) + (["session"] if level == "session" else [])

    what = str(what)
    cats = WHAT[level][what]
    ua = _units(tables_a, level, what, keys)
    ub = _units(tables_b, level, what, keys)
    kinds = {k: ("numbers" if pd.api.types.is_numeric_dtype(ua[k]) else "text",
                 "numbers" if pd.api.types.is_numeric_dtype(ub[k]) else "text") for k in keys}
    mixed = [f"{k} ids are {ka} in a and {kb} in b" for k, (ka, kb) in kinds.items() if ka != kb]
    if mixed:
        raise InvalidInputError([Problem("parameters 'a', 'b'", "; ".join(mixed) + " (e.g. 7 vs '7'): label both "
                                         "from tables with the same id type")], "alliance_ts.agreement()")
    merged = ua.merge(ub, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    both = merged["_merge"] == "both"
    n_only_a = int((merged["_merge"] == "left_only").sum())
    n_only_b = int((merged["_merge"] == "right_only").sum())
    if not both.any() and n_only_a and n_only_b:
        def first(side: str) -> str:
            rows = merged.loc[merged["_merge"] == side, keys].head(3)
            return ", ".join("(" + ", ".join(f"{k} {v!r}" for k, v in zip(keys, row)) + ")"
                             for row in rows.itertuples(index=False))

        raise InvalidInputError([Problem(
            "parameters 'a', 'b'",
            f"no {'session' if level == 'session' else 'client'} is in both labelings ({n_only_a} only in a, e.g. "
            f"{first('left_only')}; {n_only_b} only in b, e.g. {first('right_only')}); compare labelings of the "
            "same clients, with ids of the same type")], "alliance_ts.agreement()")
    units = merged.loc[both, keys + ["value_a", "value_b"]].rename(columns={"value_a": "a", "value_b": "b"})
    units = units.reset_index(drop=True)
    x, y = units["a"].astype(str).to_numpy(), units["b"].astype(str).to_numpy()
    n = len(units)
    table = metrics.confusion_matrix(x, y, labels=list(cats)) if n else np.zeros((len(cats), len(cats)), dtype=np.int64)
    confusion = pd.DataFrame(table, index=pd.Index(cats, name=names[0]), columns=pd.Index(cats, name=names[1]))
    percent = float(np.trace(table) / n) if n else float("nan")
    marg = table.sum(axis=1) @ table.sum(axis=0) / n**2 if n else 1.0
    kappa = float(metrics.cohen_kappa_score(x, y, labels=list(cats))) if n and marg < 1 else float("nan")
    return Agreement(kappa, percent, n, confusion, units, level, what, names, n_only_a, n_only_b)


def _tables(res: Detection) -> dict[str, pd.DataFrame]:
    return {"sessions": res.sessions, "clients": res.clients, "episodes": res.episodes}


def _split_raters(res: Detection, raters) -> tuple[dict, dict, tuple[str, str]]:
    if "rater" not in res.sessions.columns:
        raise InvalidInputError(
            [Problem("parameter 'b'",
                     "give a second result, or a result with a 'rater' column (rule 'psq' with rater=)")],
            "alliance_ts.agreement()",
        )
    present = list(pd.unique(res.clients["rater"]))
    if raters is None:
        if len(present) != 2:
            raise InvalidInputError(
                [Problem("parameter 'raters'",
                         f"the result has {len(present)} raters ({present}); name the two to compare")],
                "alliance_ts.agreement()",
            )
        raters = tuple(sorted(present, key=str))
    unknown = [r for r in raters if r not in present]
    if len(raters) != 2 or unknown:
        raise InvalidInputError(
            [Problem("parameter 'raters'", f"expected two of {present}, got {raters!r}")], "alliance_ts.agreement()"
        )
    out = []
    for r in raters:
        out.append({name: t[t["rater"] == r].drop(columns="rater") for name, t in _tables(res).items()})
    return out[0], out[1], (str(raters[0]), str(raters[1]))


def _units(tables: dict[str, pd.DataFrame], level: str, what: str, keys: list[str]) -> pd.DataFrame:
    if level == "session":
        s = tables["sessions"]
        value: Any
        if what == "label":
            value = s["label"].astype(str)
        elif what == "episode":
            value = np.where(s["label"].astype(str) != "none", "yes", "no")
        else:
            e = tables["episodes"]
            starts = e[[k for k in keys if k != "session"] + ["start"]].rename(columns={"start": "session"})
            starts = starts.assign(_start=True)
            flagged = s[keys].merge(starts.drop_duplicates(), on=keys, how="left")["_start"].notna().to_numpy()
            value = np.where(flagged, "yes", "no")
        return pd.DataFrame({**{k: s[k].to_numpy() for k in keys}, "value": value})
    c = tables["clients"]
    c = c[c["included"].astype(bool)]
    if what == "pattern":
        value = c["pattern"].astype(str).to_numpy()
    else:
        value = np.where(c["n_ruptures"].to_numpy() > 0, "yes", "no")
    return pd.DataFrame({**{k: c[k].to_numpy() for k in keys}, "value": np.asarray(value)})
