"""Plots of a :class:`~alliance_ts.Detection` (needs matplotlib: ``pip install 'alliance_ts[plot]'``).

- :func:`trajectory`: one client's scores with its episodes shaded and labelled;
- :func:`panel`: a grid of trajectories;
- :func:`overview`: the dataset at a glance (client patterns, episode depth,
  onset phase).

Every function draws on the Axes it is given (``ax=`` / ``axes=``) or on a
new figure, and returns the Axes, so plots can be combined and styled with
ordinary matplotlib calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, Problem
from .result import PATTERNS, PHASES, Detection, group_column

__all__ = ["COLORS", "average_episode", "caseload", "forest", "funnel", "overview", "panel", "trajectory"]

#: Colours of the statuses and patterns (colour-blind safe, Okabe & Ito 2008).
COLORS = {
    "repaired": "#0072B2",
    "unresolved": "#D55E00",
    "no_rupture": "#999999",
    "mixed": "#CC79A7",
    "score": "#333333",
}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the plot extra installs it
        raise InvalidInputError(
            [Problem("plot", "plots need matplotlib: pip install 'alliance_ts[plot]'")], "alliance_ts.plot"
        ) from None
    return plt


def _check_result(result: Any, where: str) -> None:
    if not isinstance(result, Detection):
        raise InvalidInputError([Problem("parameter 'result'", f"expected a Detection, got {type(result).__name__}")],
                                where)


def _select(result: Detection, client: Any, rater: Any, where: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    s, e, c = result.sessions, result.episodes, result.clients
    key = group_column(c)  # "rater" (psq) or "coder" (observer)
    if key is not None and rater is None:
        raters = list(pd.unique(c[key]))
        if len(raters) > 1:
            raise InvalidInputError(
                [Problem("parameter 'rater'",
                         f"the result has several {key}s ({raters}); choose one with rater=")], where
            )
        rater = raters[0] if raters else None
    if key is not None:
        s, e, c = s[s[key] == rater], e[e[key] == rater], c[c[key] == rater]
    row = c[c["client"] == client]
    if row.empty:
        shown = ", ".join(map(repr, c["client"].head(5).tolist()))
        raise InvalidInputError([Problem("parameter 'client'", f"no client {client!r} in the result; e.g. {shown}")],
                                where)
    return s[s["client"] == client], e[e["client"] == client], row.iloc[0]


def trajectory(
    result: Detection,
    client: Any,
    ax: Any = None,
    *,
    rater: Any = None,
    show_pre: bool = True,
    legend: bool = True,
) -> Any:
    """Plot one client's scores with its episodes shaded and labelled.

    Parameters
    ----------
    result : Detection
    client : client id
    ax : matplotlib Axes, optional
        Draw here (default: a new figure).
    rater : optional
        For results with a ``rater`` column (``psq``), the rater to show.
    show_pre : bool, default True
        Draw each episode's pre-rupture reference level as a dashed line.
    legend : bool, default True
        Explain the line styles and markers in a small legend.

    Returns
    -------
    matplotlib.axes.Axes
        Scores as a solid line with markers between consecutive sessions; a
        missed session (a missing score, or a session number absent from the
        data) breaks the solid line and its neighbours are joined by a dotted
        one. Each episode is shaded from ``start`` to ``end`` (to the last
        session when unresolved) in the colour of its status and labelled
        with its number and status (labels of neighbouring episodes are
        stacked so they do not overlap); its trough (for ``psq``, its most
        intense report) is marked with a triangle and its pre-rupture level
        drawn dashed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import alliance_ts as at
    >>> res = at.detect([50, 51, 50, 38, 50, 51, 50, 52], rule="vshape", pooled_sd=1.0)
    >>> ax = at.plot.trajectory(res, 0)
    >>> ax.get_title()
    'client 0 (vshape): repaired'
    """
    plt = _pyplot()
    _check_result(result, "alliance_ts.plot.trajectory()")
    s, e, row = _select(result, client, rater, "alliance_ts.plot.trajectory()")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    order = np.argsort(s["session"].to_numpy(), kind="stable")
    x = s["session"].to_numpy()[order]
    y = s["score"].to_numpy(dtype=float)[order]
    last = x.max() if x.size else 0
    psq = _reads(result) == "psq"
    peak = "most intense report" if psq else "trough"
    handles = {}
    rows = _label_rows(ax, e, x, last)
    ep: Any
    for ep, label_row in zip(e.itertuples(index=False), rows):
        colour = COLORS[str(ep.status)]
        stop = ep.end if ep.status == "repaired" else last
        ax.axvspan(ep.start - 0.4, stop + 0.4, color=colour, alpha=0.15, lw=0)
        ax.annotate(f"{ep.episode} {ep.status}", xy=((ep.start + stop) / 2, 0.98 - 0.09 * label_row),
                    xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=8, color=colour)
        if show_pre and np.isfinite(ep.pre):
            handles["pre-rupture level"] = ax.hlines(ep.pre, ep.start - 0.4, stop + 0.4, colors=colour,
                                                     linestyles="dashed", lw=1)
        at_trough = y[x == ep.trough]
        if at_trough.size and np.isfinite(at_trough[0]):
            (handles[peak],) = ax.plot([ep.trough], [at_trough[0]], marker="v", color=colour, ms=8, ls="none", zorder=3)
    seen = np.isfinite(y)
    if seen.sum() > 1 and (not seen.all() or np.any(np.diff(x) > 1)):
        (handles["across a missed session"],) = ax.plot(x[seen], y[seen], ls=":", lw=1, color=COLORS["score"])
    # a NaN between two sessions that are not consecutive breaks the solid line
    gaps = np.flatnonzero(np.diff(x) > 1) + 1
    (handles["score"],) = ax.plot(np.insert(x.astype(float), gaps, np.nan), np.insert(y, gaps, np.nan), marker="o",
                                  ms=4, color=COLORS["score"], lw=1.2)
    if legend and len(handles) > 1:
        names = [k for k in ("score", "across a missed session", "pre-rupture level", peak) if k in handles]
        ax.legend([handles[k] for k in names], names, fontsize=7, loc="best", framealpha=0.8)
    pattern = row["pattern"] if row["included"] else f"not analysed ({row['reason']})"
    title = f"client {client} ({result.rule}): {pattern}"
    ax.set_title(title if rater is None else f"{title}, {rater}", fontsize=10)
    ax.set_xlabel("session")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if x.size:
        low, high = np.nanmin(y) if np.isfinite(y).any() else 0.0, np.nanmax(y) if np.isfinite(y).any() else 1.0
        pad = max((high - low) * (0.18 + 0.12 * max(rows, default=0)), 0.5)
        ax.set_ylim(low - pad * 0.5, high + pad)  # room for the episode labels
    scale = result.params.get("scale")
    if "segments" in s.columns:  # observer codes: the session score is markers per coded segment
        ax.set_ylabel("rupture markers per segment")
    elif psq:
        ax.set_ylabel("reported rupture (answer code)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.set_ylabel("score" if not scale else f"score ({scale})")
    return ax


def _label_rows(ax: Any, episodes: pd.DataFrame, x: np.ndarray, last: Any) -> list[int]:
    """Row (0 = top) of each episode's label, so that neighbouring labels do not overlap.

    A label goes on the first row where it clears the labels already placed
    there; its width is estimated from its length (8-point characters about
    0.6 of their height wide) and the Axes' width, in sessions.
    """
    if episodes.empty:
        return []
    fig = ax.figure
    inches = max(ax.get_position().width * fig.get_figwidth(), 0.5)
    span = (float(x.max() - x.min()) if x.size else 0.0) + 0.8 + 1.0
    per_char = span * (8 * 0.6 / 72) / inches
    ends: list[float] = []  # right edge of the last label on each row
    rows = []
    ep: Any
    for ep in episodes.itertuples(index=False):
        stop = ep.end if ep.status == "repaired" else last
        centre, half = (ep.start + stop) / 2, per_char * len(f"{ep.episode} {ep.status}") / 2
        row = next((k for k, end in enumerate(ends) if centre - half > end), len(ends))
        if row == len(ends):
            ends.append(centre + half)
        else:
            ends[row] = centre + half
        rows.append(row)
    return rows


def _reads(result: Detection) -> str:
    """What the result's rule reads ("scores" or "psq")."""
    from .errors import UnknownRuleError
    from .rules import get_rule
    from .rules._base import _reads_label

    try:
        return _reads_label(get_rule(result.rule))
    except UnknownRuleError:  # a rule object passed directly, or an unregistered name
        return "scores"


def panel(
    result: Detection,
    clients: list[Any] | None = None,
    *,
    n: int = 6,
    ncols: int = 3,
    rater: Any = None,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """A grid of :func:`trajectory` plots.

    Parameters
    ----------
    result : Detection
    clients : list of client ids, optional
        Which clients to show. Default: up to ``n`` analysed clients, taking
        the patterns in turn (repaired, unresolved, mixed, no rupture) so
        each is shown when present; the first clients of each pattern in
        client order, or a random draw of them when ``rng`` is given.
    n, ncols : int
        Number of clients (when ``clients`` is None) and of columns.
    rater : optional
        For results with a ``rater`` column.
    rng : int, numpy Generator or None
        Draw the default clients at random (reproducibly with a seed).

    Returns
    -------
    ndarray of matplotlib Axes, shape (rows, ncols)
        Unused cells are switched off.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import alliance_ts as at
    >>> res = at.detect(at.simulate(40, rng=1).scores, scale="wai-sr")
    >>> at.plot.panel(res, n=4, ncols=2).shape
    (2, 2)
    """
    plt = _pyplot()
    _check_result(result, "alliance_ts.plot.panel()")
    if clients is None:
        clients = _pick(result, n, rater, rng)
    clients = list(clients)
    if not clients:
        raise InvalidInputError([Problem("parameter 'clients'", "no clients to show (the list is empty, or the "
                                         "result has no analysed client)")], "alliance_ts.plot.panel()")
    rows = -(-len(clients) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(4.2 * ncols, 2.9 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(clients):
            trajectory(result, clients[k], ax=ax, rater=rater, legend=k == 0)
            if k % ncols:
                ax.set_ylabel("")
        else:
            ax.set_axis_off()
    fig.tight_layout()
    return axes


def _pick(result: Detection, n: int, rater: Any, rng) -> list[Any]:
    c = result.clients
    key = group_column(c)
    if key is not None:
        if rater is None:
            rater = next(iter(pd.unique(c[key])), None)
        c = c[c[key] == rater]
    c = c[c["included"]]
    g = np.random.default_rng(rng) if rng is not None else None
    pools = []
    for p in ("repaired", "unresolved", "mixed", "no_rupture"):
        ids = c.loc[c["pattern"] == p, "client"].tolist()
        if g is not None and ids:
            ids = [ids[i] for i in g.permutation(len(ids))]
        pools.append(ids)
    chosen: list[Any] = []
    while len(chosen) < n and any(pools):
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(pool.pop(0))
    return chosen


def overview(result: Detection, axes: Any = None) -> np.ndarray:
    """The dataset at a glance: client patterns, episode depth and onset phase.

    Parameters
    ----------
    result : Detection
    axes : sequence of three matplotlib Axes, optional
        Draw here (default: a new figure with three panels).

    Returns
    -------
    ndarray of three matplotlib Axes
        The share of analysed clients in each pattern, with counts; a
        histogram of episode depth by status (score units; for the ``psq``
        rule, of the reported intensity); episodes by onset phase and status.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import alliance_ts as at
    >>> res = at.detect(at.simulate(100, rng=1).scores, scale="wai-sr")
    >>> [ax.get_title() for ax in at.plot.overview(res)]
    ['Client patterns', 'Episode depth', 'Onset phase']
    """
    plt = _pyplot()
    _check_result(result, "alliance_ts.plot.overview()")
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes = np.asarray(axes).ravel()
    if axes.size != 3:
        raise InvalidInputError([Problem("parameter 'axes'", f"expected three Axes, got {axes.size}")],
                                "alliance_ts.plot.overview()")
    c = result.clients[result.clients["included"]]
    e = result.episodes

    counts = c["pattern"].value_counts().reindex(list(PATTERNS), fill_value=0)
    total = max(int(counts.sum()), 1)
    bars = axes[0].bar(range(len(PATTERNS)), counts.to_numpy() / total,
                       color=[COLORS[p] for p in PATTERNS])
    for bar, k in zip(bars, counts.to_numpy()):
        axes[0].annotate(f"{k}", xy=(bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                         va="bottom", fontsize=8)
    axes[0].set_xticks(range(len(PATTERNS)), [p.replace("_", " ") for p in PATTERNS])
    axes[0].set_ylim(0, max(float(counts.max()) / total, 0.05) * 1.12)  # room for the counts
    axes[0].set_ylabel(f"share of {total} analysed clients")
    axes[0].set_title("Client patterns")

    measure = ("depth" if e["depth"].notna().any() else "intensity" if "intensity" in e.columns
               else "frequency" if "frequency" in e.columns else "depth")
    groups = [e.loc[e["status"] == st, measure].dropna().to_numpy(dtype=float) for st in ("repaired", "unresolved")]
    every = np.concatenate(groups)
    if every.size:
        edges = np.histogram_bin_edges(every, bins=min(20, max(5, int(np.sqrt(every.size)))))
        if measure == "intensity":  # answer codes: one bar per code
            edges = np.arange(np.floor(every.min()) - 0.5, np.ceil(every.max()) + 1.0)
            axes[1].set_xticks(edges[:-1] + 0.5)
        axes[1].hist(groups, bins=edges, stacked=True, color=[COLORS["repaired"], COLORS["unresolved"]],
                     label=[f"repaired ({groups[0].size})", f"unresolved ({groups[1].size})"])
    axes[1].set_xlabel({"depth": "depth (score units)", "intensity": "reported intensity",
                        "frequency": "rupture markers per segment (highest)"}[measure])
    axes[1].set_ylabel("episodes")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[1:]:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_title({"depth": "Episode depth", "intensity": "Reported intensity",
                       "frequency": "Observed marker frequency"}[measure])
    if len(e):
        axes[1].set_ylim(top=axes[1].get_ylim()[1] * 1.3)  # headroom for the legend
        axes[1].legend(fontsize=8, loc="upper right")

    table = pd.crosstab(e["phase"].astype(str), e["status"].astype(str)).reindex(
        index=list(PHASES), columns=["repaired", "unresolved"], fill_value=0)
    bottom = np.zeros(len(PHASES))
    for status in ("repaired", "unresolved"):
        axes[2].bar(range(len(PHASES)), table[status].to_numpy(), bottom=bottom, color=COLORS[status], label=status)
        bottom += table[status].to_numpy()
    axes[2].set_xticks(range(len(PHASES)), list(PHASES))
    axes[2].set_ylabel("episodes")
    axes[2].set_title("Onset phase")
    axes[2].set_ylim(0, max(float(bottom.max()), 1.0) * 1.3)
    axes[2].legend(fontsize=8, loc="upper right")
    axes[0].figure.tight_layout()
    return axes


def average_episode(
    result: Detection,
    before: int = 3,
    after: int = 3,
    by: str | None = "status",
    ax: Any = None,
    ci: float | None = 0.95,
) -> Any:
    """The mean score in the sessions around episode starts, with a confidence band.

    The picture of the average episode (suddengains' ``plot_sg()``): for
    each group of episodes, the mean of the observed scores at each session
    offset from the episode's ``start`` (the data of
    :func:`alliance_ts.tables.around`).

    Parameters
    ----------
    result : Detection
        A result of a rule that reads scores (not ``psq``) with at least one
        episode.
    before, after : int, default 3
        Sessions shown before and after the start (whole numbers >= 0).
    by : {"status", "phase", None}, default "status"
        One line per status (repaired, unresolved), per onset phase, or one
        line for all episodes (None).
    ax : matplotlib Axes, optional
        Draw here (default: a new figure).
    ci : float or None, default 0.95
        Level of the confidence band of each mean, ``mean +/- t * SD /
        sqrt(n)`` with Student's t quantile ``(1 + ci) / 2`` on ``n - 1``
        degrees of freedom, ``n`` the observed scores at that offset (no
        band where ``n < 2``). None: no band.

    Returns
    -------
    matplotlib.axes.Axes
        Offset (sessions from the start; 0, the start, is marked by a dashed
        vertical line) on x, the mean score on y: one line with markers per
        group, in the colour of its status (:data:`COLORS`), labelled with
        its number of episodes. Means use the scores observed at each
        offset: a missed session, or one outside the client's course, leaves
        that episode out of the mean at that offset.

    Raises
    ------
    InvalidInputError
        If the result has no episodes, its rule reads no scores (``psq``),
        no score is observed around any start, or a parameter is invalid.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import alliance_ts as at
    >>> res = at.detect(at.simulate(100, rng=1).scores, scale="wai-sr")
    >>> ax = at.plot.average_episode(res)
    >>> ax.get_title()
    'Scores around episode starts (scan)'
    """
    from .tables import around
    from .validation import check_number

    where = "alliance_ts.plot.average_episode()"
    plt = _pyplot()
    _check_result(result, where)
    problems: list[Problem] = []
    if by not in ("status", "phase", None):
        problems.append(Problem("parameter 'by'", f"must be 'status', 'phase' or None; got {by!r}"))
    if ci is not None:
        check_number(problems, "ci", ci, low=0, high=1, low_open=True, high_open=True, allow_none=True)
    if problems:
        raise InvalidInputError(problems, where)
    if _reads(result) != "scores":
        raise InvalidInputError([Problem("parameter 'result'", f"rule {result.rule!r} reads questionnaire answers, "
                                         "not scores: there is no score to average")], where)
    if result.episodes.empty:
        raise InvalidInputError([Problem("parameter 'result'", f"the result has no episodes (rule {result.rule!r}, "
                                         f"{len(result.clients)} clients): nothing to average")], where)
    table = around(result, before=before, after=after)
    if not table["observed"].any():
        raise InvalidInputError([Problem("parameter 'result'", "no score is observed in the sessions around any "
                                         "episode's start")], where)
    from matplotlib.ticker import MaxNLocator
    from scipy import stats

    own_figure = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    offsets = np.arange(-int(before), int(after) + 1)
    if by is None:
        groups = [("all", np.ones(len(table), dtype=bool), COLORS["score"])]
    else:
        colours = COLORS if by == "status" else {"early": "#009E73", "middle": "#E69F00", "late": "#56B4E9"}
        values = table[by].astype(str).to_numpy()
        names = ("repaired", "unresolved") if by == "status" else PHASES
        groups = [(name, values == name, colours[name]) for name in names if (values == name).any()]
    for name, mask, colour in groups:
        scores = table.loc[mask, ["offset", "score"]].groupby("offset")["score"]
        mean = scores.mean().reindex(offsets).to_numpy(dtype=float)
        n = scores.count().reindex(offsets, fill_value=0).to_numpy()
        n_episodes = int(mask.sum()) // offsets.size
        ax.plot(offsets, mean, marker="o", ms=4, lw=1.5, color=colour,
                label=f"{name} ({n_episodes} episode{'s' if n_episodes != 1 else ''})")
        if ci is not None:
            sd = scores.std(ddof=1).reindex(offsets).to_numpy(dtype=float)
            ok = n >= 2
            half = np.full(offsets.size, np.nan)
            half[ok] = stats.t.ppf((1.0 + ci) / 2.0, n[ok] - 1) * sd[ok] / np.sqrt(n[ok])
            if np.isfinite(half).any():
                ax.fill_between(offsets, mean - half, mean + half, color=colour, alpha=0.2, lw=0)
    ax.axvline(0, color="#999999", ls="--", lw=1, zorder=0)
    ax.set_xlim(offsets[0] - 0.3, offsets[-1] + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("sessions from the episode's start (0 = start)")
    scale = result.params.get("scale")
    ax.set_ylabel("mean score" if not scale else f"mean score ({scale})")
    ax.set_title(f"Scores around episode starts ({result.rule})", fontsize=10)
    ax.legend(fontsize=8, loc="best", framealpha=0.8,
              title=None if ci is None else f"mean, {ci:.0%} CI", title_fontsize=8)
    if own_figure:
        ax.figure.tight_layout()  # nothing clipped when the figure is saved as it is
    return ax


def _check_pooled(pooled: Any, where: str) -> None:
    from .meta import Pooled

    if not isinstance(pooled, Pooled):
        raise InvalidInputError([Problem("parameter 'pooled'", f"expected the result of alliance_ts.effects.pool() "
                                         f"(Pooled), got {type(pooled).__name__}")], where)


def _effect_text(x: float, effect: str) -> str:
    if not np.isfinite(x):
        return "NA"
    text = f"{x:.2f}"
    if effect == "r":
        text = "0.00" if text == "-0.00" else text
        if text.startswith(("0.", "-0.")):
            text = text.replace("0.", ".", 1)
    return text


def _short(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "\u2026"


def forest(pooled: Any, ax: Any = None, *, title: str | None = None, weights: bool = True) -> Any:
    """Forest plot of a pooled analysis: every study, the pooled diamond and the prediction interval.

    Parameters
    ----------
    pooled : Pooled
        The result of :func:`alliance_ts.effects.pool`.
    ax : matplotlib Axes, optional
        Draw here (default: a new figure sized to the number of studies).
    title : str, optional
        Axes title (default: none).
    weights : bool, default True
        Also print each study's weight (percent) on the right.

    Returns
    -------
    matplotlib.axes.Axes
        One row per study in the table's order, top to bottom: a square at
        the study's effect (area proportional to its weight in the pooled
        model: random-effects weights, fixed-effect weights for ``"FE"``)
        and its confidence interval as a line; below them the pooled
        estimate as a diamond spanning its confidence interval and, on the
        row under it, the prediction interval as a line with end caps (when
        defined). A solid vertical line marks 0 and a dotted one the pooled
        estimate. The x axis is in the effect's metric (r, back-transformed
        from Fisher's z, or d); study names are the y tick labels and the
        effect with its interval ("r [95% CI]") is written on the right.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> import alliance_ts as at
    >>> from alliance_ts.meta import pool
    >>> table = pd.DataFrame({"study": ["A", "B", "C"], "r": [0.1, 0.3, 0.4], "n": [40, 60, 100]})
    >>> ax = at.plot.forest(pool(table, method="DL"))
    >>> ax.get_xlabel()
    'correlation r'
    """
    from matplotlib.patches import Polygon
    from matplotlib.transforms import blended_transform_factory

    where = "alliance_ts.plot.forest()"
    plt = _pyplot()
    _check_pooled(pooled, where)
    st = pooled.studies
    k = len(st)
    own_figure = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 1.6 + 0.32 * (k + 3)))
    effect = pooled.effect
    if effect == "r":
        est, ci, pi = pooled.r, pooled.r_ci, pooled.pi_in_metric()
    else:
        est, ci, pi = pooled.d, pooled.d_ci, pooled.pi
    w = st["weight_fixed" if pooled.method == "FE" else "weight_random"].to_numpy(dtype=float)
    ys = np.arange(k, 0, -1) + 2.0  # first study on top; the pooled rows are 1.6 and 0.8
    y_pool, y_pi = 1.6, 0.8
    colour = COLORS["repaired"]
    values = st["y"].to_numpy(dtype=float)
    points = np.tanh(values) if effect == "r" else values
    low, high = st["ci_low"].to_numpy(dtype=float), st["ci_high"].to_numpy(dtype=float)
    ax.hlines(ys, low, high, color=COLORS["score"], lw=1.2)
    ax.scatter(points, ys, s=25 + 225 * w / max(w.max(), 1e-12), marker="s", color=COLORS["score"], zorder=3)
    h = 0.3
    ax.add_patch(Polygon([(ci[0], y_pool), (est, y_pool + h), (ci[1], y_pool), (est, y_pool - h)], closed=True,
                         color=colour, zorder=3))
    # long study names (a full reference) are cut to 40 characters so the plot keeps its width
    labels = [_short(str(s)) for s in st["study"]] + [f"pooled ({pooled.method})"]
    ticks = [*ys, y_pool]
    has_pi = bool(np.all(np.isfinite(pi)))
    if has_pi:
        ax.hlines(y_pi, pi[0], pi[1], color=colour, lw=1.5)
        ax.vlines(list(pi), y_pi - 0.15, y_pi + 0.15, color=colour, lw=1.5)
        ticks.append(y_pi)
        labels.append("prediction interval")
    ax.axvline(0, color="#999999", lw=1, zorder=0)
    ax.axvline(est, color=colour, lw=1, ls=":", zorder=0)
    ax.set_yticks(ticks, labels)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(0.3 if has_pi else 1.0, k + 3.2)
    lows = [*low, ci[0], *(pi if has_pi else ())]
    highs = [*high, ci[1], *(pi if has_pi else ())]
    lo, hi = min(min(lows), 0.0), max(max(highs), 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    if effect == "r":
        lo, hi = max(lo, -1.0), min(hi, 1.0)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("correlation r" if effect == "r" else "standardised mean difference d")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    right = blended_transform_factory(ax.transAxes, ax.transData)
    lev = f"{pooled.level * 100:g}%"

    rows = [(v, a, b, wt) for v, a, b, wt in zip(points, low, high, w)] + [(est, ci[0], ci[1], None)]
    cells = [[_effect_text(v, effect), _effect_text(a, effect), _effect_text(b, effect)] for v, a, b, _ in rows]
    if has_pi:
        cells.append(["", _effect_text(pi[0], effect), _effect_text(pi[1], effect)])
    wide = [max(len(c[j]) for c in cells) for j in range(3)]
    texts = [f"{c[0]:>{wide[0]}} [{c[1]:>{wide[1]}}, {c[2]:>{wide[2]}}]" for c in cells]
    width = max(len(t) for t in texts)
    if weights:
        texts = [t + (f" {row[3]:5.1f}%" if j < k else "") for j, (t, row) in enumerate(zip(texts, [*rows, rows[-1]]))]
    header = f"{effect} [{lev} CI]"
    header = f"{header:<{width}}" + ("  weight" if weights else "")
    font = dict(fontsize=8, family="monospace", va="center", ha="left", transform=right, clip_on=False)
    ax.text(1.02, k + 2.8, header, fontweight="bold", **font)
    for k_, (y0, text) in enumerate(zip([*ys, y_pool, y_pi], texts)):
        ax.text(1.02, y0, text, fontweight="bold" if k_ == k else "normal", **font)
    if title:
        ax.set_title(title, fontsize=10)
    if own_figure:
        ax.figure.tight_layout()  # nothing clipped: the texts on the right are part of the layout
    return ax


def funnel(pooled: Any, ax: Any = None) -> Any:
    """Funnel plot: each study's effect against its standard error.

    Parameters
    ----------
    pooled : Pooled
        The result of :func:`alliance_ts.effects.pool`.
    ax : matplotlib Axes, optional
        Draw here (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
        The analysed effects (Fisher's z for r, d for d) on x against
        their standard errors on an inverted y axis (precise studies at the
        top), a vertical line at the pooled estimate and the pseudo
        confidence region ``estimate +/- z * SE`` (at the pooled result's
        level; Sterne & Egger, 2001) shaded between dashed lines. An
        asymmetric funnel can mean small-study effects such as publication
        bias, or heterogeneity; with few studies it shows little.

    References
    ----------
    Sterne, J. A. C., & Egger, M. (2001). Funnel plots for detecting bias in
    meta-analysis: Guidelines on choice of axis. *Journal of Clinical
    Epidemiology*, 54(10), 1046-1055.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> import alliance_ts as at
    >>> from alliance_ts.meta import pool
    >>> table = pd.DataFrame({"study": ["A", "B", "C"], "r": [0.1, 0.3, 0.4], "n": [40, 60, 100]})
    >>> at.plot.funnel(pool(table, method="DL")).get_ylabel()
    'standard error'
    """
    from scipy import stats

    where = "alliance_ts.plot.funnel()"
    plt = _pyplot()
    _check_pooled(pooled, where)
    own_figure = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.4))
    st = pooled.studies
    se = st["se"].to_numpy(dtype=float)
    y = st["y"].to_numpy(dtype=float)
    top = float(se.max()) * 1.1
    grid = np.linspace(0.0, top, 50)
    crit = float(stats.norm.ppf(0.5 + pooled.level / 2))
    mu = pooled.estimate
    ax.fill_betweenx(grid, mu - crit * grid, mu + crit * grid, color="#dddddd", lw=0, zorder=0,
                     label=f"{pooled.level * 100:g}% pseudo-confidence region")
    ax.plot(mu - crit * grid, grid, ls="--", lw=1, color="#777777")
    ax.plot(mu + crit * grid, grid, ls="--", lw=1, color="#777777")
    ax.axvline(mu, color=COLORS["repaired"], lw=1.2, label=f"pooled ({pooled.method})")
    ax.scatter(y, se, color=COLORS["score"], s=25, zorder=3, label="studies")
    ax.set_ylim(top, 0.0)
    span = max(abs(float(np.max(np.abs(y - mu)))), crit * top) * 1.08
    ax.set_xlim(mu - span, mu + span)
    ax.set_xlabel("Fisher's z" if pooled.effect == "r" else "standardised mean difference d")
    ax.set_ylabel("standard error")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)  # below the axis
    if own_figure:
        ax.figure.tight_layout()
    return ax


def caseload(alerts: Any, clients: list[Any] | None = None, *, n: int = 12, last: int = 8,
             ncols: int = 4) -> np.ndarray:
    """Small multiples of the clients with an open alert: their last sessions, strongest evidence first.

    Parameters
    ----------
    alerts : Alerts
        A result of :func:`alliance_ts.monitor` (or of
        :meth:`alliance_ts.Monitor.update` calls joined with
        :meth:`alliance_ts.Alerts.concat`).
    clients : list of ids, optional
        Only these clients (a therapist's caseload).
    n : int, default 12
        At most this many flagged clients, in the order of
        :meth:`alliance_ts.Alerts.caseload`.
    last : int, default 8
        Sessions shown per client (its latest ones in the table).
    ncols : int, default 4
        Columns of the grid.

    Returns
    -------
    ndarray of matplotlib Axes, shape (rows, ncols)
        Each panel: the scores (dotted across missed sessions), sessions with
        an open alert in orange (filled where the alert opened), the alert
        threshold as a dashed line and the baseline as a thin grey line where
        the rule has them; the title gives the client, the evidence and the
        session the alert began. Unused cells are switched off; with no open
        alert, one panel says so.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import alliance_ts as at
    >>> res = at.monitor(at.simulate(60, rng=1, scale="srs", baseline=0.92).scores, rule="srs36")
    >>> axes = at.plot.caseload(res, n=4, ncols=2)
    >>> axes.shape
    (2, 2)
    """
    from .monitor import Alerts

    plt = _pyplot()
    where = "alliance_ts.plot.caseload()"
    if not isinstance(alerts, Alerts):
        raise InvalidInputError([Problem("parameter 'alerts'", f"expected Alerts, got {type(alerts).__name__}")],
                                where)
    problems: list[Problem] = []
    from .validation import check_number

    check_number(problems, "n", n, low=1, integer=True)
    check_number(problems, "last", last, low=1, integer=True)
    check_number(problems, "ncols", ncols, low=1, integer=True)
    if problems:
        raise InvalidInputError(problems, where)
    flagged = alerts.caseload(clients=clients).head(int(n))
    k = max(len(flagged), 1)
    cols = min(int(ncols), k)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows), squeeze=False)
    s = alerts.sessions
    if flagged.empty:
        ax = axes[0, 0]
        ax.text(0.5, 0.5, "no open alert", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return axes
    alert_colour = COLORS["unresolved"]
    for i, ax in enumerate(axes.flat):
        if i >= len(flagged):
            ax.set_axis_off()
            continue
        who = flagged["client"].iloc[i]
        mine = s[s["client"] == who].tail(int(last))
        x = mine["session"].to_numpy()
        y = mine["score"].to_numpy(dtype=float)
        seen = np.isfinite(y)
        ax.plot(x[seen], y[seen], ls=":", lw=1, color=COLORS["score"])
        gaps = np.flatnonzero(np.diff(x) > 1) + 1
        ax.plot(np.insert(x.astype(float), gaps, np.nan), np.insert(y, gaps, np.nan), marker="o", ms=3.5,
                color=COLORS["score"], lw=1.2)
        on = mine["alert"].to_numpy(dtype=bool) & seen
        opened = mine["new"].to_numpy(dtype=bool) & seen
        ax.plot(x[on & ~opened], y[on & ~opened], ls="none", marker="o", ms=6, mfc="white", mec=alert_colour,
                mew=1.5)
        ax.plot(x[opened], y[opened], ls="none", marker="o", ms=6, color=alert_colour)
        thr = mine["threshold"].to_numpy(dtype=float)
        if np.isfinite(thr).any():
            ax.plot(x, thr, ls="--", lw=1, color=alert_colour, alpha=0.8)
        base = mine["baseline"].to_numpy(dtype=float)
        if np.isfinite(base).any():
            ax.plot(x, base, ls="-", lw=0.8, color=COLORS["no_rupture"])
        ev = float(flagged["evidence"].iloc[i])
        ev_text = "" if not np.isfinite(ev) else (f"z = {ev:.1f}" if alerts.rule == "drop" else f"evidence {ev:g}")
        ax.set_title(f"client {who}: {ev_text}, open since session {flagged['alert_start'].iloc[i]}", fontsize=9)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            scale = alerts.params.get("scale")
            ax.set_ylabel("score" if not scale else f"score ({scale})", fontsize=8)
        if i // cols == rows - 1 or i + cols >= len(flagged):
            ax.set_xlabel("session", fontsize=8)
    fig.suptitle(f"Open alerts ({alerts.rule}): {len(flagged)} client(s), strongest evidence first; "
                 "orange = alert open (filled: opened), dashed = threshold", fontsize=9)
    fig.tight_layout()
    return axes
